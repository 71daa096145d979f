"""Time challenges.scoring.files.score_file on 100,000 rows per metric kind (target: well under 1 s each).

Run: .venv/bin/python bench/scoring_bench.py [rows]
"""
from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from challenges.scoring.files import score_file  # noqa: E402


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def main(n: int = 100_000, repeats: int = 5) -> None:
    rng = random.Random(1)
    order = list(range(n))
    rng.shuffle(order)                     # predictions in another order than the truth
    labels = [rng.randint(0, 1) for _ in range(n)]
    classes = [rng.choice("abcdefghij") for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cases = {
            "auc": (["auc"], _write(d / "t_bin.csv", "id,y", [f"r{i},{labels[i]}" for i in range(n)]),
                    _write(d / "p_prob.csv", "id,y", [f"r{i},{rng.random():.6f}" for i in order])),
            "rmse+mae": (["rmse", "mae"], _write(d / "t_num.csv", "id,y", [f"r{i},{i * 0.5}" for i in range(n)]),
                         _write(d / "p_num.csv", "id,y", [f"r{i},{i * 0.5 + rng.gauss(0, 1):.4f}" for i in order])),
            "accuracy+macro_f1": (["accuracy", "macro_f1"],
                                  _write(d / "t_lab.csv", "id,y", [f"r{i},{classes[i]}" for i in range(n)]),
                                  _write(d / "p_lab.csv", "id,y", [f"r{i},{rng.choice('abcdefghij')}" for i in order])),
            "map": (["map"], _write(d / "t_rank.csv", "id,y", [f"r{i},{classes[i]} {labels[i]}" for i in range(n)]),
                    _write(d / "p_rank.csv", "id,y", [f"r{i},{' '.join(rng.sample('abcdefghij01', 5))}"
                                                      for i in order])),
        }
        print(f"score_file on {n:,} rows, {repeats} runs each (median / max, seconds)")
        for name, (metrics, truth, pred) in cases.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                score_file(pred, truth, "id", "y", metrics)
                times.append(time.perf_counter() - start)
            print(f"  {name:<20} {statistics.median(times):.3f} / {max(times):.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
