"""Homework 2's grader on Dask (``--scheduler``): the same grades, keys kept, nothing lost.

A ``LocalCluster`` of two single-slot worker processes (``--nthreads 1``, resource
``grading=1``) runs the programs in the real sandbox; the client scores them. The tests
check that a class gets exactly the grades of the local grader, that what is sent to the
cluster holds no key, that a worker killed mid-run loses no row (its student is retried),
that a student whose worker is lost for good gets no row and a rerun grades only it, and
that a rerun after the grader itself was killed grades only the rest.
"""

import csv
import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cloudpickle
import dask
import pytest
from distributed import Client, LocalCluster

from autograder.hw02 import dask_grading
from autograder.hw02 import rules
from autograder.hw02.grade import COLUMNS, GraderError, GradingIncomplete, grade_all, main
from autograder.hw02.data import load_final_sets, make_final_sets

ROOT = Path(__file__).resolve().parent.parent
HELPERS = rules.course_helpers(ROOT / "solutions" / rules.HW02)
SHORT = "5s"


pytestmark = pytest.mark.usefixtures("require_sandbox")


@pytest.fixture(scope="module")
def final(tmp_path_factory):
    """Two small private final sets (so scores combine over sets as in the real grading)."""
    folder = tmp_path_factory.mktemp("instructor") / "hw02"
    make_final_sets(folder, n_sets=2, size=40, n_twins=5, kind="exact", seed=23, log=lambda *a: None)
    return folder


@pytest.fixture(scope="module")
def sets(final):
    return load_final_sets(final)


def new_cluster(allowed_failures=1):
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               resources={dask_grading.RESOURCE: 1}, dashboard_address=":0")
    return cluster, Client(cluster)


@pytest.fixture(scope="module")
def client():
    cluster, client = new_cluster()
    yield client
    client.close()
    cluster.close()


def honest(sets):
    """Prints each set's key, recognising the set by its data; no index list of a key in its text."""
    table = {hashlib.sha256(Path(s.data).read_bytes()).hexdigest(): [i + 1000 for i in s.evil] for s in sets}
    return f"""\
        import hashlib, sys
        table = {table!r}
        data = open(sys.argv[sys.argv.index("--data") + 1], "rb").read()
        print(", ".join(str(v - 1000) for v in table[hashlib.sha256(data).hexdigest()]))
    """


def class_folder(tmp_path, programs: dict) -> Path:
    subs = tmp_path / "submissions"
    for student, source in programs.items():
        (subs / student).mkdir(parents=True)
        if source is not None:
            (subs / student / "hw02.py").write_text(textwrap.dedent(source))
    return subs


def read_rows(out):
    with open(out, newline="") as fh:
        return list(csv.DictReader(fh))


def without_seconds(rows):
    return {r["student"]: {k: v for k, v in r.items() if k != "seconds"} for r in rows}


def quiet(*args):
    pass


def wait_until_running(client, student, timeout=60):
    """The worker address running ``student``'s task, once it has run a moment."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        executing = client.run(lambda dask_worker: [str(t.key) for t in dask_worker.state.executing])
        for addr, keys in executing.items():
            if any(k.endswith(f"-{student}") for k in keys):
                time.sleep(1.5)  # inside its sandbox by now
                return addr
        time.sleep(0.1)
    raise AssertionError(f"{student}'s task never started")


def kill_worker(client, addr):
    pid = client.run(os.getpid, workers=[addr])[addr]
    os.kill(pid, signal.SIGKILL)
    return pid


def int_lists(value):
    """Every list or tuple of integers inside ``value`` (dataclasses and dicts opened)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            yield value
        for v in value:
            yield from int_lists(v)


# ----------------------------------------------------------------------------- quick
def test_keys_never_leave_the_client(tmp_path, sets, client, monkeypatch):
    sent = []
    for name in ("submit", "map", "scatter", "run", "run_on_scheduler", "compute", "persist"):
        original = getattr(Client, name)

        def spy(self, *args, __original=original, **kwargs):
            sent.append((args, kwargs))
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(Client, name, spy)
    subs = class_folder(tmp_path, {"honest": honest(sets), "wrong": "print('0, 1, 2')\n",
                                   "crash": "raise SystemExit(3)\n"})
    out = tmp_path / "grades.csv"
    grade_all(subs, sets, out, time_limit=SHORT, helpers=HELPERS, scheduler=client, log=quiet)

    rows = {r["student"]: r for r in read_rows(out)}
    assert rows["honest"]["score"] == "100.0" and rows["honest"]["errors"] == "0"
    wrong = [rules.score_errors(rules.count_errors([0, 1, 2], s.evil)[0]) for s in sets]
    assert rows["wrong"]["score"] == f"{sum(wrong) / len(wrong):.1f}"
    assert rows["crash"]["status"] == "crashed" and rows["crash"]["score"] == "0.0"

    submitted = [(a, k) for a, k in sent if a and a[0] is dask_grading.grade_on_worker]
    assert len(submitted) == 3
    blob = cloudpickle.dumps(sent)
    assert Path(sets[0].data).read_bytes() in blob  # the inspection sees the payload ...
    for s in sets:  # ... and no key is in it: not its file, its path, its text or its list
        assert s.key.read_bytes().strip() not in blob
        assert str(s.key).encode() not in blob and b"key.txt" not in blob

    keys = [sorted(s.evil) for s in sets]
    assert not [v for v in int_lists(sent) if sorted(v) in keys]


