"""Homework 2 end to end through the real nbgrader: release, collect, autograde, export, feedback.

In a copy of the course with its own private final data (``instructor/hw02_evil_twins``),
submissions are graded: the reference solution, the untouched stub, a program with
known errors, cheats (the stub with notebook cells that fake the check and try to reach the
gradebook and the key; a program that looks for the key; one that prints the released key)
and, in a second course, one that hangs next to a submission holding links.
Points come from the sandboxed grader outside the students' kernels, and the kernels
themselves run sandboxed. Slow: it runs nbgrader and the programs. The 3-minute limit is
shortened through ``NOISYLABELS_HW02_TIME_LIMIT``: to 90 s where the reference solution runs
(30-45 s on a loaded machine), to 15 s for the hanging program (it is stopped at the limit
once for Part 1 and once a final set: there, 30 s of waiting instead of 180 s at the reference's 90 s).
"""

import csv
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.hw02 import rules
from autograder.hw02.data import DEBUGGING_FOLDER, load_debugging_set, load_final_sets, make_final_sets
from noisylabels.course import tool_env
from autograder.nbgrader_plugins.kernel_sandbox import UNSAFE_ENV
from noisylabels import evil_twins as et

ROOT = Path(__file__).resolve().parent.parent
HW02 = rules.HW02
SOURCE = ROOT / "solutions" / HW02

KNOWN_ERRORS = '''\
# Author: Kim Known
# Netid: kk12
# Aid: none
"""Prints a prepared answer with a known number of errors for each file it knows."""
import argparse, gzip, hashlib
p = argparse.ArgumentParser()
p.add_argument("--data")
p.add_argument("--labels")
a = p.parse_args()
ANSWERS = ANSWER_TABLE
print(ANSWERS.get(hashlib.sha256(gzip.open(a.labels).read()).hexdigest(), ""))
'''

HANGS = "import time\nwhile True:\n    time.sleep(1)\n"

# Added after the check cell: fakes the check object, tries the gradebook and the key.
CHEAT_CELL = '''\
import os, types, sqlite3
debug_grade = types.SimpleNamespace(status="ok", errors=0, reason="", score=100.0)
found = []
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys")):
        continue
    found += [os.path.join(root, n) for n in files + dirs if n in ("gradebook.db", "key.txt", "instructor")]
for path in found:
    if path.endswith("gradebook.db"):
        try:
            db = sqlite3.connect(path)
            db.execute("UPDATE grade SET manual_score = 100")
            db.commit()
        except sqlite3.Error as exc:
            print("not written:", exc)
print("found", found)
final_points = 90
'''

# Part 1 by name or content: the released debugging file's public key, printed whenever the
# data look like it (issue 22: `if "bad_" in args.data: print(KNOWN)`).
PRINTS_PUBLIC_KEY = '''\
# Author: Kay Known
# Netid: kk13
# Aid: none
import argparse, gzip, hashlib
p = argparse.ArgumentParser()
p.add_argument("--data")
p.add_argument("--labels")
a = p.parse_args()
if "bad_" in a.data or hashlib.sha256(gzip.open(a.labels).read()).hexdigest() == "PUBLIC_DIGEST":
    print("PUBLIC_KEY")
else:
    print("")
'''

SEARCHES_FOR_KEY = '''\
# Author: Mal Lory
# Netid: ml66
# Aid: none
import os
answer = ""
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys")):
        continue
    if "key.txt" in files:
        answer = open(os.path.join(root, "key.txt")).read().strip()
print(answer)
'''


def labels_digest(path):
    return hashlib.sha256(gzip.open(path).read()).hexdigest()


