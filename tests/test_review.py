"""A person's blind review of a ranking's suspects (noisylabels.review, lesson 02)."""

import numpy as np
import pytest

import noisylabels as nl
from noisylabels.review import image_key, load_label_review, review_precision, wilson_interval


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28)).astype(np.float32)


def test_image_key_is_the_same_for_unit_and_byte_pixels_and_differs_between_images():
    a, b = _images(2)
    assert image_key(a) == image_key(np.rint(a * 255))
    assert image_key(a) != image_key(b)
    assert len(image_key(a)) == 16


def test_reviewed_digit_other_than_the_given_label_is_a_confirmed_error(tmp_path):
    images = _images(4)
    given = [3, 5, 7, 1]
    path = tmp_path / "review.csv"
    path.write_text("image,given,reviewed\n"
                    f"{image_key(images[0])},3,8\n"   # error
                    f"{image_key(images[1])},5,5\n"   # label right
                    f"{image_key(images[2])},7,?\n")  # cannot tell; images[3] not reviewed
    result = review_precision(images, given, load_label_review(path))
    assert result["verdicts"] == ["error", "correct", "cannot tell", None]
    assert (result["reviewed"], result["errors"], result["cannot_tell"]) == (3, 1, 1)
    assert result["precision"] == pytest.approx(1 / 3)
    assert result["low"] < 1 / 3 < result["high"]


def test_review_made_on_other_labels_is_refused(tmp_path):
    images = _images(1)
    path = tmp_path / "review.csv"
    path.write_text(f"image,given,reviewed\n{image_key(images[0])},4,9\n")
    with pytest.raises(ValueError, match="given label 4"):
        review_precision(images, [2], load_label_review(path))


@pytest.mark.parametrize("body, message", [
    ("img,given,reviewed\n", "first line"),
    ("image,given,reviewed\nabc,1,2\n", "line 2: image must be 16 hex"),
    ("image,given,reviewed\n0123456789abcdef,1\n", "line 2: want 3 fields"),
    ("image,given,reviewed\n0123456789abcdef,1,x\n", "line 2: reviewed must be a digit"),
    ("image,given,reviewed\n0123456789abcdef,1,2\n0123456789abcdef,1,3\n", "line 3: image 0123456789abcdef reviewed twice"),
])
def test_malformed_review_file_names_the_line(tmp_path, body, message):
    path = tmp_path / "review.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_label_review(path)


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    for k, n in [(8, 10), (3, 20), (17, 20)]:
        expected = binomtest(k, n).proportion_ci(method="wilson")
        assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high))
    assert wilson_interval(0, 0) != wilson_interval(0, 0)  # nan for no trials
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


def test_course_review_ships_with_the_package_and_matches_the_offline_digits():
    review = load_label_review()
    assert len(review) >= 20
    X, y, X_test, y_test = nl.load_offline_mnist()
    images, labels = np.concatenate([X, X_test]), np.concatenate([y, y_test])
    keys = {image_key(im): int(label) for im, label in zip(images, labels)}
    for key, (given, _) in review.items():
        assert keys.get(key) == given, key  # every reviewed digit is an offline digit with that label


def test_review_buttons_store_the_clicked_digit():
    pytest.importorskip("ipywidgets")
    images = _images(2)
    review = {}
    widget = nl.review_buttons(images, [4, 6], review)
    first_card = widget.children[0].children[0]
    buttons = first_card.children[1].children
    buttons[9].click()  # "9"
    assert review == {image_key(images[0]): (4, 9)}
    assert first_card.children[2].value == "you read: 9"
