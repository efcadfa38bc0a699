"""A class graded with ``noisylabels autograde`` on 1 and 2 workers: submissions a minute, speed-up, projection.

Builds a course copy (``nbgrader_config.py``, ``solutions/``, the four homeworks registered
with ``noisylabels assignments --register``, homework 2's final data from ``make-final``)
and a generated class in which every student hands in all four homeworks:

- ``honest``: the solution notebooks (homework 2 also its reference ``hw02.py``);
- ``broken``: the released notebooks untouched (every function a stub that raises);
- ``hostile``: an honest notebook with an added cell that loops forever (homeworks 1 and 3:
  nbgrader interrupts it at the per-cell limit, the other cells still run) or a link in
  the submitted folder (homeworks 2 and 4: refused before anything is read).

``--students N`` students of each kind (default 1: 12 submissions). The class is graded
twice, homework by homework, with :func:`autograder.nbgrader_plugins.class_autograde.autograde_class`
(the real ``nbgrader autograde`` per student, sandboxed kernels, scratch gradebooks merged
into the course's), on a fresh copy each time: ``--scheduler local:1`` then ``local:2`` (the
clusters' start, per homework, is in the wall time). Every grade is checked: the honest
students and the ones with an endless cell must get full marks (that cell is stopped, the
graded cells run), the broken ones less, the linked ones refused.

Reports submissions graded a minute with 1 and 2 workers, the speed-up, the seconds one
submission takes on a worker (mean per homework over the class's kinds, 1-worker run), and
the hours to grade 200 students' four homeworks on a 16-core server, projected as
``200 * sum(seconds per submission) / (16 * efficiency) / 3600`` with 16 single-slot workers
(one kernel thread each) and the efficiency measured here (speed-up / 2), which assumes the
server's memory and disk keep up. The per-cell limit of the course copy is ``--cell-timeout``
(default 120 s, the course's is 600 s): the hostile loop costs that much once per hostile
student of homeworks 1 and 3.

Targets (issue 23): a homework 1 submission graded in under 60 s on 2 cores (the honest
one, 1-worker run); 2 workers at least 1.7x one. Time: about 25-40 minutes with the
defaults on a 2-core machine (``--quick``: quick size, homework 1 only, a few minutes).
``--json``: the last line is ``{"per_minute": {"1": x, "2": y}, "speedup": s,
"seconds_per_submission": {...}, "projected_hours_200_students_16_cores": h}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
HOMEWORKS = ("hw01_label_corruption", "hw02_evil_twins", "hw03_robust_losses", "hw04_reweighting")
LOOPING = ("hw01_label_corruption", "hw03_robust_losses")  # the hostile students' endless cell; else a link
KINDS = ("honest", "broken", "hostile")


def quiet(*args):
    pass


def _run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def _honest(released: Path, source: Path):
    nb = nbformat.read(released, as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(source, as_version=4).cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        md = cell.metadata.get("nbgrader", {})
        if md.get("solution"):
            cell.source = "\n".join(line for line in answers[md["grade_id"]].split("\n") if "SOLUTION" not in line)
    return nb


def build_course(base: Path, homeworks, students: int, cell_timeout: int, env: dict) -> dict:
    """The course copy with the class handed in; ``{student: kind}``."""
    (base / "solutions").mkdir(parents=True)
    config = (ROOT / "nbgrader_config.py").read_text()
    (base / "nbgrader_config.py").write_text(config + f"\n# benchmark: a shorter per-cell limit\nc.Execute.timeout = {cell_timeout}\n")
    for hw in homeworks:
        shutil.copytree(ROOT / "solutions" / hw, base / "solutions" / hw,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    _run([sys.executable, "-m", "noisylabels.cli", "assignments", *homeworks, "--register"], base, env)
    if "hw02_evil_twins" in homeworks:
        _run([sys.executable, "-m", "autograder.hw02.data", "make-final", "--out",
              str(base / "instructor" / "hw02_evil_twins"), "--seed", "23"], base, env)
    kinds = {f"{kind}{i + 1}": kind for kind in KINDS for i in range(students)}
    for hw in homeworks:
        released_dir = base / "assignments" / hw
        released, source = released_dir / f"{hw}.ipynb", base / "solutions" / hw / f"{hw}.ipynb"
        for student, kind in kinds.items():
            folder = base / "submitted" / student / hw
            folder.mkdir(parents=True)
            for extra in released_dir.iterdir():
                if extra.is_file() and extra.suffix != ".ipynb":
                    shutil.copy(extra, folder)
            if kind == "broken":
                nb = nbformat.read(released, as_version=4)
            else:
                nb = _honest(released, source)
                if hw == "hw02_evil_twins":
                    shutil.copy(base / "solutions" / hw / "hw02.py", folder / "hw02.py")
            if kind == "hostile" and hw in LOOPING:
                setup = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
                nb.cells.insert(setup + 1, nbformat.v4.new_code_cell("while True:\n    pass"))
            elif kind == "hostile":
                os.symlink("/etc/passwd", folder / "notes.txt")
            nbformat.write(nb, folder / f"{hw}.ipynb")
            (folder / "timestamp.txt").write_text("2026-11-02 10:00:00.000000 UTC")
    return kinds


def grade_class(course: Path, homeworks, workers: int, say) -> dict:
    """``{homework: (wall seconds, [StudentResult])}`` of grading the class with ``workers``."""
    from autograder.nbgrader_plugins.class_autograde import autograde_class

    out = {}
    for hw in homeworks:
        start = time.perf_counter()
        results = autograde_class(course, hw, scheduler=f"local:{workers}", log=quiet)
        out[hw] = (time.perf_counter() - start, results)
        say(f"  {hw}: {out[hw][0]:.0f} s, " + ", ".join(
            f"{r.student} {r.status}" + (f" {r.score:g}/{r.max_score:g}" if r.score is not None else "")
            + (f" {r.seconds:.0f} s" if r.seconds is not None else "") for r in results))
    return out


def check_grades(graded: dict, kinds: dict) -> list:
    """What went wrong with the class's grades (empty if nothing)."""
    problems = []
    for hw, (_, results) in graded.items():
        for r in results:
            kind = kinds[r.student]
            if kind == "honest" or (kind == "hostile" and hw in LOOPING):  # the endless cell is not graded
                ok = r.status == "graded" and r.score == r.max_score
            elif kind == "broken":
                ok = r.status == "graded" and r.score < r.max_score
            else:
                ok = r.status == "failed" and "symbolic link" in r.reason
            if not ok:
                problems.append(f"{hw} {r.student} ({kind}): {r.status} {r.score}/{r.max_score} {r.reason}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON line last")
    parser.add_argument("--students", type=int, default=1, help="students of each kind (default 1)")
    parser.add_argument("--homeworks", nargs="*", default=None, help="default: all four")
    parser.add_argument("--cell-timeout", type=int, default=120, help="per-cell limit of the course copy (seconds)")
    parser.add_argument("--quick", action="store_true", help="quick size and homework 1 only: a smoke run")
    parser.add_argument("--size", default=None, help="NOISYLABELS_SIZE for the notebooks (default: the course's default)")
    args = parser.parse_args(argv)
    homeworks = args.homeworks or (["hw01_label_corruption"] if args.quick else list(HOMEWORKS))
    size = "quick" if args.quick else args.size
    env = dict(os.environ)
    env.pop("NOISYLABELS_GRADEBOOK", None)
    env.pop("NOISYLABELS_ROOT", None)
    if size:
        env["NOISYLABELS_SIZE"] = size
    os.environ.clear()
    os.environ.update(env)  # the workers (started from here) and nbgrader inherit it
    say = print
    load_before = os.getloadavg()
    say(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}; size {size or 'default'}; "
        f"{args.students} student(s) of each kind; {', '.join(homeworks)}")
    with tempfile.TemporaryDirectory(prefix="class-grading-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        kinds = build_course(tmp / "base", homeworks, args.students, args.cell_timeout, env)
        say(f"course and class built in {time.perf_counter() - start:.0f} s: {len(kinds) * len(homeworks)} submissions")
        graded = {}
        for workers in (1, 2):
            course = tmp / f"workers{workers}"
            shutil.copytree(tmp / "base", course, symlinks=True)
            say(f"{workers} worker(s):")
            graded[workers] = grade_class(course, homeworks, workers, say)
    load_after = os.getloadavg()
    problems = [p for w in graded for p in check_grades(graded[w], kinds)]
    n = len(kinds) * len(homeworks)
    per_minute = {str(w): round(n / (sum(s for s, _ in graded[w].values()) / 60), 3) for w in graded}
    speedup = round(per_minute["2"] / per_minute["1"], 3)
    seconds = {hw: round(statistics.mean(r.seconds for r in results if r.seconds is not None), 1)
               for hw, (_, results) in graded[1].items()}
    honest_hw01 = [r.seconds for r in graded[1].get("hw01_label_corruption", (0, []))[1] if kinds[r.student] == "honest"]
    efficiency = speedup / 2
    projected = round(200 * sum(seconds.values()) / (16 * efficiency) / 3600, 2)
    say(f"\nsubmissions a minute: 1 worker {per_minute['1']}, 2 workers {per_minute['2']}; speed-up {speedup}x "
        f"(target 1.7x: {'met' if speedup >= 1.7 else 'MISSED'})")
    say("seconds a submission (1 worker, mean over honest/broken/hostile): "
        + ", ".join(f"{hw} {s}" for hw, s in seconds.items()))
    if honest_hw01:
        say(f"honest hw01 submission: {max(honest_hw01):.0f} s (target under 60 s: "
            f"{'met' if max(honest_hw01) < 60 else 'MISSED'})")
    say(f"projected: {projected} h for 200 students x {len(homeworks)} homework(s) on 16 cores "
        f"(efficiency {efficiency:.2f} assumed at 16 workers)")
    say(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    if problems:
        say("GRADES WRONG:\n  " + "\n  ".join(problems))
    if args.json:
        print(json.dumps({"per_minute": per_minute, "speedup": speedup, "seconds_per_submission": seconds,
                          "projected_hours_200_students_16_cores": projected}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