def nbgrader(course, env, *args):
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_nbgrader_grades_homework_2_outside_the_kernel_and_cheats_gain_nothing(tmp_path):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(SOURCE, course / "solutions" / HW02,
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    env = dict(os.environ, NOISYLABELS_SIZE="quick", OMP_NUM_THREADS="1")
    env = tool_env(env)  # this interpreter's bin folder first on PATH
    env[rules.TIME_LIMIT_ENV] = "90s"  # the reference takes 30-45 s on a final set of a loaded machine
    for name in ("NOISYLABELS_GRADEBOOK", "NOISYLABELS_ROOT", "NOISYLABELS_HW02_FINAL", UNSAFE_ENV):
        env.pop(name, None)

    subprocess.run([sys.executable, "-m", "noisylabels.cli", "assignments", HW02, "--register"], cwd=course,
                   env=env, check=True, capture_output=True, timeout=600)
    release = course / "assignments" / HW02
    assert (release / "hw02.py").read_text() == et.STUDENT_STUB
    assert "HIDDEN" not in (release / f"{HW02}.ipynb").read_text()

    # without the instructor's final data, autograde stops and records nothing for anyone
    folder = course / "submitted" / "early" / HW02
    shutil.copytree(release, folder)
    early = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", HW02], cwd=course, env=env,
                           capture_output=True, text=True, timeout=1800)
    assert "make-final" in early.stdout + early.stderr
    assert not (course / "autograded" / "early" / HW02 / f"{HW02}.ipynb").exists()
    final_dir = course / "instructor" / HW02
    # a set the reference solves (it does on most sets, not all: benchmarks/lookup_attack.py)
    make_final_sets(final_dir, n_sets=1, seed=32, log=lambda *a: None)
    final = load_final_sets(final_dir)[0]
    secret = load_debugging_set(final_dir)

    # a final folder from an older make-final (no Part 1 file): autograde stops, nobody gets 0 or 10
    shutil.move(final_dir / DEBUGGING_FOLDER, tmp_path / "part1_aside")
    older = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", HW02], cwd=course, env=env,
                           capture_output=True, text=True, timeout=1800)
    assert "re-run `python -m autograder.hw02.data make-final" in older.stdout + older.stderr
    assert not (course / "autograded" / "early" / HW02 / f"{HW02}.ipynb").exists()
    shutil.move(tmp_path / "part1_aside", final_dir / DEBUGGING_FOLDER)
    shutil.rmtree(course / "submitted")
    debug_evil = et.make_evil_twin_set(**et.DEBUG_SETTINGS).evil
    clean_final = [i for i in range(final.n_digits) if i not in final.evil]
    answers = {  # 3 missed + 4 wrongly flagged = 7 errors on the final set; 0 on Part 1's secret file
        labels_digest(final.labels): ", ".join(map(str, sorted(final.evil[3:] + clean_final[:4]))),
        labels_digest(secret.labels): ", ".join(map(str, secret.evil)),
    }
    programs = {
        "reference": (SOURCE / "hw02.py").read_text(),
        "stub": et.STUDENT_STUB,
        "known": KNOWN_ERRORS.replace("ANSWER_TABLE", repr(answers)),
        "cheat_cells": et.STUDENT_STUB,
        "cheat_search": SEARCHES_FOR_KEY,
        "public_key": PRINTS_PUBLIC_KEY.replace("PUBLIC_KEY", ", ".join(map(str, debug_evil))).replace(
            "PUBLIC_DIGEST", labels_digest(release / "bad_labels_ubyte.gz")),
    }
    for student, program in programs.items():
        folder = course / "submitted" / student / HW02
        shutil.copytree(release, folder)
        (folder / "hw02.py").write_text(program)
        if student == "cheat_cells":
            nb = nbformat.read(folder / f"{HW02}.ipynb", as_version=4)
            check = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "check")
            nb.cells.insert(check + 1, nbformat.v4.new_code_cell(CHEAT_CELL))
            nbformat.write(nb, folder / f"{HW02}.ipynb")

    graded = nbgrader(course, env, "autograde", HW02)
    log = graded.stdout + graded.stderr
    assert "Attribute 'checksum'" not in log
    for student, program in programs.items():  # autograde kept each student's own hw02.py
        assert (course / "autograded" / student / HW02 / "hw02.py").read_text() == program
    nbgrader(course, env, "export", "--to", str(tmp_path / "nbgrader_grades.csv"))
    scores = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(open(tmp_path / "nbgrader_grades.csv"))}

    stub_points = 90 * rules.score_errors(len(final.evil)) / 100
    assert stub_points == 0.0  # enough evil twins that an empty answer earns nothing
    assert scores["reference"] == 100.0
    assert scores["stub"] == pytest.approx(stub_points)
    assert scores["public_key"] == 0.0  # the released key earns nothing on Part 1's secret file
    assert scores["known"] == pytest.approx(10 + 90 * rules.score_errors(7) / 100)
    assert scores["cheat_cells"] == pytest.approx(stub_points)  # no more than the same stub
    assert scores["cheat_search"] == pytest.approx(stub_points)  # it found no key
    cheat_nb = (course / "autograded" / "cheat_cells" / HW02 / f"{HW02}.ipynb").read_text()
    found = [line for line in nbformat.reads(cheat_nb, as_version=4).cells[check + 1].outputs[0]["text"].splitlines()
             if line.startswith("found")]
    # the sandboxed kernel saw neither this course's gradebook, nor the key, nor the instructor folder
    assert found and str(course) not in found[0] and "key.txt" not in found[0] and "instructor" not in found[0]

    nbgrader(course, env, "generate_feedback", HW02)
    html = (course / "feedback" / "known" / HW02 / f"{HW02}.html").read_text()
    assert "7 errors (3 evil twins missed, 4 digits wrongly" in html
    assert "Author block: ok" in html
    stub_html = (course / "feedback" / "stub" / HW02 / f"{HW02}.html").read_text()
    assert "Author block: incomplete" in stub_html
    key_text = ", ".join(map(str, final.evil))
    for student in programs:
        feedback = (course / "feedback" / student / HW02 / f"{HW02}.html").read_text()
        assert key_text not in feedback


