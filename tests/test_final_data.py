"""Homework 2's final data: new digits no look-up answers, enough twins that doing nothing
scores 0, and Part 1's secret file made and named like the released debugging file.

The slow case builds the look-up of ``benchmarks/lookup_attack.py`` (the issue's 8-byte
sketch of every public digit) as a real ``hw02.py`` and grades it and the reference
solution through the real grading path (sandbox, rules) on a default final set.
"""

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from autograder.hw02 import rules
from autograder.hw02.data import (DEBUG_DATA_NAME, DEBUG_LABELS_NAME, DEBUGGING_FOLDER, _public_pool,
                                  load_debugging_set, load_final_sets, make_final_sets)
from noisylabels import evil_twins as et
from noisylabels.data import read_idx_images, read_idx_labels

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "solutions" / rules.HW02


@pytest.fixture(scope="module")
def final(tmp_path_factory):
    folder = tmp_path_factory.mktemp("instructor") / rules.HW02
    # A set the reference solves: it does on most sets, not all (benchmarks/lookup_attack.py).
    make_final_sets(folder, n_sets=1, seed=32, log=lambda *a: None)
    return folder


@pytest.mark.slow
def test_an_empty_and_a_random_answer_of_the_right_size_score_0_on_a_default_final_set(final):
    s = load_final_sets(final)[0]
    assert len(s.evil) >= 23
    assert rules.score_errors(rules.count_errors([], s.evil)[0]) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        guess = rng.choice(s.n_digits, size=len(s.evil), replace=False)
        assert rules.score_errors(rules.count_errors(guess, s.evil)[0]) == 0.0


@pytest.mark.slow
def test_a_final_digits_nearest_public_digit_does_not_give_its_label(final):
    """Every digit is new: the public pool, looked up at full precision, is often wrong."""
    s = load_final_sets(final)[0]
    images = read_idx_images(s.data).reshape(s.n_digits, -1).astype(np.float32) / 255
    labels = read_idx_labels(s.labels)
    clean = np.setdiff1d(np.arange(s.n_digits), s.evil)
    public, public_labels = _public_pool()
    public = public.reshape(len(public), -1).astype(np.float32) / 255
    d = (images[clean] ** 2).sum(1)[:, None] + (public ** 2).sum(1)[None] - 2 * images[clean] @ public.T
    looked_up = public_labels[d.argmin(1)]
    assert np.mean(looked_up == labels[clean]) < 0.9
    assert d.min() > 1.0  # no final digit is a public digit plus a little noise


@pytest.mark.slow
def test_part_1_file_is_secret_made_and_named_like_the_released_debugging_file(final):
    secret = load_debugging_set(final)
    assert (secret.data.name, secret.labels.name) == ("bad_digits_ubyte.gz", "bad_labels_ubyte.gz")
    assert secret.data.parent.name == DEBUGGING_FOLDER
    released = et.make_evil_twin_set(**et.DEBUG_SETTINGS)
    images, labels = read_idx_images(secret.data), read_idx_labels(secret.labels)
    assert images.shape == (et.DEBUG_SETTINGS["size"], 28, 28) and len(secret.evil) == et.DEBUG_SETTINGS["n_twins"]
    # like the released file: every evil twin is an exact copy of a digit with another label
    flat = images.reshape(len(images), -1)
    for i in secret.evil:
        same = [j for j in range(len(flat)) if j != i and np.array_equal(flat[j], flat[i])]
        assert same and all(labels[j] != labels[i] for j in same)
    assert secret.evil != released.evil
    assert gzip.open(secret.labels).read() != gzip.open(RELEASE / DEBUG_LABELS_NAME).read()
    assert gzip.open(secret.data).read() != gzip.open(RELEASE / DEBUG_DATA_NAME).read()
    for path in (secret.data, secret.labels, secret.key):
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_final_folder_without_the_part_1_file_says_to_rerun_make_final(tmp_path):
    (tmp_path / "set1").mkdir()
    with pytest.raises(FileNotFoundError, match="re-run `python -m autograder.hw02.data make-final"):
        load_debugging_set(tmp_path)


@pytest.mark.slow
@pytest.mark.usefixtures("require_sandbox")
def test_a_lookup_of_the_public_digits_scores_below_full_marks_and_the_reference_full_marks(final, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import lookup_attack
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    lookup = tmp_path / "hw02.py"
    lookup.write_text(lookup_attack.sketch_program())
    assert lookup.stat().st_size <= rules.MAX_PROGRAM_BYTES
    s = load_final_sets(final)[0]
    sets = [(s.data, s.labels, s.n_digits)]
    helpers = rules.course_helpers()
    looked_up = rules.score_runs(rules.run_sets(lookup, sets, helpers=helpers), [s.evil])
    reference = rules.score_runs(rules.run_sets(RELEASE / "hw02.py", sets, helpers=helpers), [s.evil])
    assert looked_up.status == "ok", looked_up.reason + looked_up.stderr_tail
    assert reference.status == "ok", reference.reason + reference.stderr_tail
    assert looked_up.errors > rules.FREE_ERRORS and looked_up.score < 100.0
    assert reference.errors <= rules.FREE_ERRORS and reference.score == 100.0


def test_final_data_is_the_instructors_only_outside_a_shared_course_folder(tmp_path):
    from autograder.hw02.data import private_modes

    tmp_path.chmod(0o755)
    assert private_modes(tmp_path / "instructor" / rules.HW02) == (0o700, 0o600)
    tmp_path.chmod(0o2775)  # setgid but open to others: still private
    assert private_modes(tmp_path / "instructor" / rules.HW02) == (0o700, 0o600)


def test_co_graders_read_the_final_data_in_a_grading_groups_closed_course_folder(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    course.chmod(0o2770)  # as deploy/install.sh makes it: the grading group's, closed to others
    out = course / "instructor" / rules.HW02
    make_final_sets(out, n_sets=1, size=60, n_twins=6, seed=5, log=lambda *a: None)
    for folder in (course / "instructor", out, out / "set1", out / DEBUGGING_FOLDER):
        assert folder.stat().st_mode & 0o7777 == 0o2750, folder
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == 7  # 3 a set, 3 of Part 1's file, the manifest
    assert all(p.stat().st_mode & 0o777 == 0o640 for p in files)
    assert len(load_final_sets(out)) == 1
