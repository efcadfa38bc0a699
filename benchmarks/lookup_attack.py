"""Homework 2: can a program that knows the public digits answer without finding any twin?

The attack of issue 22: a ``hw02.py`` under the 64 KB cap carries what it knows about the
5,000 public offline MNIST digits and flags every digit whose label disagrees with it,
never looking for twins. Two such programs are built, each written as a real ``hw02.py``:

- **sketch** (the issue's): every public digit as 8 bytes (4x4-pooled to 7x7, PCA to 8
  dimensions, 8 bits each) plus its label; a digit of the file is looked up (3 nearest
  sketches) and flagged when the looked-up label is not its own;
- **cnn** (stronger): a small convolutional network (about 29,000 weights, 8 bits each)
  trained on the public digits *and* on new digits made from them by the final data's
  own synthesis (:func:`autograder.hw02.data.synthesize_digits`: the attacker knows the
  code); a digit is flagged when the network's probability of its label is below a
  threshold the attacker tunes on final sets it makes itself (other seeds).

Both, and the reference solution, run through the real grading path
(:func:`autograder.hw02.rules.run_sets` in the sandbox, :func:`~autograder.hw02.rules.score_runs`)
on ``--sets`` default ``make-final`` sets (fresh secret seeds, or ``--seed``). The homework
measures finding the twins: a look-up must not reach full marks (at most 3 errors).

Targets (issue 22): the best look-up below full marks on at least 80 % of the sets, the
reference at full marks on at least 95 %. ``--json``: last line
``{"sets": n, "lookup_full_marks": f, "reference_full_marks": f, "lookup_mean_errors": x,
"reference_mean_errors": y, "lookup_bytes": b}`` (the best look-up: the one with the most
full marks, then the fewest errors). Time on 2 cores: about 1.5 minutes to build the
network on a quiet machine (9 on one loaded by other jobs), then 15-45 s a set (the
reference's run; the look-ups take a few seconds): the default ``--sets 4`` takes about
3 to 5 minutes on a quiet machine. Measured figures: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder.hw02 import rules  # noqa: E402
from autograder.hw02.data import (FINAL_SIZE, load_final_sets, make_final_set, make_final_sets,  # noqa: E402
                                  synthesize_digits)
from noisylabels.evil_twins import all_offline_digits  # noqa: E402

REFERENCE = ROOT / "solutions" / rules.HW02 / "hw02.py"
HELPERS = rules.course_helpers()

_HEADER = '''\
# Author: Lou Kupp
# Netid: lk22
# Aid: none
"""Looks every digit up in what it carries about the public digits: finds no twin."""
import argparse, base64
import numpy as np
import mnist_util
p = argparse.ArgumentParser()
p.add_argument("--data")
p.add_argument("--labels")
a = p.parse_args()
X = mnist_util.read_images(a.data).astype(np.float32) / 255.0
y = np.asarray(mnist_util.read_labels(a.labels), dtype=np.int64)
'''

# ----------------------------------------------------------------------------- the sketch
SKETCH_PROGRAM = _HEADER + '''\
MEAN = np.frombuffer(base64.b85decode(b"{mean}"), dtype=np.float32)
AXES = np.frombuffer(base64.b85decode(b"{axes}"), dtype=np.float32).reshape(49, 8)
LO, STEP = {lo}, {step}
CODES = np.frombuffer(base64.b85decode(b"{codes}"), dtype=np.uint8).reshape(-1, 8)
PACKED = np.frombuffer(base64.b85decode(b"{labels}"), dtype=np.uint8)
LABELS = np.stack([PACKED >> 4, PACKED & 15], 1).ravel()[:len(CODES)]
TABLE = LO + CODES.astype(np.float32) * STEP
Z = (X.reshape(-1, 7, 4, 7, 4).mean((2, 4)).reshape(-1, 49) - MEAN) @ AXES
D = (Z ** 2).sum(1)[:, None] + (TABLE ** 2).sum(1)[None] - 2 * Z @ TABLE.T
near = np.argsort(D, 1)[:, :3]
votes = np.stack([np.bincount(LABELS[r], minlength=10) for r in near])
print(", ".join(str(i) for i in np.flatnonzero(votes.argmax(1) != y)))
'''


def sketch_program() -> str:
    """The issue's look-up: 8 bytes and a label for each public digit."""
    images, labels = all_offline_digits()
    pooled = (images.astype(np.float32) / 255.0).reshape(-1, 7, 4, 7, 4).mean((2, 4)).reshape(-1, 49)
    mean = pooled.mean(0)
    _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
    axes = vt[:8].T.astype(np.float32)
    z = (pooled - mean) @ axes
    lo, hi = float(z.min()), float(z.max())
    step = (hi - lo) / 255.0
    codes = np.clip(np.rint((z - lo) / step), 0, 255).astype(np.uint8)
    lab = np.append(labels, 0) if len(labels) % 2 else labels
    packed = (lab[0::2] << 4 | lab[1::2]).astype(np.uint8)

    def b85(a):
        return base64.b85encode(np.ascontiguousarray(a).tobytes()).decode()

    return SKETCH_PROGRAM.format(mean=b85(mean.astype(np.float32)), axes=b85(axes), lo=repr(lo),
                                 step=repr(step), codes=b85(codes), labels=b85(packed))


