"""Homework 2, "evil twins": the data generator the homework and lesson 02 use.

An *evil twin* is a digit that looks the same as another digit of the file (an exact
copy, or a near copy: a little pixel noise or a one-pixel shift) but carries a
different, wrong label. Its good twin may also be absent from the file, leaving a
plain mislabelled digit.

Students can make practice files (the answers are in ``key.txt``)::

    python -m noisylabels.evil_twins make-data OUT_DIR --seed 1 --kind absent

The grading rules, the sandboxed runner and the instructor's secret final data are not
here but in ``autograder/`` (``hw02_rules.py``, ``hw02_data.py``): the teaching library
is what students may read and run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import write_idx_images, write_idx_labels

__all__ = [
    "TWIN_KINDS",
    "HW02",
    "EvilTwinSet",
    "make_evil_twin_set",
    "write_evil_twin_files",
    "DEBUG_SETTINGS",
    "make_debugging_files",
    "STUDENT_STUB",
]

#: The assignment's folder name in ``solutions/`` and ``assignments/``.
HW02 = "hw02_evil_twins"

#: What the generator can plant: exact copies, near copies (pixel noise or a one-pixel
#: shift), copies whose good twin is absent, a mix of the three, or no twins at all.
TWIN_KINDS = ("exact", "near", "absent", "mixed", "none")


DATA_NAME = "digits_ubyte.gz"
LABELS_NAME = "labels_ubyte.gz"
KEY_NAME = "key.txt"


# ----------------------------------------------------------------------------- grading data
@dataclass
class EvilTwinSet:
    """A generated file: ``images`` ``(n, 28, 28)`` uint8, ``labels`` ``(n,)``, ``evil`` (sorted indices).

    ``good_twin[i]`` is the index of evil twin ``i``'s good twin, or -1 when it is absent.
    Homework 2's data (prepared by lesson 02).
    """

    images: np.ndarray
    labels: np.ndarray
    evil: list
    good_twin: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)


def all_offline_digits():
    """All 5,000 offline MNIST digits as uint8 images ``(n, 28, 28)`` and int64 labels: the pool
    homework 2's sets are drawn from."""
    from .data import load_offline_mnist

    X_train, y_train, X_test, y_test = load_offline_mnist()
    X = np.concatenate([X_train, X_test])
    y = np.concatenate([y_train, y_test])
    return np.rint(X * 255).astype(np.uint8), y.astype(np.int64)