@pytest.mark.parametrize("scheduler, message", [("local:0", "at least one worker"),
                                                ("local:two", "local:N"), ("", "empty address")])
def test_bad_scheduler_argument_stops_before_grading(tmp_path, sets, capsys, scheduler, message):
    subs = class_folder(tmp_path, {"a": "print('1')\n"})
    out = tmp_path / "grades.csv"
    code = main([str(subs), "--data", str(sets[0].data), "--labels", str(sets[0].labels),
                 "--key", str(sets[0].key), "--out", str(out), "--scheduler", scheduler, "--no-similarity"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or read_rows(out) == []


def test_jobs_and_scheduler_together_are_refused(tmp_path, sets):
    subs = class_folder(tmp_path, {"a": "print('1')\n"})
    with pytest.raises(GraderError, match="--jobs or --scheduler"):
        grade_all(subs, sets, tmp_path / "g.csv", jobs=2, scheduler="local:1", helpers=HELPERS)


def test_workers_without_the_grading_resource_stop_it_before_grading(tmp_path, sets):
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        with Client(cluster) as plain:
            subs = class_folder(tmp_path, {"a": "print('1')\n"})
            out = tmp_path / "grades.csv"
            with pytest.raises(GraderError, match="--resources grading=1"):
                grade_all(subs, sets, out, helpers=HELPERS, scheduler=plain, log=quiet)
            assert read_rows(out) == []
    finally:
        cluster.close()


def test_oversized_and_missing_programs_are_judged_without_sending_them(tmp_path, sets):
    big = tmp_path / "big" / "hw02.py"
    big.parent.mkdir()
    big.write_text("#" * (rules.MAX_PROGRAM_BYTES + 10))
    spec = dask_grading.task_payload(big, sets, HELPERS, time_limit=SHORT, limits=None, unsafe=False)
    assert spec.program is None and spec.program_size == rules.MAX_PROGRAM_BYTES + 10
    local = rules.run_sets(big, [(s.data, s.labels, s.n_digits) for s in sets], helpers=HELPERS)
    remote = dask_grading.runs_from_worker(dask_grading.grade_on_worker(spec))
    assert [(r.status, r.reason) for r in remote] == [(r.status, r.reason) for r in local]
    missing = dask_grading.task_payload(tmp_path / "none" / "hw02.py", sets, HELPERS, time_limit=SHORT,
                                        limits=None, unsafe=False)
    runs = dask_grading.runs_from_worker(dask_grading.grade_on_worker(missing))
    assert [r.reason for r in runs] == ["no hw02.py in the submission"]


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_class_of_a_dozen_gets_exactly_the_local_graders_grades(tmp_path, sets, client):
    programs = {
        "honest1": honest(sets),
        "honest2": "# Author: A\n# Netid: a1\n# Aid: none\n" + textwrap.dedent(honest(sets)),
        "honest_slowly": "import time\ntime.sleep(1)\n" + textwrap.dedent(honest(sets)),
        "wrong_none": "print('')\n",
        "wrong_some": "print('0, 1, 2, 3')\n",
        "wrong_all": "print(', '.join(map(str, range(40))))\n",
        "crash_exit": "raise SystemExit(3)\n",
        "crash_import": "import sklearn\n",
        "bad_output": "print('the twins are 3 and 5')\n",
        "hangs": "while True:\n    pass\n",
        "missing": None,
        "oversized": "#" * (rules.MAX_PROGRAM_BYTES + 1),
    }
    subs = class_folder(tmp_path, programs)
    local, remote = tmp_path / "local.csv", tmp_path / "dask.csv"
    grade_all(subs, sets, local, time_limit=SHORT, helpers=HELPERS, log=quiet)
    new = grade_all(subs, sets, remote, time_limit=SHORT, helpers=HELPERS, scheduler=client, log=quiet)
    assert len(new) == len(programs)
    local_rows, remote_rows = read_rows(local), read_rows(remote)
    assert [r["student"] for r in remote_rows] == sorted(programs)
    assert without_seconds(remote_rows) == without_seconds(local_rows)
    statuses = {r["student"]: r["status"] for r in remote_rows}
    assert statuses["hangs"] == "timeout" and statuses["honest1"] == "ok" and statuses["bad_output"] == "bad_output"
    assert {r["score"] for r in remote_rows if r["student"].startswith("honest")} == {"100.0"}


SLEEPER = "import time\ntime.sleep(6)\nprint('1, 2')\n"


@pytest.mark.slow
def test_worker_killed_mid_run_retries_its_student_and_loses_no_row(tmp_path, sets):
    cluster, client = new_cluster(allowed_failures=1)
    try:
        programs = {"a_sleeper": SLEEPER, **{f"b{i}": "print('0')\n" for i in range(4)}}
        subs = class_folder(tmp_path, programs)
        out = tmp_path / "grades.csv"
        result = {}
        grader = threading.Thread(target=lambda: result.update(rows=grade_all(
            subs, sets, out, time_limit="30s", helpers=HELPERS, scheduler=client, log=quiet)))
        grader.start()
        kill_worker(client, wait_until_running(client, "a_sleeper"))
        grader.join(180)
        assert not grader.is_alive()
        rows = read_rows(out)
        assert sorted(r["student"] for r in rows) == sorted(programs)  # each exactly once
        assert sorted(r["student"] for r in result["rows"]) == sorted(programs)
        sleeper = next(r for r in rows if r["student"] == "a_sleeper")
        assert sleeper["status"] == "ok" and float(sleeper["seconds"]) >= 12  # both sets ran to the end
        log = (tmp_path / "grades.csv.log").read_text()
        assert log.count("a_sleeper:") == 1
    finally:
        client.close()
        cluster.close()


@pytest.mark.slow
def test_student_whose_worker_is_lost_for_good_gets_no_row_and_a_rerun_grades_only_it(tmp_path, sets):
    cluster, client = new_cluster(allowed_failures=0)  # no retry: the first death is final
    try:
        programs = {"a_sleeper": SLEEPER, **{f"b{i}": "print('0')\n" for i in range(3)}}
        subs = class_folder(tmp_path, programs)
        out = tmp_path / "grades.csv"
        caught = {}

        def run():
            try:
                grade_all(subs, sets, out, time_limit="30s", helpers=HELPERS, scheduler=client, log=quiet)
            except GradingIncomplete as exc:
                caught["exc"] = exc

        grader = threading.Thread(target=run)
        grader.start()
        kill_worker(client, wait_until_running(client, "a_sleeper"))
        grader.join(180)
        # the sleeper's task, and any task waiting on the same worker, count the death
        lost = caught["exc"].failures
        assert "a_sleeper" in lost and all("KilledWorker" in why for why in lost.values())
        assert sorted(r["student"] for r in read_rows(out)) == sorted(set(programs) - set(lost))
        client.wait_for_workers(1, timeout=60)
        again = grade_all(subs, sets, out, time_limit="30s", helpers=HELPERS, scheduler=client, log=quiet)
        assert sorted(r["student"] for r in again) == sorted(lost)
        assert sorted(r["student"] for r in read_rows(out)) == sorted(programs)
    finally:
        client.close()
        cluster.close()


@pytest.mark.slow
def test_rerun_after_the_grader_is_killed_grades_only_the_rest(tmp_path, final):
    programs = {f"s{i}": "import time\ntime.sleep(2)\nprint('0')\n" for i in range(6)}
    subs = class_folder(tmp_path, programs)
    out = tmp_path / "grades.csv"
    command = [sys.executable, "-m", "autograder.hw02.grade", str(subs), "--final", str(final),
               "--out", str(out), "--time-limit", "20s", "--scheduler", "local:2", "--no-similarity"]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out.exists() and len(read_rows(out)) >= 2):
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the grader, its cluster and their sandboxes
        first.wait()
    done = [r["student"] for r in read_rows(out)]
    assert 2 <= len(done) < len(programs)
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    rest = len(programs) - len(done)
    assert f"grading the other {rest}" in second.stdout
    assert f"graded {rest} submissions" in second.stdout
    for student in done:
        assert f"{student}:" not in second.stdout
    rows = read_rows(out)
    assert sorted(r["student"] for r in rows) == sorted(programs)
    assert all(r["status"] == "ok" for r in rows) and list(rows[0]) == COLUMNS