@pytest.mark.slow
def test_autograde_refuses_a_submission_with_links_and_grades_the_others(tmp_path):
    """``submitted/mallory/`` holds ``notes.txt -> the final key`` and ``hw02.py -> the
    reference solution``: the real ``nbgrader autograde`` copies nothing of it (the old one
    copied both into ``autograded/``, mode 444, and the feedback), says why, and grades
    the honest students; nothing it writes is readable by other users. Hal's program
    hangs: it is stopped at the time limit and scores 0."""
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(SOURCE, course / "solutions" / HW02,
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    env = tool_env(dict(os.environ, NOISYLABELS_SIZE="quick", OMP_NUM_THREADS="1"))
    env[rules.TIME_LIMIT_ENV] = "15s"  # ann and bob print at once; hal is stopped at it twice
    for name in ("NOISYLABELS_GRADEBOOK", "NOISYLABELS_ROOT", "NOISYLABELS_HW02_FINAL", UNSAFE_ENV):
        env.pop(name, None)
    subprocess.run([sys.executable, "-m", "noisylabels.cli", "assignments", HW02, "--register"], cwd=course,
                   env=env, check=True, capture_output=True, timeout=600)
    release = course / "assignments" / HW02
    final_dir = course / "instructor" / HW02
    make_final_sets(final_dir, n_sets=1, seed=20261201, log=lambda *a: None)
    final = load_final_sets(final_dir)[0]
    for student in ("ann", "bob", "hal", "mallory"):
        shutil.copytree(release, course / "submitted" / student / HW02)
    (course / "submitted" / "hal" / HW02 / "hw02.py").write_text(HANGS)
    answers = {labels_digest(final.labels): ", ".join(map(str, final.evil))}  # bob: the final set right
    (course / "submitted" / "bob" / HW02 / "hw02.py").write_text(KNOWN_ERRORS.replace("ANSWER_TABLE", repr(answers)))
    mallory = course / "submitted" / "mallory" / HW02
    (mallory / "notes.txt").symlink_to(os.path.relpath(final.key, mallory))
    (mallory / "hw02.py").unlink()
    (mallory / "hw02.py").symlink_to(os.path.relpath(SOURCE / "hw02.py", mallory))

    run = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", HW02], cwd=course, env=env,
                         capture_output=True, text=True, timeout=1800)
    log = run.stdout + run.stderr
    assert "hw02.py is a symbolic link: submit the file itself" in log
    assert "notes.txt is a symbolic link: submit the file itself" in log
    assert run.returncode == 1 and "for student 'mallory'" in log  # nbgrader's summary of failures
    refused = (course / "refused_submissions.log").read_text()
    assert "mallory\thw02.py is a symbolic link: submit the file itself" in refused
    assert not list((course / "autograded").glob("mallory/**/*.*"))
    for student in ("ann", "bob", "hal"):
        assert (course / "autograded" / student / HW02 / f"{HW02}.ipynb").exists()
    assert "timed out after 15 seconds" in (course / "autograded" / "hal" / HW02 / f"{HW02}.ipynb").read_text()
    nbgrader(course, env, "export", "--to", str(tmp_path / "grades.csv"))
    scores = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(open(tmp_path / "grades.csv"))}
    stub_points = 90 * rules.score_errors(len(final.evil)) / 100
    assert scores == {"ann": pytest.approx(stub_points), "bob": pytest.approx(90.0), "hal": 0.0, "mallory": 0.0}
    nbgrader(course, env, "generate_feedback", HW02)
    assert (course / "feedback" / "ann" / HW02 / f"{HW02}.html").exists()

    key_text = final.key.read_text().strip()
    reference = (SOURCE / "hw02.py").read_text()
    outputs = [course / "autograded", course / "feedback", course / "gradebook.db",
               course / "refused_submissions.log"]
    for top in outputs:
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"
            if path.is_file() and not (path.name == "hw02.py" and "bob" in path.parts):  # bob's holds the key
                text = path.read_text(errors="replace")
                assert key_text not in text and reference[200:400] not in text, path
