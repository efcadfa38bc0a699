"""Reading the homework's MNIST-format (IDX) files, for hw02.py and train_linear_mnist.py.

Self-contained (NumPy only): the grader runs hw02.py with NumPy and PyTorch and nothing
else of the course, so this file must not import the course library.

    images = read_images("bad_digits_ubyte.gz")   # uint8, shape (n, 28, 28)
    labels = read_labels("bad_labels_ubyte.gz")   # uint8, shape (n,)
    X, y = as_tensors(images, labels)             # float32 (n, 784) in [0, 1], int64 (n,)
"""

import gzip

import numpy as np


def _read_idx(path, ndim):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != ndim:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s)")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: the header says {shape} but the file holds {body.size} bytes")
    return body.reshape(shape).copy()


def read_images(path):
    """The digits of an IDX image file (gzipped or not): uint8 of shape (n, 28, 28)."""
    return _read_idx(path, 3)


def read_labels(path):
    """The labels of an IDX label file (gzipped or not): uint8 of shape (n,)."""
    return _read_idx(path, 1)


def as_tensors(images, labels):
    """Images as float32 rows of 784 pixels in [0, 1] and labels as int64, for PyTorch."""
    import torch

    X = torch.as_tensor(np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return X, y
