"""How long the course takes: ``noisylabels build`` timed, and the training step it leans on.

Two parts, both through the library the lessons use:

- ``build``: :func:`noisylabels.build.build` at ``--size`` (default ``default``) with
  ``--jobs`` notebooks at a time (default: one a core on a small machine), into a scratch
  folder: wall seconds of the whole build and seconds of every notebook, each checked
  against issue 25's targets (each lesson at most 300 s, the whole build at most 600 s on
  2 cores). Every notebook must run ok (its closing checks pass).
- ``step``: :func:`noisylabels.fit` of lesson 02's 784-512-10 MLP on the 4,000 offline
  MNIST digits, batches of 64, one thread, with ``optimizer="adam"`` (torch's fused Adam
  since issue 25) and with torch's plain for-loop Adam (what ``"adam"`` was before):
  seconds an epoch (the faster of two runs in turns, after an untimed warm-up run of each)
  and the test accuracies from the same initial weights, which must agree.

The load average is printed at the start and the end: on a busy machine the figures mean
little. Time: 6-8 minutes on a quiet 2-core machine (``--skip-build``: 20 s).
``--json`` prints only the JSON line:
``{"build": {"wall_s", "notebooks": {name: s}, "all_ok", "lessons_under_300_s", "under_600_s"},
"step": {"fused_s_per_epoch", "plain_s_per_epoch", "speedup", "same_accuracy"}, "load": [start, end]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import noisylabels as nl  # noqa: E402
from noisylabels.build import build, format_table  # noqa: E402


def time_build(size: str, jobs: int | None, progress: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        runs = build(out=out, size=size, jobs=jobs, progress=progress)
        wall = time.perf_counter() - start
    if progress:
        print(format_table(runs))
    lessons = [r for r in runs if r.notebook.startswith("lessons/")]
    return {"wall_s": round(wall, 1), "notebooks": {r.notebook: round(r.seconds, 1) for r in runs},
            "all_ok": all(r.status == "ok" for r in runs), "failed": [r.notebook for r in runs if r.status != "ok"],
            "lessons_under_300_s": all(r.seconds <= 300 for r in lessons), "under_600_s": wall <= 600}


def time_steps(num_epochs: int, repeats: int = 2) -> dict:
    torch.set_num_threads(1)
    X, y, X_test, y_test = nl.load_offline_mnist()
    plain = lambda params: torch.optim.Adam(params, lr=1e-3, foreach=False)  # noqa: E731
    optimizers = {"fused": "adam", "plain": plain}

    def run(optimizer, epochs):
        torch.manual_seed(0)  # the same initial weights for both
        model = nl.MLP()
        start = time.perf_counter()
        history = nl.fit(model, (X, y), (X_test, y_test), num_epochs=epochs, lr=1e-3, optimizer=optimizer,
                         batch_size=64, progress=False, eval_train=False)
        return time.perf_counter() - start, [round(a, 4) for a in history.test_acc]

    for optimizer in optimizers.values():  # the first fit of a process pays for warming up (2x slower)
        run(optimizer, 1)
    seconds = {name: [] for name in optimizers}
    result = {}
    for _ in range(repeats):  # in turns
        for name, optimizer in optimizers.items():
            took, result[f"{name}_test_acc"] = run(optimizer, num_epochs)
            seconds[name].append(took / num_epochs)
    for name in optimizers:
        result[f"{name}_s_per_epoch"] = round(min(seconds[name]), 3)
    result["speedup"] = round(result["plain_s_per_epoch"] / result["fused_s_per_epoch"], 2)
    result["same_accuracy"] = bool(np.allclose(result["fused_test_acc"], result["plain_test_acc"], atol=2e-3))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="default", choices=("quick", "default", "full"))
    parser.add_argument("--jobs", type=int, default=None, help="notebooks at a time (default: one a core)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the step comparison")
    parser.add_argument("--skip-build", action="store_true", help="only the step comparison")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    report = {"step": time_steps(args.epochs)}
    if not args.json:
        print("fit with Adam, s an epoch: fused", report["step"]["fused_s_per_epoch"],
              "plain", report["step"]["plain_s_per_epoch"], "speed-up", report["step"]["speedup"])
    if not args.skip_build:
        report["build"] = time_build(args.size, args.jobs, progress=not args.json)
    report["load"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
