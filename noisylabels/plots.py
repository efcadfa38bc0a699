"""Plot helpers for the figures the lessons share.

Lesson 01 introduces them: training curves, corruption-vs-generalization curves,
transition matrices as images, and galleries of digits with their labels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_history", "plot_corruption_curve", "plot_transition_matrix", "show_images"]


def _axes(ax, figsize=(5, 3.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_history(history, keys=("train_acc", "test_acc"), ax=None, label=None, title=None):
    """Plot per-epoch records of a :class:`~noisylabels.training.History` against the epoch.
    Lesson 01 introduces it."""
    ax = _axes(ax)
    for key in keys:
        name = f"{label} {key}" if label else key
        ax.plot(history["epoch"], history[key], label=name.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.legend()
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def plot_corruption_curve(levels, curves: dict, ax=None, ylabel="error", title=None, chance=None):
    """Plot several curves (name -> values) against the corruption level, as Zhang et al.'s Fig. 1c.
    Lesson 01 introduces it."""
    ax = _axes(ax)
    markers = "osd^v<>"
    for i, (name, values) in enumerate(curves.items()):
        ax.plot(levels, values, marker=markers[i % len(markers)], label=name)
    if chance is not None:
        ax.axhline(chance, color="gray", ls="--", lw=1, label="chance")
    ax.set_xlabel("label corruption")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return ax


def plot_transition_matrix(T, ax=None, title=None, annotate=True):
    """Show a noise transition matrix ``T[true, noisy]`` as an image. Lesson 01 introduces it."""
    ax = _axes(ax, figsize=(4, 4))
    T = np.asarray(T)
    im = ax.imshow(T, vmin=0, vmax=1, cmap="Blues")
    ax.set_xlabel("noisy label")
    ax.set_ylabel("true label")
    ax.set_xticks(range(T.shape[1]))
    ax.set_yticks(range(T.shape[0]))
    if annotate and T.shape[0] <= 10:
        for i in range(T.shape[0]):
            for j in range(T.shape[1]):
                if T[i, j] >= 0.005:
                    ax.text(j, i, f"{T[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=7,
                            color="white" if T[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    return ax


def show_images(images, titles=None, ncols=10, size=1.2, cmap="gray_r", suptitle=None):
    """A gallery of images (``(n, H, W)``, ``(n, 1, H, W)`` or ``(n, 3, H, W)``) with titles.
    Lessons 01, 02 and 05 use it."""
    import matplotlib.pyplot as plt

    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    n = len(images)
    if n == 0:
        raise ValueError("show_images needs at least one image")
    nrows = int(np.ceil(n / ncols))
    ncols = min(ncols, n)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 1.15), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k]
        if img.ndim == 3 and img.shape[0] in (1, 3):
            img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
        if img.ndim == 1:
            side = int(round(np.sqrt(img.size)))
            img = img.reshape(side, side)
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
