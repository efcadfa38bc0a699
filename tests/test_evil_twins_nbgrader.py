"""Homework 2 end to end through the real nbgrader: generate, collect, autograde, export.

Slow (it runs nbgrader and four submissions). The 3-minute limit is shortened for the
hanging submission through ``NOISYLABELS_HW02_TIME_LIMIT`` (documented in
``autograder/README.md``); ``test_evil_twins.py`` checks the default is exactly
``timeout -k 1s 3m``.
"""

import ast
import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from noisylabels import evil_twins as et

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "solutions" / et.HW02
NOTEBOOK = SOURCE / "hw02_evil_twins.ipynb"


def final_sets():
    """The hidden grade cell's data sets, read from the source notebook."""
    m = re.search(r"FINAL_SETS = (\[.*?\])\\n", NOTEBOOK.read_text())
    return ast.literal_eval(m.group(1).replace('\\"', '"'))


KNOWN_ERRORS = '''\
# A submission with exactly 3 missed twins and 4 wrongly flagged digits on any known set.
import argparse
import numpy as np
import mnist_util
from noisylabels import evil_twins as et
p = argparse.ArgumentParser()
p.add_argument("--data")
p.add_argument("--labels")
a = p.parse_args()
labels = mnist_util.read_labels(a.labels)
for kw in SETS:
    s = et.make_evil_twin_set(**kw)
    if len(s.labels) == len(labels) and np.array_equal(s.labels, labels):
        clean = [i for i in range(len(labels)) if i not in s.evil]
        print(", ".join(map(str, sorted(s.evil[3:] + clean[:4]))))
'''

HANGS = "import time\nwhile True:\n    time.sleep(1)\n"


def nbgrader(course, env, *args):
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_nbgrader_autograde_gives_each_submission_the_rules_points(tmp_path):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(SOURCE, course / "solutions" / et.HW02,
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env[et.TIME_LIMIT_ENV] = "30s"
    env["NOISYLABELS_SIZE"] = "quick"
    env.pop("NOISYLABELS_GRADEBOOK", None)

    nbgrader(course, env, "generate_assignment", et.HW02)
    release = course / "assignments" / et.HW02
    assert (release / "hw02.py").read_text() == et.STUDENT_STUB
    assert "BEGIN HIDDEN TESTS" not in (release / "hw02_evil_twins.ipynb").read_text()
    assert "80462" not in (release / "hw02_evil_twins.ipynb").read_text()

    sets = final_sets()
    programs = {
        "reference": (SOURCE / "hw02.py").read_text(),
        "stub": et.STUDENT_STUB,
        "known": KNOWN_ERRORS.replace("SETS", repr(sets + [et.DEBUG_SETTINGS])),
        "hangs": HANGS,
    }
    for student, program in programs.items():
        folder = course / "submitted" / student / et.HW02
        shutil.copytree(release, folder)
        (folder / "hw02.py").write_text(program)
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")

    nbgrader(course, env, "autograde", et.HW02, "--create")
    for student, program in programs.items():  # autograde kept each student's own hw02.py
        assert (course / "autograded" / student / et.HW02 / "hw02.py").read_text() == program
    nbgrader(course, env, "export", "--to", str(tmp_path / "grades.csv"))
    scores = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}

    stub_errors = sum(len(et.make_evil_twin_set(**kw).evil) for kw in sets)
    assert scores["reference"] == 100.0
    assert scores["stub"] == pytest.approx(90 * et.score_errors(stub_errors) / 100)
    assert scores["known"] == pytest.approx(90 * et.score_errors(7) / 100)
    assert scores["hangs"] == 0.0
    hang_nb = (course / "autograded" / "hangs" / et.HW02 / "hw02_evil_twins.ipynb").read_text()
    assert "timed out after 30 seconds" in hang_nb

    nbgrader(course, env, "generate_feedback", et.HW02)
    html = (course / "feedback" / "stub" / et.HW02 / "hw02_evil_twins.html").read_text()
    assert "Score:" in html and "missed" in html
    assert "80462" not in html and "FINAL_SETS" not in html
