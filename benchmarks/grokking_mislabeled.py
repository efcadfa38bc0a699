"""Grokking with mislabeled training data (lesson 03): seconds a step and steps to grok, before and after.

"before" is the recipe lesson 03 used until issue 25 (the notes' transformer: 2 layers, width 128,
AdamW lr 1e-3, batch 512, one run after the other); "after" is the lesson's recipe now (SETTINGS
"default" of the lesson: 1 layer, width 64, lr 3e-3). Both train on (a + b) mod 97, training fraction
0.4, weight decay 1.0, and are timed in this one run, single-threaded by default (the lesson's kernel):

- seconds a step: training steps of one run alone (no evaluation), ``--rounds`` rounds of
  ``--time-steps`` steps, the recipes taking turns so that both see the same machine load (the
  median round is reported); for "after" also the lesson's group (6 runs stacked by
  ``nl.train_grokking_runs``), per run-step;
- steps to grok: the first evaluated step (every 100) with validation accuracy >= 0.7 (the lesson's
  ``GROKKED``), >= 0.9 and >= 0.99, for the clean data (stopped at 0.99) and for 10 % mislabeled
  (run to the cap), seed 0, trained with ``nl.train_grokking`` up to a cap (``None``: not reached).
  The caps are each lesson's budgets: before 3,000 clean and 8,000 mislabeled, after 2,000 and 3,000.
  ``--quick`` skips the old recipe's mislabeled run (8,000 steps of the old model: about 45 minutes
  on a shared machine) and reports it as not measured.

    python benchmarks/grokking_mislabeled.py --quick --json  # 12 min on a shared machine (load 6)
    python benchmarks/grokking_mislabeled.py --json          # adds the old 8,000-step mislabeled run

The last line with ``--json``: ``{"recipes": {"before": {...}, "after": {...}}, "speedup": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

RECIPES = {
    "before": dict(layers=2, width=128, heads=4, lr=1e-3, batch_size=512),
    "after": dict(layers=1, width=64, heads=4, lr=3e-3, batch_size=512),
}
CAPS = {"before": {0.0: 3000, 0.1: 8000}, "after": {0.0: 2000, 0.1: 3000}}
THRESHOLDS = (0.7, 0.9, 0.99)


def seconds_a_step(recipe, data, steps, runs=1):
    """Seconds of one training step of ``runs`` runs stacked (the lesson's seeds), evaluation left out."""
    import noisylabels as nl

    group = [nl.GrokkingRun(data, seed=s) for s in range(runs)]
    nl.train_grokking_runs(group, num_steps=5, eval_every=10**9, progress=False, **recipe)  # warm-up
    start = time.perf_counter()
    nl.train_grokking_runs(group, num_steps=steps, eval_every=10**9, progress=False, **recipe)
    return (time.perf_counter() - start) / steps


def steps_to_grok(recipe, frac, cap, seed):
    """First steps (evaluated every 100) at each of ``THRESHOLDS``, the wall time and the log; a clean
    run stops at validation accuracy 0.99, a mislabeled one runs to ``cap``."""
    import noisylabels as nl

    data = nl.make_grokking_data(97, 0.4, frac, seed=seed)
    start = time.perf_counter()
    _, log = nl.train_grokking(data, num_steps=cap, seed=seed, stop_at_val_acc=None if frac else 0.99,
                               progress=False, **recipe)
    return {str(t): log.steps_to_val(t) for t in THRESHOLDS}, time.perf_counter() - start, log


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    parser.add_argument("--quick", action="store_true", help="skip the old recipe's mislabeled run")
    parser.add_argument("--time-steps", type=int, default=50, help="steps timed in each round")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (the lesson's kernel: 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    import noisylabels as nl

    torch.set_num_threads(args.threads)
    out = sys.stderr if args.json else sys.stdout
    clean = nl.make_grokking_data(97, 0.4, 0.0, seed=args.seed)
    result = {"threads": args.threads, "recipes": {name: {"recipe": recipe} for name, recipe in RECIPES.items()}}
    timings = {"before": [], "after": [], "after_6_stacked": []}
    for _ in range(args.rounds):  # the recipes take turns: both see the same load
        timings["before"].append(seconds_a_step(RECIPES["before"], clean, args.time_steps))
        timings["after"].append(seconds_a_step(RECIPES["after"], clean, args.time_steps))
        timings["after_6_stacked"].append(seconds_a_step(RECIPES["after"], clean, args.time_steps, runs=6) / 6)
    for name in RECIPES:
        result["recipes"][name]["seconds_a_step"] = round(statistics.median(timings[name]), 4)
        result["recipes"][name]["seconds_a_step_rounds"] = [round(t, 4) for t in timings[name]]
        print(f"{name}: {result['recipes'][name]['seconds_a_step'] * 1000:.1f} ms a step", file=out)
    result["recipes"]["after"]["seconds_a_run_step_6_stacked"] = round(statistics.median(timings["after_6_stacked"]), 4)
    for name, recipe in RECIPES.items():
        row = result["recipes"][name]
        for frac in (0.0, 0.1):
            key = "clean" if frac == 0 else "mislabeled_10pct"
            if args.quick and name == "before" and frac > 0:
                row[key] = {"steps_to_grok": "not measured (--quick)", "cap": CAPS[name][frac]}
                continue
            steps, seconds, log = steps_to_grok(recipe, frac, CAPS[name][frac], args.seed)
            row[key] = {"steps_to_val": steps, "cap": CAPS[name][frac], "seconds": round(seconds, 1),
                        "val_at_end": round(log.val_acc[-1], 3), "steps_run": log.step[-1]}
            print(f"{name} {key}: first step with val >= {steps} (cap {CAPS[name][frac]}), {seconds:.0f} s", file=out)
    before, after = result["recipes"]["before"], result["recipes"]["after"]
    result["speedup"] = {"seconds_a_step": round(before["seconds_a_step"] / after["seconds_a_step"], 2)}
    b, a = before["clean"]["steps_to_val"]["0.99"], after["clean"]["steps_to_val"]["0.99"]
    if b and a:
        result["speedup"]["clean_seconds_to_val_0.99"] = round(b * before["seconds_a_step"] / (a * after["seconds_a_step"]), 1)
    print(f"per step: {result['speedup']['seconds_a_step']}x faster", file=out)
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
