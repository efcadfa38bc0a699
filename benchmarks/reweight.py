"""Learning to reweight (Ren et al. 2018) against fixed rules, under class imbalance and label noise (lesson 06).

On the offline MNIST digits (400 training digits a class):

- **imbalance**: MNIST 4 vs 9 (``noisylabels.imbalanced_pair``: 9 the majority, label 0, 4 the rare class, label 1; 5
  clean validation images of each class set aside, so 395 majority digits), majority
  proportion 0.9 / 0.95 / 0.98 / 0.99 / 0.995 (0.995 leaves 2 minority digits; 0.9975,
  one digit, is the most the data allow). A LeNet per method, SGD momentum 0.9, lr 0.01,
  batch 100, ``--steps`` steps: plain cross-entropy (baseline), oversampling the minority
  class (resampling), learning to reweight with the 10 clean images, and the fair baseline:
  oversampling the training set plus those 10 clean images. Balanced test
  error on the 200 test 4s and 9s, averaged over ``--seeds`` seeds.
- **noise**: 40 % of the ten-class labels flipped to another class, 10 clean images a
  class set aside, ``--noise-train`` (2,000) noisy training digits; a LeNet, Adam lr 2e-3,
  batch 100, the same budget for the baseline and learning to reweight
  (``--noise-epochs``, 30, epochs, 5 more than lesson 06); final test accuracy, plus the two fair
  baselines (the baseline early-stopped on the clean images, and trained on them too), and the mean
  learned weight (times the batch size) of clean and of corrupted examples over the
  last three epochs.
- **step cost**: median time of a reweighted step over a plain step (LeNet, batch 100,
  one thread, interleaved), for the default forward-mode step and the literal look-ahead.

``--model mlp`` trains lesson 06's default-size model (an MLP 1x512) instead of the paper's LeNet.

The imbalance runs and the step timing are lesson 06's own (``noisylabels.imbalance_errors``,
``noisylabels.reweighted_step_seconds``). The measured wall time is in ``benchmarks/README.md``.

    python benchmarks/reweight.py            # a report, then the JSON line
    python benchmarks/reweight.py --json     # only the JSON line

The last line is ``{"imbalance": [{"proportion": p, "baseline_error": e,
"resample_error": e, "l2rw_error": e, "resample_clean_error": e}, ...], "noise": {"noise_rate": 0.4,
"baseline_accuracy": a, "baseline_early_stopped_accuracy": a,
"baseline_with_clean_accuracy": a, "l2rw_accuracy": a, "mean_weight_clean": w,
"mean_weight_corrupted": w}, "step_cost_ratio": r, "seconds": s}``.
Targets (issue 6): at the two most imbalanced proportions L2RW's error at least 10
points below the baseline's; under 40 % noise L2RW at least 10 points above the
baseline with the corrupted examples' mean weight at most a quarter of the clean
ones'; a reweighted step at most 3.5 times a plain step; under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

import noisylabels as nl

PROPORTIONS = (0.9, 0.95, 0.98, 0.99, 0.995)
#: The methods compared under imbalance, and their keys in the JSON line.
METHODS = {"baseline": "baseline", "resampling": "resample", "L2RW": "l2rw", "resampling + clean": "resample_clean"}


def noise_run(noise_rate: float, num_epochs: int, lr: float, num_train: int, seed: int = 0, model: str = "cnn",
              data=None):
    """Lesson 06's noise comparison (``noisylabels.noise_accuracies``) as the JSON's ``noise`` entry."""
    result = nl.noise_accuracies(noise_rate, seed, num_train=num_train, num_epochs=num_epochs, lr=lr, model=model,
                                 data=data)
    return {
        "noise_rate": noise_rate,
        "baseline_accuracy": round(result["final"]["baseline"], 4),
        "baseline_early_stopped_accuracy": round(result["early_stopped"]["baseline"], 4),
        "baseline_with_clean_accuracy": round(result["final"]["baseline + clean"], 4),
        "l2rw_accuracy": round(result["final"]["L2RW"], 4),
        "mean_weight_clean": round(result["mean_weight_clean"], 4),
        "mean_weight_corrupted": round(result["mean_weight_corrupted"], 4),
    }, result["histories"]["L2RW"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--seeds", type=int, default=2, help="seeds averaged at each proportion")
    parser.add_argument("--steps", type=int, default=300, help="training steps of each imbalance run")
    parser.add_argument("--noise-epochs", type=int, default=30)
    parser.add_argument("--noise-lr", type=float, default=2e-3)
    parser.add_argument("--noise-train", type=int, default=2000, help="noisy training digits")
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn",
                        help="the paper's LeNet (cnn) or the MLP lesson 06 trains below full size")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (tiny models: one is faster than two sharing the cores)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, flush=True))

    start = time.perf_counter()
    data = nl.load_offline_mnist()
    imbalance = []
    for p in PROPORTIONS:
        per_seed = [nl.imbalance_errors(p, seed, num_steps=args.steps, methods=tuple(METHODS), model=args.model,
                                        data=data)
                    for seed in range(args.seeds)]
        row = {"proportion": p}
        for method, key in METHODS.items():
            row[f"{key}_error"] = round(float(np.mean([e[method] for e in per_seed])), 4)
        imbalance.append(row)
        say(f"proportion {p}: balanced test error baseline {row['baseline_error']:.3f}, "
            f"resampling {row['resample_error']:.3f}, L2RW {row['l2rw_error']:.3f}, "
            f"resampling with the clean images {row['resample_clean_error']:.3f}")
    noise, l2rw = noise_run(0.4, args.noise_epochs, args.noise_lr, args.noise_train, model=args.model, data=data)
    say(f"40 % flip noise: test accuracy baseline {noise['baseline_accuracy']:.3f} (early-stopped on the clean "
        f"images {noise['baseline_early_stopped_accuracy']:.3f}, trained on them too "
        f"{noise['baseline_with_clean_accuracy']:.3f}), "
        f"L2RW {noise['l2rw_accuracy']:.3f} (best {max(l2rw.test_acc):.3f}); mean weight clean "
        f"{noise['mean_weight_clean']:.3f}, corrupted {noise['mean_weight_corrupted']:.3f}")
    cost = nl.reweighted_step_seconds()
    ratio = round(cost["forward"] / cost["plain"], 2)
    say(f"step: plain {1000 * cost['plain']:.1f} ms, reweighted {1000 * cost['forward']:.1f} ms "
        f"({ratio:.2f}x), literal look-ahead {1000 * cost['look-ahead']:.1f} ms "
        f"({cost['look-ahead'] / cost['plain']:.2f}x)")
    seconds = round(time.perf_counter() - start, 1)

    gaps = [r["baseline_error"] - r["l2rw_error"] for r in imbalance[-2:]]
    targets = {
        "imbalance: L2RW >= 10 points below baseline at the two largest proportions": min(gaps) >= 0.10,
        "noise: L2RW >= 10 points above baseline":
            noise["l2rw_accuracy"] - noise["baseline_accuracy"] >= 0.10,
        "noise: corrupted mean weight <= 1/4 of clean":
            noise["mean_weight_corrupted"] <= noise["mean_weight_clean"] / 4,
        "reweighted step <= 3.5x a plain step": ratio <= 3.5,
        "run under 10 minutes": seconds < 600,
    }
    for name, met in targets.items():
        say(f"[{'met' if met else 'MISSED'}] {name}")
    sys.stdout.flush()
    print(json.dumps({"imbalance": imbalance, "noise": noise, "step_cost_ratio": ratio, "seconds": seconds}))


if __name__ == "__main__":
    main()