# ----------------------------------------------------------------------------- a tiny network
CNN_PROGRAM = _HEADER + '''\
import torch
import torch.nn.functional as F
SHAPES = {shapes}
SCALES = {scales}
RAW = np.frombuffer(base64.b85decode(b"{weights}"), dtype=np.int8).astype(np.float32)
W, at = [], 0
for shape, scale in zip(SHAPES, SCALES):
    size = int(np.prod(shape))
    W.append(torch.tensor(RAW[at:at + size].reshape(shape) * scale))
    at += size
h = torch.tensor(X)[:, None]
h = F.max_pool2d(F.relu(F.conv2d(h, W[0], W[1], padding=2)), 2)
h = F.max_pool2d(F.relu(F.conv2d(h, W[2], W[3], padding=2)), 2)
h = F.max_pool2d(F.relu(F.conv2d(h, W[4], W[5])), 2)
p = F.softmax(h.flatten(1) @ W[6].T + W[7], 1).numpy()
print(", ".join(str(i) for i in np.flatnonzero(p[np.arange(len(y)), y] < {threshold})))
'''


def _network():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 48, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(48 * 2 * 2, 10))


def _quantized(net):
    """The network's tensors as int8 with one scale each (what the program carries)."""
    import torch

    tensors, scales, raw = [], [], []
    for t in net.state_dict().values():
        t = t.detach().float()
        scale = float(t.abs().max()) / 127 or 1.0
        q = torch.clamp(torch.round(t / scale), -127, 127).to(torch.int8)
        tensors.append(q.float() * scale)
        scales.append(scale)
        raw.append(q.numpy().ravel())
    return tensors, scales, np.concatenate(raw)


def _probabilities(tensors, X):
    import torch
    import torch.nn.functional as F

    W = tensors
    with torch.no_grad():
        h = torch.as_tensor(X, dtype=torch.float32)[:, None] / 255.0
        h = F.max_pool2d(F.relu(F.conv2d(h, W[0], W[1], padding=2)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, W[2], W[3], padding=2)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, W[4], W[5])), 2)
        return F.softmax(h.flatten(1) @ W[6].T + W[7], 1).numpy()


