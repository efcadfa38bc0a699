"""Homework 2's grader on Dask (``--scheduler``): the same grades, keys kept, nothing lost.

A ``LocalCluster`` of two single-slot worker processes (``--nthreads 1``, resource
``grading=1``) runs the programs in the real sandbox; the client scores them. The tests
check that a class gets exactly the grades of the local grader, that what is sent to the
cluster holds no key, that a worker killed mid-run loses no row (its student is retried),
that a student whose worker is lost for good gets no row and a rerun grades only it, and
that a rerun after the grader itself was killed grades only the rest.

And that the cluster is TLS only: ``local:N`` grades over TLS and nothing it listens on
answers a peer without its credentials (plain TCP, TLS without a certificate, TLS with a
certificate of another CA); a ``dask worker`` without them cannot join; a worker that
listens without TLS, a client over plain TCP and a ``tcp://`` scheduler address are refused
before any task is sent; and a real ``dask scheduler`` / ``dask worker`` cluster made with
the README's certificates grades with ``--tls-*``.
"""

import asyncio
import csv
import dataclasses
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cloudpickle
import psutil
import pytest
from distributed import Client, LocalCluster, Security
from distributed.comm import connect as dask_connect

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
    client, cluster = dask_grading.start_local_cluster(2, allowed_failures=allowed_failures)
    return cluster, client


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
    security = Security.temporary()
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                           protocol="tls://", security=security)
    try:
        with Client(cluster, security=security) as plain:
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


def listening_ports(pid) -> set:
    """``(ip, port)`` of every TCP socket process ``pid`` listens on."""
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN}


