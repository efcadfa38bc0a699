"""The README's instructor commands, run as written on a copy of the course."""

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from noisylabels.course import tool_env

ROOT = Path(__file__).resolve().parent.parent
HW = "hw01_label_corruption"


def instructor_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- instructor-flow -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_instructor_flow_registers_grades_and_exports_to_its_own_file():
    commands = instructor_commands()
    assert commands[0].startswith("python -m autograder.hw02.data make-final")
    assert "noisylabels assignments --register" in commands
    assert any(c.startswith("nbgrader autograde ") for c in commands)
    export = [c for c in commands if c.startswith("nbgrader export")]
    assert export and "--to nbgrader_grades.csv" in export[0]  # never the stand-alone grader's file


def test_grading_outputs_are_gitignored():
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in ("/submitted/", "/autograded/", "/feedback/", "/gradebook.db", "/grades.csv",
                  "/nbgrader_grades.csv", "/hw02_grades.csv", "/instructor/"):
        assert entry in ignored, entry


@pytest.mark.slow
def test_readme_instructor_commands_grade_a_submission_on_a_fresh_copy(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions",
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    env = dict(os.environ, NOISYLABELS_SIZE="quick", OMP_NUM_THREADS="1")
    env = tool_env(env)  # this interpreter's bin folder first on PATH
    env.pop("NOISYLABELS_GRADEBOOK", None)
    env.pop("NOISYLABELS_ROOT", None)
    commands = instructor_commands()
    grading = commands.index(next(c for c in commands if c.startswith("nbgrader autograde")))

    def run(command):
        result = subprocess.run(["bash", "-c", command], cwd=course, env=env, capture_output=True,
                                text=True, timeout=1800)
        assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
        return result

    for command in commands[:grading]:
        run(command)
    assert (course / "gradebook.db").exists()
    keys = list((course / "instructor" / "hw02_evil_twins").glob("set*/key.txt"))
    assert keys and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
    # step 3: the student's notebook (the solutions filled in), placed by hand
    released = nbformat.read(course / "assignments" / HW / f"{HW}.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source
               for c in nbformat.read(course / "solutions" / HW / f"{HW}.ipynb", as_version=4).cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in released.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "\n".join(l for l in answers[gid].split("\n") if "SOLUTION" not in l)
    (course / "submitted" / "alice" / HW).mkdir(parents=True)
    nbformat.write(released, course / "submitted" / "alice" / HW / f"{HW}.ipynb")
    for command in commands[grading:]:
        output = run(command)
        assert "has changed!" not in output.stdout + output.stderr
    rows = list(csv.DictReader(open(course / "nbgrader_grades.csv")))
    alice = [r for r in rows if r["student_id"] == "alice" and r["assignment"] == HW]
    assert float(alice[0]["raw_score"]) == 12.0
    assert (course / "feedback" / "alice" / HW / f"{HW}.html").exists()
    assert not (course / "grades.csv").exists()
    assert (course / "assignments" / "hw02_evil_twins" / "hw02.py").read_text() != \
        (course / "solutions" / "hw02_evil_twins" / "hw02.py").read_text()
