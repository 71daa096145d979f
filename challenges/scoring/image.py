"""The organiser's scoring image: run in the same sandbox with the predictions and the truth, and no team code.

The scorer sees /input/predictions/<output file> and /input/truth/<truth file>, and writes
/output/scores.json: {"<metric>": number, …}. It must at least give the challenge's metric. Exiting non-zero is
how it refuses malformed predictions (the team's fault); anything else it gets wrong is the platform's.
"""
from __future__ import annotations

import json
import shutil

from challenges.scoring.base import (ChallengeTerms, MetricSpec, ScoreContext, Scored, ScoreRefused, Scorer,
                                     ScorerRun, ScoringUnavailable, metric_keys, register)
from challenges.scoring.files import BAD_OUTPUT, MISSING_OUTPUT
from challenges.scoring.metrics import REGISTRY

TIME_CAP_S = 600


class ImageScorer(Scorer):
    kind = "image"

    def metrics(self, challenge: ChallengeTerms, split: str) -> list[MetricSpec]:
        # The organiser's image names its metrics by the registry's keys; their direction is the registry's.
        return [MetricSpec(key, split, REGISTRY[key].direction if key in REGISTRY else "max",  # type: ignore[arg-type]
                           REGISTRY[key].precision if key in REGISTRY else 4)
                for key in metric_keys(challenge)]

    def score(self, ctx: ScoreContext) -> Scored:
        c = ctx.challenge
        pred = ctx.predictions
        if not pred.is_file() or pred.is_symlink():
            raise ScoreRefused(MISSING_OUTPUT, f"The container did not write {c.output_file}.")
        if ctx.run_container is None or not c.scoring_image:
            raise ScoringUnavailable("no engine is at hand to run the organiser's scoring image")
        inputs = ctx.workdir / "scorer-input"
        (inputs / "predictions").mkdir(parents=True, exist_ok=True)
        (inputs / "truth").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pred, inputs / "predictions" / c.output_file, follow_symlinks=False)
        shutil.copyfile(ctx.truth_path, inputs / "truth" / ctx.truth_path.name)
        out = ctx.workdir / "scorer-output"
        run = ctx.run_container(ScorerRun(image_id=c.scoring_image, input_dir=inputs, output_dir=out,
                                          time_limit_s=min(TIME_CAP_S, c.time_limit_s), memory_mb=c.memory_mb,
                                          cpus=c.cpus))
        if run.start_error:
            # The organiser's image (e.g. a VOLUME the sandbox cannot mask), not the team's predictions.
            raise ScoringUnavailable(f"the organiser's scoring image could not start: {run.start_error}")
        if run.exit_code != 0 or run.timed_out or run.oom_killed:
            log_text = run.log.decode("utf-8", "replace") if isinstance(run.log, bytes) else str(run.log or "")
            raise ScoreRefused(BAD_OUTPUT, "The organiser's scorer refused the predictions: "
                               + (log_text.strip().splitlines() or ["no detail"])[-1][:500])
        keys = metric_keys(c)
        try:
            data = json.loads((out / "scores.json").read_text())
            scores = {k: float(v) for k, v in data.items() if k in keys}
        except (OSError, ValueError, TypeError, AttributeError) as err:
            raise ScoringUnavailable(f"the organiser's scorer wrote no usable scores.json ({err})") from err
        if c.metric not in scores:
            raise ScoringUnavailable(f"the organiser's scorer gave no {c.metric}")
        return Scored({ctx.split: scores})


register(ImageScorer())
