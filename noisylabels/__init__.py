"""Noisy Labels: the course library shared by the lessons and the assignments.

The modules, and the lesson that teaches each:

- :mod:`noisylabels.data`: offline MNIST digits, IDX files, CIFAR-10 batches (lesson 01)
- :mod:`noisylabels.noise`: corruption models, ``MislabeledDataset``, imbalance (lessons 01, 02)
- :mod:`noisylabels.models`: MLP, LeNet, Zhang et al.'s small Inception (lesson 01)
- :mod:`noisylabels.training`: the training loop and evaluation helpers (lesson 01)
- :mod:`noisylabels.plots`: shared figures (lesson 01)
"""

from .data import (
    load_cifar10,
    load_mnist_idx_dir,
    load_offline_mnist,
    load_small_digits,
    read_idx,
    read_idx_images,
    read_idx_labels,
    to_tensors,
    torchvision_available,
    write_idx,
    write_idx_images,
    write_idx_labels,
)
from .models import MLP, LeNet, SmallInception, count_parameters
from .noise import (
    MislabeledDataset,
    corrupt_labels,
    expected_transition_matrix,
    noise_transition_matrix,
    subsample_imbalanced,
)
from .results import report_result
from .training import (
    History,
    as_tensors,
    evaluate,
    fit,
    get_device,
    per_example_losses,
    predict_proba,
    run_size,
    seed_everything,
)

__version__ = "0.1.0"
