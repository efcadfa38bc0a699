"""Zhang et al.'s corruption-vs-generalization curve (Fig. 1c) on the offline MNIST digits.

For each model (MLP 1x512 and LeNet) and each corruption level (0, 0.2, ..., 1.0), train a
fresh network with SGD (momentum 0.9, lr x0.95 per epoch; ``ZHANG_SETTINGS``) until it fits
the corrupted training labels (99.5 % accuracy over an epoch's batches), and report train
error (against the corrupted labels), test error (clean labels), epochs to fit and the
training time (wall and CPU: the CPU seconds compare across machine loads). Lesson 01 shows
the same curve with the same function, ``corruption_sweep``.

    python benchmarks/corruption_curve.py --json

Target (issue 4): train error <= 0.01 at every level for both models; test error <= 0.10
at level 0 and >= 0.85 at level 1.0; the whole run under 8 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import noisylabels as nl
from noisylabels.memorization import ZHANG_LEVELS, corruption_sweep


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    parser.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp, cnn, inception")
    parser.add_argument("--levels", default=",".join(str(p) for p in ZHANG_LEVELS))
    parser.add_argument("--num-train", type=int, default=None,
                        help="use only the first N of the 4,000 training digits (default: all)")
    parser.add_argument("--num-epochs", type=int, default=None, help="epoch cap (default: ZHANG_SETTINGS)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    levels = [float(p) for p in args.levels.split(",")]
    X, y, X_test, y_test = nl.load_offline_mnist()
    if args.num_train:
        X, y = X[: args.num_train], y[: args.num_train]
    extra = {"num_epochs": args.num_epochs} if args.num_epochs else {}
    result = {}
    start = time.perf_counter()
    for name in args.models.split(","):
        cpu_start = time.process_time()
        curve = corruption_sweep(name, X, y, X_test, y_test, levels, seed=args.seed, progress=False, **extra)
        result[name] = {
            "levels": curve.levels,
            "train_error": [round(float(e), 4) for e in curve.train_error],
            "test_error": [round(float(e), 4) for e in curve.test_error],
            "epochs_to_fit": curve.epochs_to_fit,
            "seconds": round(float(sum(curve.seconds)), 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1),
        }
        print(f"{name}: {len(y)} training digits", file=sys.stderr if args.json else sys.stdout)
        for p, tr, te, ep, s in zip(levels, curve.train_error, curve.test_error, curve.epochs_to_fit, curve.seconds):
            print(f"  corruption {p:.1f}: train error {tr:.4f}  test error {te:.4f}  epochs to fit {ep}  {s:.1f} s",
                  file=sys.stderr if args.json else sys.stdout)
    total = time.perf_counter() - start
    print(f"total {total:.1f} s", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