def _near_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy that still looks the same: a little pixel noise, a one-pixel shift, or both."""
    img = image.astype(np.float64)
    how = rng.choice(["noise", "shift", "both"])
    if how in ("shift", "both"):
        dy, dx = [(0, 1), (0, -1), (1, 0), (-1, 0)][rng.integers(4)]
        img = np.roll(np.roll(img, dy, axis=0), dx, axis=1)
    if how in ("noise", "both"):
        img = img + rng.normal(0.0, 12.0, size=img.shape) * (img > 0)
        # a few stray pixels switched on or off
        flips = rng.integers(0, 784, size=6)
        img.flat[flips] = np.where(img.flat[flips] > 127, 0, 200)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_evil_twin_set(size: int = 165, n_twins: int = 15, kind: str = "mixed", seed: int = 0,
                       absent: int | None = None, digits=None) -> EvilTwinSet:
    """Draw ``size`` digits from the offline MNIST set, ``n_twins`` of them evil twins.

    ``kind`` is one of :data:`TWIN_KINDS`: ``"exact"`` (pixel-for-pixel copies of a digit
    in the file), ``"near"`` (copies with a little noise or a one-pixel shift: they still
    look the same), ``"absent"`` (exact or near copies, ``absent`` of them, by default a
    third, with their good twin left out of the file), ``"mixed"`` (exact and near copies,
    ``absent`` of them, by default a fifth, without their good twin), ``"none"`` (no
    twins; ``n_twins`` ignored). ``absent`` may be set for any kind (``absent=n_twins``:
    every good twin is missing, and the twins are plain mislabelled digits). Each evil
    twin's label is drawn uniformly among the nine wrong classes. The same arguments
    give the same file on every machine. Homework 2's data (prepared by lesson 02).
    """
    if kind not in TWIN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TWIN_KINDS)}, got {kind!r}")
    if kind == "none":
        n_twins = 0
    if not 0 <= n_twins < size:
        raise ValueError(f"n_twins must be between 0 and size - 1, got {n_twins} for size {size}")
    if absent is None:
        absent = {"absent": n_twins // 3, "mixed": n_twins // 5}.get(kind, 0)
    if not 0 <= absent <= n_twins:
        raise ValueError(f"absent must be between 0 and n_twins ({n_twins}), got {absent}")
    X_all, y_all = digits if digits is not None else all_offline_digits()
    rng = np.random.default_rng(seed)
    styles = {"exact": ["exact"], "near": ["near"]}.get(kind, ["exact", "near"])
    kinds = [styles[i % len(styles)] for i in range(n_twins - absent)] + ["absent"] * absent
    kinds = [str(k) for k in rng.permutation(kinds)] if kinds else []
    n_present = sum(k != "absent" for k in kinds)
    n_absent = n_twins - n_present
    n_clean = size - n_twins  # correctly labelled distinct digits in the file
    if n_clean < n_present:
        raise ValueError(f"{n_present} evil twins need at least as many clean digits (size too small)")
    drawn = rng.choice(len(X_all), size=n_clean + n_absent, replace=False)
    clean, hidden = drawn[:n_clean], drawn[n_clean:]
    images = [X_all[i] for i in clean]
    labels = [int(y_all[i]) for i in clean]
    sources = list(rng.choice(n_clean, size=n_present, replace=False))  # good twins present
    evil_rows, good_of, kind_of = [], {}, {}
    hidden = list(hidden)
    for k in kinds:
        if k == "absent":
            h = hidden.pop()
            src_img, true = X_all[h], int(y_all[h])
            twin_img = src_img.copy() if rng.random() < 0.5 else _near_copy(src_img, rng)
            good = -1
        else:
            good = int(sources.pop())
            src_img, true = images[good], labels[good]
            twin_img = src_img.copy() if k == "exact" else _near_copy(src_img, rng)
        wrong = int(rng.choice([c for c in range(10) if c != true]))
        evil_rows.append(len(images))
        good_of[len(images)] = good
        kind_of[len(images)] = k
        images.append(twin_img)
        labels.append(wrong)
    order = rng.permutation(len(images))  # new position -> old row
    where = np.empty_like(order)
    where[order] = np.arange(len(order))  # old row -> new position
    images = np.stack(images)[order]
    labels = np.asarray(labels, dtype=np.uint8)[order]
    evil = sorted(int(where[r]) for r in evil_rows)
    good_twin = {int(where[r]): (int(where[g]) if g >= 0 else -1) for r, g in good_of.items()}
    kinds_map = {int(where[r]): str(k) for r, k in kind_of.items()}
    return EvilTwinSet(images=images, labels=labels, evil=evil, good_twin=good_twin, kinds=kinds_map)


def write_evil_twin_files(out_dir, size: int = 165, n_twins: int = 15, kind: str = "mixed",
                          seed: int = 0, data_name: str = DATA_NAME, labels_name: str = LABELS_NAME,
                          key_name: str | None = KEY_NAME):
    """Generate a set (see :func:`make_evil_twin_set`) and write its IDX files and key.

    Returns ``(data_path, labels_path, key_path, evil)``; with ``key_name=None`` no key
    file is written (``key_path`` is ``None``). Homework 2's data (prepared by lesson 02).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    twin_set = make_evil_twin_set(size=size, n_twins=n_twins, kind=kind, seed=seed)
    data_path = write_idx_images(out / data_name, twin_set.images, compress=True)
    labels_path = write_idx_labels(out / labels_name, twin_set.labels, compress=True)
    key_path = None
    if key_name:
        key_path = out / key_name
        key_path.write_text(", ".join(map(str, twin_set.evil)) + "\n")
    return data_path, labels_path, key_path, twin_set.evil


#: The debugging files shipped with the homework: 165 digits, 15 exact evil twins, all
#: good twins present (as in the homework's debugging files).
DEBUG_SETTINGS = dict(size=165, n_twins=15, kind="exact", seed=462)


