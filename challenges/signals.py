"""What challenges tells the rest of the platform (blinker signals; receivers are connected at app start).

Every signal is sent with the session as sender, inside the transaction of the change it reports: a receiver
writes in that transaction and does not commit, so the change and its effects land together or not at all.
A notifier or a webhook plugs in by connecting a receiver; the sender never needs to know it.
"""
from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

submission_finished = _signals.signal("submission-finished", doc="""A submission (or check run) ended for good.
kwargs: submission_id, challenge_id, phase_id, team_id, kind, status, outcome, primary_score.""")

phase_ended = _signals.signal("phase-ended", doc="""A phase's end passed (sent once per phase).
kwargs: challenge_id, phase_id, ended_at.""")

winner_announced = _signals.signal("winner-announced", doc="""A challenge's winner was announced (挂帅).
kwargs: challenge_id, team_id, announced_at.""")
