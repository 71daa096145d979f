"""An organiser's scoring image: run under the same sandbox with the predictions and the truth, no team code."""
from __future__ import annotations

import pytest

from challenges.models import Challenge, Submission
from evaluator import submit
from tests.evaluator.pipeline import MODEL_075, Nodes, ended, pipeline_env, tagged, wait_for
from tests.factories import make_eval_setup

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]

# Accuracy computed by the organiser's own code (busybox awk), written to /output/scores.json.
SCORER = r"""#!/bin/sh
ls /input/predictions /input/truth
awk -F, 'NR==FNR { if (FNR > 1) t[$1] = $2; next }
         FNR > 1 { n++; if (t[$1] == $2) ok++ }
         END { printf "{\"accuracy\": %.4f}\n", ok / n > "/output/scores.json" }' \
    /input/truth/truth.csv /input/predictions/predictions.csv
"""

REFUSING_SCORER = """#!/bin/sh
echo "row 3: label must be a or b" >&2
exit 2
"""


@pytest.fixture
def nodes(db_url, redis_url, redis_conn, tmp_path):  # type: ignore[no-untyped-def]
    started = Nodes(pipeline_env(db_url, redis_url, tmp_path), tmp_path)
    yield started
    started.stop_all()


def _evaluated_with_scorer(session, tmp_path, busybox_image, docker_client, redis_url,  # type: ignore[no-untyped-def]
                           nodes, scorer_script: str) -> Submission:
    """A challenge whose scoring image runs `scorer_script`; a model that is right 3 times in 4, evaluated."""
    setup = make_eval_setup(session, tmp_path)
    challenge = session.get(Challenge, setup.challenge.id)
    challenge.scoring_image = tagged(docker_client, busybox_image(scorer_script))
    session.add(challenge)
    session.commit()
    model = tagged(docker_client, busybox_image(MODEL_075))
    sub = submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=model,
                                 image_ref="test-model", redis_url=redis_url)
    nodes.start("n1")
    return wait_for(lambda: ended(session, sub.id), 90, what="the submission to end")


def test_scores_come_from_the_organisers_image(session, tmp_path, busybox_image, docker_client, redis_url, nodes):
    done = _evaluated_with_scorer(session, tmp_path, busybox_image, docker_client, redis_url, nodes, SCORER)
    assert done.status == "scored", (done.outcome, done.reason, nodes.logs())
    assert done.scores == {"accuracy": 0.75}
    # The team's log is its own container's, never the scorer's (which listed the truth folder).
    assert "truth.csv" not in done.log_excerpt


def test_a_scorer_that_refuses_the_predictions_fails_them_with_its_reason(session, tmp_path, busybox_image,
                                                                       docker_client, redis_url, nodes):
    done = _evaluated_with_scorer(session, tmp_path, busybox_image, docker_client, redis_url, nodes, REFUSING_SCORER)
    assert (done.status, done.outcome) == ("failed", "bad_output"), (done.reason, nodes.logs())
    assert "label must be a or b" in done.reason