def intruder_context(cert=None, key=None) -> ssl.SSLContext:
    """An intruder's TLS: it accepts any server, and shows ``cert`` (its own) if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    return context


def dask_answers(address, **connection_args) -> bool:
    """Whether the Dask server at ``address`` answers an ``identity`` request over this connection."""
    async def ask():
        comm = await dask_connect(address, timeout=5, **connection_args)
        try:
            await comm.write({"op": "identity"})
            return isinstance(await comm.read(), dict)
        finally:
            comm.abort()

    try:
        return asyncio.run(asyncio.wait_for(ask(), 10))  # a web server never answers a Dask message
    except Exception:
        return False


def web_pages(ip, port):
    """``None`` if no web server answers on this port, else the paths of Dask's web pages
    (dashboard, info, JSON, metrics) that it serves."""
    served, answered = [], False
    for path in ("/", "/status", "/info/main/workers.html", "/json/identity.json", "/metrics", "/health"):
        try:
            with urllib.request.urlopen(f"http://{ip}:{port}{path}", timeout=5):
                served.append(path)
        except urllib.error.HTTPError:  # 404: a web server, without this page
            pass
        except (OSError, http.client.HTTPException):  # reset: not a web server (a TLS listener)
            continue
        answered = True
    return served if answered else None


def write_credentials(security, folder, role) -> list:
    """``security``'s CA, certificate and key for ``role`` as files (0600): the CLI's ``--tls-*`` flags."""
    folder.mkdir(mode=0o700)
    tls = security.get_tls_config_for_role(role)
    flags = []
    for flag, name, text in (("--tls-ca-file", "ca.pem", tls["ca_file"]), ("--tls-cert", f"{role}.pem", tls["cert"]),
                             ("--tls-key", f"{role}.key", tls["key"])):
        path = folder / name
        path.write_text(text)
        path.chmod(0o600)
        flags += [flag, str(path)]
    return flags


def dask_cli(*args, env=None) -> subprocess.Popen:
    """``dask ARGS`` as an instructor types it (its output kept for the failure message)."""
    dask = Path(sys.executable).with_name("dask")
    return subprocess.Popen([str(dask), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)


def dask_worker(address, *flags, name, env=None) -> subprocess.Popen:
    return dask_cli("worker", address, "--name", name, "--nthreads", "1", "--no-dashboard",
                    "--death-timeout", "20", *flags, env=env)


def worker_names(client) -> set:
    return {str(w.get("name")) for w in client.scheduler_info(n_workers=-1)["workers"].values()}


def wait_for_worker(client, name, process, timeout=90):
    deadline = time.time() + timeout
    while name not in worker_names(client):
        if process.poll() is not None or time.time() > deadline:
            raise AssertionError(f"worker {name} did not join: {process.communicate()[0][-3000:]}")
        time.sleep(0.3)


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def submitted(monkeypatch) -> list:
    """The arguments of every ``Client.submit`` made while the test runs (a task sent to a worker)."""
    tasks = []
    original = Client.submit

    def spy(self, *args, **kwargs):
        tasks.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Client, "submit", spy)
    return tasks


@pytest.mark.parametrize("form, message", [("tcp://{}", "only over TLS"), ("{}", "only over TLS"),
                                           ("tls://{}", "--tls-ca-file")])
def test_a_scheduler_without_tls_credentials_is_refused_before_the_grader_connects(tmp_path, sets, capsys,
                                                                                   form, message):
    subs = class_folder(tmp_path, {"a": "print('1')\n"})
    out = tmp_path / "grades.csv"
    callers, done = [], threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:  # stands where a scheduler would
        listener.settimeout(0.1)

        def answer():  # note who calls, and hang up
            while not done.is_set():
                try:
                    conn, peer = listener.accept()
                except TimeoutError:
                    continue
                callers.append(peer)
                conn.close()

        answering = threading.Thread(target=answer)
        answering.start()
        try:
            code = main([str(subs), "--data", str(sets[0].data), "--labels", str(sets[0].labels),
                         "--key", str(sets[0].key), "--out", str(out), "--no-similarity",
                         "--scheduler", form.format(f"127.0.0.1:{listener.getsockname()[1]}")])
        finally:
            done.set()
            answering.join()
    assert callers == []  # nobody connected: not a byte of final data left
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or read_rows(out) == []


def test_a_client_over_plain_tcp_is_refused_before_any_task(tmp_path, sets, submitted):
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                           resources={dask_grading.RESOURCE: 1}, dashboard_address=None)
    try:
        with Client(cluster) as plain:
            subs = class_folder(tmp_path, {"a": "print('1')\n"})
            out = tmp_path / "grades.csv"
            with pytest.raises(GraderError, match="without TLS"):
                grade_all(subs, sets, out, time_limit=SHORT, helpers=HELPERS, scheduler=plain, log=quiet)
            assert submitted == [] and read_rows(out) == []
    finally:
        cluster.close()


@pytest.mark.slow
def test_local_cluster_grades_over_tls_and_answers_nobody_without_its_credentials(tmp_path, sets):
    before = listening_ports(os.getpid())
    client, cluster = dask_grading.connect("local:1", log=quiet)  # what --scheduler local:1 starts
    try:
        subs = class_folder(tmp_path, {"honest": honest(sets)})
        grade_all(subs, sets, tmp_path / "grades.csv", time_limit=SHORT, helpers=HELPERS, scheduler=client,
                  log=quiet)
        assert [r["score"] for r in read_rows(tmp_path / "grades.csv")] == ["100.0"]
        assert cluster.scheduler_address.startswith("tls://")

        ports = listening_ports(os.getpid()) - before  # the scheduler, its web server, the nannies
        for pid in client.run(os.getpid).values():  # each worker and its web server
            ports |= listening_ports(pid)
        assert len(ports) >= 3 and {ip for ip, _ in ports} == {"127.0.0.1"}
        own = client.security.get_connection_args("client")
        assert dask_answers(cluster.scheduler_address, **own)  # the probe works with the credentials
        other = write_credentials(Security.temporary(), tmp_path / "other", "client")
        dask_listeners = []
        for ip, port in sorted(ports):
            pages = web_pages(ip, port)
            if pages is not None:  # one of Dask's web servers: it serves nothing
                assert pages == [], port
                continue
            dask_listeners.append(f"{ip}:{port}")
            assert not dask_answers(f"tcp://{ip}:{port}"), port
            assert not dask_answers(f"tls://{ip}:{port}", ssl_context=intruder_context()), port
            assert not dask_answers(f"tls://{ip}:{port}", ssl_context=intruder_context(other[3], other[5])), port
        assert cluster.scheduler_address.split("://")[1] in dask_listeners and len(dask_listeners) >= 3
    finally:
        client.close()
        cluster.close()


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


@pytest.mark.slow
def test_a_worker_without_the_credentials_cannot_join(tmp_path):
    client, cluster = dask_grading.connect("local:1", log=quiet)
    intruders = {}
    try:
        host_port = cluster.scheduler_address.split("://", 1)[1]
        other = write_credentials(Security.temporary(), tmp_path / "other", "worker")
        intruders = {"plain": dask_worker(f"tcp://{host_port}", name="plain"),
                     "no-certificate": dask_worker(f"tls://{host_port}", name="no-certificate"),
                     "other-ca": dask_worker(f"tls://{host_port}", *other, name="other-ca")}
        deadline = time.time() + 120
        while any(p.poll() is None for p in intruders.values()) and time.time() < deadline:
            assert not worker_names(client) & set(intruders), "a worker joined without the credentials"
            time.sleep(0.3)
        for name, process in intruders.items():
            assert process.poll() not in (None, 0), f"{name}: {process.communicate()[0][-3000:]}"
        assert not worker_names(client) & set(intruders)
        # the same command with the cluster's credentials joins: the refusals were about them
        member = dask_worker(cluster.scheduler_address, *write_credentials(client.security, tmp_path / "own",
                                                                           "worker"), name="member")
        intruders["member"] = member
        wait_for_worker(client, "member", member)
    finally:
        for process in intruders.values():
            stop(process)
        client.close()
        cluster.close()


@pytest.mark.slow
def test_a_worker_listening_without_tls_stops_grading_before_any_task(tmp_path, sets, submitted):
    client, cluster = dask_grading.connect("local:1", log=quiet)
    rogue = None
    try:
        own = write_credentials(client.security, tmp_path / "own", "worker")
        # it holds the credentials but listens on plain TCP: anyone could reach it there
        env = {**os.environ, "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "False"}
        rogue = dask_worker(cluster.scheduler_address, *own, "--protocol", "tcp", "--resources", "grading=1",
                            name="plain-listener", env=env)
        wait_for_worker(client, "plain-listener", rogue)
        subs = class_folder(tmp_path, {"a": "print('1')\n"})
        out = tmp_path / "grades.csv"
        with pytest.raises(GraderError, match="not TLS only.*listens on tcp://"):
            grade_all(subs, sets, out, time_limit=SHORT, helpers=HELPERS, scheduler=client, log=quiet)
        assert submitted == [] and read_rows(out) == []
    finally:
        if rogue is not None:
            stop(rogue)
        client.close()
        cluster.close()


def readme_certificate_commands() -> str:
    """The README's commands that make the CA and the certificates (section 5)."""
    text = (ROOT / "autograder" / "README.md").read_text()
    return next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "openssl req -x509" in b)


