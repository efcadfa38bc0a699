"""Homework 2's grader against hostile or broken submissions.

Each case runs a small program through the real sandbox (``timeout -k 1s``, resource
limits, a scratch folder with the data only) and asserts the status and score that
the grader records; none of them may stop the grader or change another student's grade.
"""

import csv
import os
import textwrap
from pathlib import Path

import pytest

from autograder.evil_twins import grade_all
from noisylabels import evil_twins as et

ROOT = Path(__file__).resolve().parent.parent
HW02_DIR = ROOT / "solutions" / et.HW02
SHORT = "4s"  # these programs need no more; the real limit is 3m


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small graded data set and its key, outside every scratch folder."""
    folder = tmp_path_factory.mktemp("final")
    data, labels, key, evil = et.write_evil_twin_files(folder, size=40, n_twins=5, kind="exact", seed=11)
    return data, labels, key, evil


def grade(tmp_path, dataset, source, time_limit=SHORT, limits=None):
    program = tmp_path / "hw02.py"
    program.write_text(textwrap.dedent(source))
    data, labels, key, evil = dataset
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return et.grade_submission(program, [(data, labels, evil)], time_limit=time_limit,
                               helpers=et.course_helpers(HW02_DIR), scratch_root=scratch, limits=limits)


def leftovers(scratch: Path):
    """Processes still running in a scratch folder."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/cwd").startswith(str(scratch)):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_correct_answer_scores_100(tmp_path, dataset):
    evil = dataset[3]
    g = grade(tmp_path, dataset, f"print('training...')\nprint({', '.join(map(str, evil))!r})\n")
    assert (g.status, g.score, g.errors) == ("ok", 100.0, 0)


def test_known_errors_score_by_the_rule(tmp_path, dataset):
    evil = dataset[3]
    wrong = [i for i in range(40) if i not in evil][:4]
    g = grade(tmp_path, dataset, f"print({', '.join(map(str, evil[1:] + wrong))!r})\n")
    assert (g.status, g.errors, g.missed, g.false_flags, g.score) == ("ok", 5, 1, 4, 90.0)


def test_infinite_loop_times_out_and_scores_0(tmp_path, dataset):
    g = grade(tmp_path, dataset, "while True:\n    pass\n")
    assert (g.status, g.score) == ("timeout", 0.0)
    assert g.reason == "timed out after 4 seconds"
    assert leftovers(tmp_path / "scratch") == []


def test_sleeping_program_that_ignores_sigterm_is_killed(tmp_path, dataset):
    g = grade(tmp_path, dataset, """\
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(1000)
        """)
    assert (g.status, g.score) == ("timeout", 0.0)
    assert g.seconds < 15
    assert leftovers(tmp_path / "scratch") == []


def test_fork_bomb_is_stopped_and_scores_0(tmp_path, dataset):
    # Bounded (at most 2**11 processes) so that a broken sandbox cannot hurt the machine.
    g = grade(tmp_path, dataset, """\
        import os, time
        for _ in range(11):
            os.fork()
            time.sleep(0.15)
        time.sleep(30)
        """, time_limit="20s")
    assert (g.status, g.score) == ("crashed", 0.0)
    assert "processes" in g.reason
    assert g.seconds < 15
    assert leftovers(tmp_path / "scratch") == []


def test_memory_hog_crashes_and_scores_0(tmp_path, dataset):
    g = grade(tmp_path, dataset, "x = bytearray(40 * 2**30)\nprint('1, 2')\n")
    assert (g.status, g.score) == ("crashed", 0.0)
    assert "out of memory" in g.reason and "MemoryError" in g.stderr_tail


def test_gigabytes_of_output_are_cut_off(tmp_path, dataset):
    g = grade(tmp_path, dataset, """\
        import sys
        line = "1, " * 100000 + "\\n"
        while True:
            sys.stdout.write(line)
        """, time_limit="30s", limits={"file_size": 8 * et.MB})
    assert (g.status, g.score) == ("bad_output", 0.0)
    assert "more than 1 MB" in g.reason
    assert g.seconds < 25


def test_crash_scores_0_and_keeps_the_end_of_stderr(tmp_path, dataset):
    g = grade(tmp_path, dataset, "import sys\nprint('0, 1')\nraise RuntimeError('boom at the end')\n")
    assert (g.status, g.score) == ("crashed", 0.0)
    assert "RuntimeError: boom at the end" in g.stderr_tail


