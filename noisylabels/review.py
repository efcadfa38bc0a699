"""A person's blind review of the suspects a ranking puts first (lesson 02).

The method of "Pervasive label errors in test sets" (Northcutt, Athalye, Mueller 2021): a
ranking only says where to look; a person decides. The reviewer sees each suspect *without*
its given label and writes the digit they read (or ``?`` when they cannot tell); a suspect is a
confirmed error when the reviewed digit differs from the given label. The ranking's precision
on the reviewed digits comes with a Wilson confidence interval.

Reviews are keyed by the image itself (:func:`image_key`, a hash of its pixels), so a review
stays valid whatever order the digits are loaded in. The course's own review of the offline
MNIST digits ships as ``offline_mnist_review.csv`` (:func:`load_label_review`).
"""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import numpy as np

__all__ = ["COURSE_REVIEW", "CANNOT_TELL", "image_key", "load_label_review", "review_buttons",
           "review_precision", "wilson_interval"]

COURSE_REVIEW = Path(__file__).with_name("offline_mnist_review.csv")
CANNOT_TELL = "?"
_COLUMNS = ("image", "given", "reviewed")


def image_key(image) -> str:
    """A short hash of an image's pixels (values in [0, 1] or 0-255), the key of a review row."""
    pixels = np.asarray(image, dtype=np.float64)
    if pixels.max(initial=0) <= 1.0:
        pixels = pixels * 255
    data = np.rint(pixels).astype(np.uint8).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def load_label_review(path=None) -> dict:
    """``{image key: (given label, reviewed label or "?")}`` from a review CSV (default: the course's).

    The file has the header ``image,given,reviewed``; ``reviewed`` is a digit 0-9 or ``?``.
    A malformed row raises ``ValueError`` naming its line.
    """
    path = Path(path) if path is not None else COURSE_REVIEW
    review = {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None or tuple(h.strip() for h in header) != _COLUMNS:
            raise ValueError(f"{path}: the first line must be {','.join(_COLUMNS)}, got {header}")
        for line, row in enumerate(rows, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 3:
                raise ValueError(f"{path}, line {line}: want 3 fields (image,given,reviewed), got {len(row)}")
            key, given, reviewed = (cell.strip() for cell in row)
            if len(key) != 16 or any(c not in "0123456789abcdef" for c in key):
                raise ValueError(f"{path}, line {line}: image must be 16 hex digits (image_key), got {key!r}")
            if not given.isdigit():
                raise ValueError(f"{path}, line {line}: given must be a digit, got {given!r}")
            if reviewed != CANNOT_TELL and not reviewed.isdigit():
                raise ValueError(f"{path}, line {line}: reviewed must be a digit or {CANNOT_TELL!r}, got {reviewed!r}")
            if key in review:
                raise ValueError(f"{path}, line {line}: image {key} reviewed twice")
            review[key] = (int(given), reviewed if reviewed == CANNOT_TELL else int(reviewed))
    return review


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple:
    """Wilson score interval of a proportion (95 % with the default ``z``, the normal 97.5 % quantile); ``(nan, nan)`` for no trials."""
    if trials <= 0:
        return float("nan"), float("nan")
    p = successes / trials
    denom = 1 + z ** 2 / trials
    centre = (p + z ** 2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z ** 2 / (4 * trials ** 2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def review_precision(images, given, review: dict) -> dict:
    """Score suspects (``images`` with their ``given`` labels, in ranking order) against a review.

    Only suspects found in ``review`` count. Returns ``reviewed`` (how many), ``errors`` (the
    reviewed digit differs from the given label), ``cannot_tell``, ``precision`` (errors /
    reviewed; "cannot tell" counts as not an error), its Wilson interval ``low``/``high``, and
    ``verdicts``: one of ``"error"``, ``"correct"``, ``"cannot tell"`` or ``None`` (not reviewed)
    a suspect. A review whose given label disagrees with ``given`` raises ``ValueError``: it was
    made on other labels.
    """
    verdicts = []
    for image, label in zip(images, np.asarray(given)):
        row = review.get(image_key(image))
        if row is None:
            verdicts.append(None)
            continue
        row_given, reviewed = row
        if row_given != int(label):
            raise ValueError(f"review of image {image_key(image)} was made with given label {row_given}, "
                             f"this data says {int(label)}")
        verdicts.append("cannot tell" if reviewed == CANNOT_TELL else ("error" if reviewed != row_given else "correct"))
    reviewed = sum(v is not None for v in verdicts)
    errors = verdicts.count("error")
    low, high = wilson_interval(errors, reviewed)
    return {"reviewed": reviewed, "errors": errors, "cannot_tell": verdicts.count("cannot tell"),
            "precision": errors / reviewed if reviewed else float("nan"), "low": low, "high": high,
            "verdicts": verdicts}


def review_buttons(images, given, review: dict, *, columns: int = 5):
    """Review ``images`` blind in the notebook: each shown without its label, with buttons 0-9 and
    ``?``. A click stores ``(given, clicked)`` under the image's key in ``review`` (a dict the
    lesson then scores with :func:`review_precision`). Returns the widget, or None where
    ipywidgets is missing (then fill ``review`` by hand)."""
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    import io

    import matplotlib.pyplot as plt

    boxes = []
    for image, label in zip(images, np.asarray(given)):
        buffer = io.BytesIO()
        plt.imsave(buffer, np.asarray(image).reshape(28, 28), cmap="gray_r", format="png")
        picture = widgets.Image(value=buffer.getvalue(), format="png", width=84, height=84)
        status = widgets.Label("not reviewed")
        key = image_key(image)

        def clicked(button, key=key, label=int(label), status=status):
            choice = button.description
            review[key] = (label, choice if choice == CANNOT_TELL else int(choice))
            status.value = f"you read: {choice}"

        buttons = []
        for choice in [str(d) for d in range(10)] + [CANNOT_TELL]:
            button = widgets.Button(description=choice, layout=widgets.Layout(width="30px"))
            button.on_click(clicked)
            buttons.append(button)
        grid = widgets.GridBox(buttons, layout=widgets.Layout(grid_template_columns="repeat(6, 32px)"))
        boxes.append(widgets.VBox([picture, grid, status]))
    rows = [widgets.HBox(boxes[i:i + columns]) for i in range(0, len(boxes), columns)]
    return widgets.VBox(rows)