@pytest.mark.slow
def test_a_cluster_made_with_the_readmes_certificates_grades_with_the_tls_options(tmp_path, sets, final):
    made = subprocess.run(["bash", "-euc", readme_certificate_commands()], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    certs = tmp_path / "dask-tls"
    assert {p.name for p in certs.glob("*.key")} >= {"ca.key", "scheduler.key", "worker.key", "client.key"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in certs.iterdir())

    def flags(role):
        return ["--tls-ca-file", str(certs / "ca.pem"), "--tls-cert", str(certs / f"{role}.pem"),
                "--tls-key", str(certs / f"{role}.key")]

    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES": "[]",
           "DASK_DISTRIBUTED__WORKER__HTTP__ROUTES": "[]"}
    scheduler_file = tmp_path / "scheduler.json"
    processes = [dask_cli("scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                          "127.0.0.1:0", "--scheduler-file", str(scheduler_file), *flags("scheduler"), env=env)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tls://")
        processes.append(dask_worker(address, "--resources", "grading=1", *flags("worker"), name="w1", env=env))
        subs = class_folder(tmp_path, {"honest": honest(sets), "wrong": "print('0, 1, 2')\n"})
        out = tmp_path / "grades.csv"
        command = [sys.executable, "-m", "autograder.hw02.grade", str(subs), "--final", str(final), "--out",
                   str(out), "--time-limit", "20s", "--no-similarity", "--scheduler", address]
        refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "--tls-ca-file" in refused.stderr
        assert not out.exists() or read_rows(out) == []
        graded = subprocess.run(command + flags("client"), cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert graded.returncode == 0, graded.stderr
        rows = {r["student"]: r for r in read_rows(out)}
        assert rows["honest"]["score"] == "100.0" and rows["wrong"]["status"] == "ok"
    finally:
        for process in reversed(processes):
            stop(process)