def make_debugging_files(out_dir):
    """Write the homework's ``bad_digits_ubyte.gz`` / ``bad_labels_ubyte.gz``; return the evil indices."""
    _, _, _, evil = write_evil_twin_files(out_dir, data_name="bad_digits_ubyte.gz",
                                          labels_name="bad_labels_ubyte.gz", key_name=None,
                                          **DEBUG_SETTINGS)
    return evil


# ----------------------------------------------------------------------------- the student's stub
#: The ``hw02.py`` students receive (``solutions/hw02_evil_twins/hw02.py`` is the
#: reference solution, which nbgrader would otherwise copy verbatim into the release).
STUDENT_STUB = '''\
# Author: your name
# Netid: your netid
# Aid: If in doubt, list anything your referenced. A stack overflow post, chatgpt, gemini, your friend Bob, etc. If referring to an LLM, you must included a link to a particular session. Just saying "I asked chatgpt" isn't a get out of trouble free statement. If two submissions are nearly identical and nothing is listed, I will have to assume that there was copying with an attempt at obfuscation.
"""Homework 2, "evil twins": print the indices of the mislabelled digits.

    python3 hw02.py --data bad_digits_ubyte.gz --labels bad_labels_ubyte.gz

must print your best guess of the evil twins' indices as one comma-separated line,
for example ``2, 3, 12, 19``. Start from train_linear_mnist.py and mnist_util.py.
"""

import argparse

import mnist_util


def find_evil_twins(images, labels):
    """Return the list of indices you believe are evil twins."""
    # YOUR CODE HERE: train, look at what the network gets wrong, combine runs.
    return []


def main():
    parser = argparse.ArgumentParser(description="Find the evil twins in an MNIST-format file.")
    parser.add_argument("--data", required=True, help="IDX image file, e.g. bad_digits_ubyte.gz")
    parser.add_argument("--labels", required=True, help="IDX label file, e.g. bad_labels_ubyte.gz")
    args = parser.parse_args()
    images = mnist_util.read_images(args.data)
    labels = mnist_util.read_labels(args.labels)
    print(", ".join(str(i) for i in find_evil_twins(images, labels)))


if __name__ == "__main__":
    main()
'''


# ----------------------------------------------------------------------------- command line
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m noisylabels.evil_twins",
        description="Homework 2 (evil twins): write a practice data set, or the debugging files.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-data", help="write a practice set: digits_ubyte.gz, labels_ubyte.gz, key.txt")
    make.add_argument("out_dir")
    make.add_argument("--seed", type=int, required=True, help="any integer (instructors: see python -m autograder.hw02.data)")
    make.add_argument("--size", type=int, default=165, help="number of digits (default 165)")
    make.add_argument("--twins", type=int, default=15, help="number of evil twins (0 for none)")
    make.add_argument("--kind", choices=TWIN_KINDS, default="mixed")
    make.add_argument("--absent", type=int, default=None,
                      help="evil twins without their good twin (default: a fifth for mixed, "
                           "a third for absent, else 0)")
    debug = sub.add_parser("make-debugging-files", help="rewrite the homework's bad_*_ubyte.gz files")
    debug.add_argument("out_dir")
    args = parser.parse_args(argv)
    if args.command == "make-data":
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        twin_set = make_evil_twin_set(size=args.size, n_twins=args.twins, kind=args.kind,
                                      absent=args.absent, seed=args.seed)
        write_idx_images(out / DATA_NAME, twin_set.images, compress=True)
        write_idx_labels(out / LABELS_NAME, twin_set.labels, compress=True)
        (out / KEY_NAME).write_text(", ".join(map(str, twin_set.evil)) + "\n")
        print(f"wrote {out / DATA_NAME}, {out / LABELS_NAME} ({len(twin_set.labels)} digits) and "
              f"{out / KEY_NAME} ({len(twin_set.evil)} evil twins)")
    else:
        evil = make_debugging_files(args.out_dir)
        print("evil twins:", ", ".join(map(str, evil)))


if __name__ == "__main__":
    main()