def test_output_that_is_not_a_list_scores_0_with_the_reason(tmp_path, dataset):
    g = grade(tmp_path, dataset, "print('the evil twins are 1 and 2')\n")
    assert (g.status, g.score) == ("bad_output", 0.0)
    assert "not a comma-separated list" in g.reason


def test_program_cannot_find_the_key_in_its_environment_or_folder(tmp_path, dataset):
    data, labels, key, evil = dataset
    g = grade(tmp_path, dataset, """\
        import os
        found = []
        for value in os.environ.values():
            for part in value.split(os.pathsep):
                if os.path.isfile(part) and "key" in os.path.basename(part):
                    found.append(part)
        for folder in (".", ".."):
            for name in os.listdir(folder):
                if "key" in name or name.endswith(".txt"):
                    found.append(os.path.join(folder, name))
        answer = ""
        for path in found:
            answer = open(path).read().strip()
        print(answer)
        """)
    # it found nothing, printed an empty answer and is graded on that
    assert g.status == "ok"
    assert (g.errors, g.score) == (len(evil), et.score_errors(len(evil)))
    assert key.exists()


def test_deleting_and_writing_files_around_it_touches_no_other_grade(tmp_path, dataset):
    data, labels, key, evil = dataset
    subs = tmp_path / "submissions"
    (subs / "alice").mkdir(parents=True)
    (subs / "mallory").mkdir(parents=True)
    (subs / "alice" / "hw02.py").write_text(f"print({', '.join(map(str, evil))!r})\n")
    (subs / "mallory" / "hw02.py").write_text(textwrap.dedent("""\
        import os, shutil
        for folder in (".", ".."):
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if os.path.isdir(path) and name != ".":
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
        open("../grades.csv", "w").write("student,score\\nmallory,100\\n")
        with open("junk.bin", "wb") as fh:
            fh.write(b"x" * (200 * 2**20))
        print("0, 1, 2")
        """))
    out = tmp_path / "grades.csv"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    grade_all(subs, [(data, labels, key)], out, time_limit="30s", jobs=2, scratch_root=scratch,
              helpers=et.course_helpers(HW02_DIR), log=lambda *a: None)
    rows = {r["student"]: r for r in csv.DictReader(open(out))}
    assert rows["alice"]["status"] == "ok" and float(rows["alice"]["score"]) == 100.0
    # mallory's 200 MB write is stopped by the file-size limit: a crash, 0 points
    assert rows["mallory"]["status"] == "crashed" and float(rows["mallory"]["score"]) == 0.0
    assert data.exists() and labels.exists() and et.read_key(key) == evil
    assert list(scratch.iterdir()) == []


def test_rerun_keeps_written_grades_and_grades_only_the_rest(tmp_path, dataset):
    data, labels, key, evil = dataset
    subs = tmp_path / "submissions"
    for name in ("ann", "bob"):
        (subs / name).mkdir(parents=True)
        (subs / name / "hw02.py").write_text(f"print({', '.join(map(str, evil))!r})\n")
    out = tmp_path / "grades.csv"
    out.write_text("student,errors,missed,false_flags,score,status,seconds\nann,9,9,0,70.0,ok,1.0\n")
    new = grade_all(subs, [(data, labels, key)], out, time_limit="30s", jobs=1,
                    helpers=et.course_helpers(HW02_DIR), log=lambda *a: None)
    assert [r["student"] for r in new] == ["bob"]
    rows = {r["student"]: r for r in csv.DictReader(open(out))}
    assert rows["ann"]["score"] == "70.0" and rows["bob"]["score"] == "100.0"


def test_several_data_sets_score_their_mean(tmp_path, dataset):
    data, labels, key, evil = dataset
    program = tmp_path / "hw02.py"
    program.write_text(f"print({', '.join(map(str, evil))!r})\n")
    other = et.write_evil_twin_files(tmp_path / "second", size=40, n_twins=5, kind="near", seed=12)
    g = et.grade_submission(program, [(data, labels, evil), (other[0], other[1], other[3])],
                            time_limit="30s")
    wrong = et.count_errors(evil, other[3])[0]
    assert g.score == pytest.approx((100 + et.score_errors(wrong)) / 2)
