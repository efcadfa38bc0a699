"""Reading the homework's MNIST-format (IDX) files, for hw02.py and train_linear_mnist.py.

The readers are the course library's (``noisylabels.data``, lesson 01), so the files
are read exactly as the grader writes them.

    images = read_images("bad_digits_ubyte.gz")   # uint8, shape (n, 28, 28)
    labels = read_labels("bad_labels_ubyte.gz")   # uint8, shape (n,)
    X, y = as_tensors(images, labels)             # float32 (n, 784) in [0, 1], int64 (n,)
"""

import numpy as np

from noisylabels.data import read_idx_images, read_idx_labels


def read_images(path):
    """The digits of an IDX image file (gzipped or not): uint8 of shape (n, 28, 28)."""
    return read_idx_images(path)


def read_labels(path):
    """The labels of an IDX label file (gzipped or not): uint8 of shape (n,)."""
    return read_idx_labels(path)


def as_tensors(images, labels):
    """Images as float32 rows of 784 pixels in [0, 1] and labels as int64, for PyTorch."""
    import torch

    X = torch.as_tensor(np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0)
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return X, y