def cnn_program(*, synthesized: int = 30000, epochs: int = 6, seed: int = 0, log=print) -> str:
    """The stronger look-up: a small network trained on the public and synthesized digits,
    its threshold tuned on three final sets the attacker makes with other seeds."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, labels = all_offline_digits()
    start = time.monotonic()
    new_images, new_labels = synthesize_digits(images, labels, synthesized, rng)
    X = torch.tensor(np.concatenate([images, new_images]), dtype=torch.float32)[:, None] / 255.0
    y = torch.tensor(np.concatenate([labels, new_labels]))
    net = _network()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=epochs * (len(X) // 128 + 1))
    for _ in range(epochs):
        for idx in torch.randperm(len(X)).split(128):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
    tensors, scales, raw = _quantized(net)
    # The attacker's own final sets (its seeds): the threshold with the fewest errors.
    calibration = []
    for _ in range(3):
        s = make_final_set(images, labels, rng)
        p = _probabilities(tensors, s.images)
        calibration.append((p[np.arange(len(s.labels)), s.labels.astype(int)], s.evil))
    grid = [0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001]
    errors = {t: np.mean([rules.count_errors(np.flatnonzero(p < t), evil)[0] for p, evil in calibration])
              for t in grid}
    threshold = min(grid, key=lambda t: errors[t])
    log(f"cnn: {len(raw)} weights, trained in {time.monotonic() - start:.0f} s; threshold {threshold} "
        f"({errors[threshold]:.1f} errors a set on the attacker's own sets)")
    shapes = [tuple(t.shape) for t in tensors]
    return CNN_PROGRAM.format(shapes=repr(shapes), scales=repr(scales), threshold=repr(threshold),
                              weights=base64.b85encode(raw.astype(np.int8).tobytes()).decode())


def lookup_programs(log=print, **cnn_options) -> dict:
    """``{name: hw02.py source}`` for the look-ups, each under the size cap (checked)."""
    programs = {"sketch": sketch_program(), "cnn": cnn_program(log=log, **cnn_options)}
    for name, text in programs.items():
        size = len(text.encode())
        if size > rules.MAX_PROGRAM_BYTES:
            raise RuntimeError(f"the {name} look-up is {size} bytes, over the {rules.MAX_PROGRAM_BYTES} cap")
    return programs


# ----------------------------------------------------------------------------- the benchmark
def grade_on_sets(program: Path, sets) -> list:
    """Errors on each set through the real grading path (sandbox, rules); None when not ``ok``."""
    runs = rules.run_sets(program, [(s.data, s.labels, s.n_digits) for s in sets], helpers=HELPERS)
    out = []
    for run, s in zip(runs, sets):
        grade = rules.score_runs([run], [s.evil])
        out.append(grade.errors if grade.status == "ok" else None)
    return out


def _summary(errors: list) -> dict:
    full = [e is not None and e <= rules.FREE_ERRORS for e in errors]
    counted = [e if e is not None else FINAL_SIZE for e in errors]
    return {"full_marks": round(float(np.mean(full)), 3), "mean_errors": round(float(np.mean(counted)), 2),
            "errors": errors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=int, default=4, help="make-final sets to grade on (default 4)")
    parser.add_argument("--seed", type=int, default=None, help="make-final's seed (default: secret, fresh)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    log = (lambda *a, **k: None) if args.json else print
    start = time.monotonic()
    programs = lookup_programs(log=log)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_final_sets(tmp / "final", n_sets=args.sets, seed=args.seed, log=log)
        sets = load_final_sets(tmp / "final")
        paths = {"reference": REFERENCE}
        for name, text in programs.items():
            paths[name] = tmp / name / "hw02.py"
            paths[name].parent.mkdir()
            paths[name].write_text(text)
        for name, path in paths.items():
            t = time.monotonic()
            results[name] = _summary(grade_on_sets(path, sets))
            log(f"{name:>9}: errors {results[name]['errors']}, full marks on "
                f"{results[name]['full_marks']:.0%} of {len(sets)} sets ({time.monotonic() - t:.0f} s)")
    lookups = [n for n in programs]
    best = max(lookups, key=lambda n: (results[n]["full_marks"], -results[n]["mean_errors"]))
    ok_lookup = 1 - results[best]["full_marks"] >= 0.8
    ok_reference = results["reference"]["full_marks"] >= 0.95
    log(f"best look-up: {best} ({len(programs[best].encode())} bytes); below full marks on "
        f"{1 - results[best]['full_marks']:.0%} of the sets (target 80 %: {'met' if ok_lookup else 'MISSED'}); "
        f"reference at full marks on {results['reference']['full_marks']:.0%} (target 95 %: "
        f"{'met' if ok_reference else 'MISSED'}); {time.monotonic() - start:.0f} s")
    print(json.dumps({"sets": args.sets, "lookup_full_marks": results[best]["full_marks"],
                      "reference_full_marks": results["reference"]["full_marks"],
                      "lookup_mean_errors": results[best]["mean_errors"],
                      "reference_mean_errors": results["reference"]["mean_errors"],
                      "lookup_bytes": len(programs[best].encode())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
