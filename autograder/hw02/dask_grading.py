"""Homework 2's grader on a Dask cluster: workers run the programs, the keys stay here.

    python -m autograder.hw02.grade SUBMISSIONS --final DIR --scheduler tls://HOST:8786 \
        --tls-ca-file ca.pem --tls-cert client.pem --tls-key client.key
    python -m autograder.hw02.grade SUBMISSIONS --final DIR --scheduler local:2

One Dask task per student. A task receives what a run needs and nothing more: the bytes
of ``hw02.py``, of each set's data and labels files, of the helper files, and the limits
and time limit. On the worker it writes them into a private temporary folder and runs
the sets with :func:`autograder.hw02.rules.run_sets` (the same sandbox, the same limits
as the local grader); it returns, per set, only what the run did (status, the indices
printed, reason, seconds, the end of standard error). Scoring with the keys
(:func:`autograder.hw02.rules.score_runs`) happens in the client, which records rows as
tasks finish (:func:`distributed.as_completed`); see :func:`autograder.hw02.grade.grade_all`.

Only over TLS (:class:`distributed.Security`): the workers run as root and every task
carries the final data, so whoever could talk to the scheduler could run code on them, and
whoever could join as a worker would receive the data. Every connection (client, scheduler,
workers, nannies) is TLS with a certificate of the cluster's own CA on both sides.
``local:N`` makes temporary credentials (:meth:`~distributed.Security.temporary`, in
memory only) and serves none of Dask's web pages; a scheduler address must be ``tls://``,
with the client's certificate given (:func:`client_security`); a plain ``tcp://`` one is
refused before anything is sent, and so is a worker that listens without TLS
(:func:`check_workers`).

Workers: one grading task at a time per worker process (``--nthreads 1``), and a resource
``grading=1`` that every task asks for, so a task never shares its worker's slot::

    dask worker tls://HOST:8786 --nthreads 1 --resources grading=1 \
        --tls-ca-file ca.pem --tls-cert worker.pem --tls-key worker.key

A worker that dies while it runs a task: the scheduler gives the task to another worker
up to ``distributed.scheduler.allowed-failures`` times (``local:N`` sets it to
:data:`ALLOWED_FAILURES`, i.e. one retry); after that the student is **not recorded**
(no row), the run carries on with the others and ends with
:class:`autograder.hw02.grade.GradingIncomplete` naming them, so that a rerun grades exactly them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
import tempfile
import uuid
from pathlib import Path

import dask
from distributed import Client, LocalCluster, Security, as_completed
from distributed.core import CommClosedError

from autograder import sandbox
from autograder.hw02.rules import MAX_PROGRAM_BYTES, RunResult, run_sets

__all__ = ["RESOURCE", "WORKER_COMMAND", "ALLOWED_FAILURES", "MAX_IN_FLIGHT", "TLS", "TaskSpec",
           "task_payload", "grade_on_worker", "start_local_cluster", "client_security", "connect",
           "check_workers", "run_on_cluster"]

#: The worker resource each grading task asks for (one per worker slot).
RESOURCE = "grading"
#: How every worker is started (one slot: one task at a time).
WORKER_COMMAND = (f"dask worker tls://HOST:PORT --nthreads 1 --resources {RESOURCE}=1 "
                  f"--tls-ca-file ca.pem --tls-cert worker.pem --tls-key worker.key")
#: Times a task is handed to a new worker after the one running it died (``local:N``).
ALLOWED_FAILURES = 1
#: Tasks submitted ahead of the results, so that a class of thousands never sits in the
#: scheduler's memory at once (each task carries its data files).
MAX_IN_FLIGHT = 64
#: The one protocol the grader's cluster speaks: TLS, a certificate of the cluster's CA on both sides.
TLS = "tls://"
#: Dask's web pages (dashboard, info pages, metrics): none on a ``local:N`` cluster. Their
#: HTTP servers always listen, on 127.0.0.1, but then answer every request with 404.
NO_WEB_PAGES = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
#: The client's credentials: :class:`distributed.Security` arguments and the grader's options.
TLS_OPTIONS = {"tls_ca_file": "--tls-ca-file", "tls_client_cert": "--tls-cert", "tls_client_key": "--tls-key"}
_LOCAL = re.compile(r"local:(\d+)")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What one worker task needs: file contents, never a path of this machine, never a key."""

    program: bytes | None           #: ``hw02.py`` (``None``: missing or too large)
    program_size: int | None        #: its size (``None``: missing)
    sets: tuple                     #: ``((data_name, data_bytes, labels_name, labels_bytes, n_digits), ...)``
    helpers: tuple                  #: ``((name, bytes), ...)``
    time_limit: str | None
    limits: sandbox.Limits | None
    unsafe: bool


def task_payload(program: Path, sets, helpers, *, time_limit, limits, unsafe) -> TaskSpec:
    """The :class:`TaskSpec` of one student. ``sets`` are :class:`~autograder.hw02.data.FinalSet`."""
    program = Path(program)
    try:
        size = program.stat().st_size
    except OSError:
        size = None
    body = None
    if size is not None and size <= MAX_PROGRAM_BYTES:
        try:
            body = program.read_bytes()
            size = len(body)
        except OSError:
            size = None
    return TaskSpec(
        program=body, program_size=size,
        sets=tuple((Path(s.data).name, Path(s.data).read_bytes(), Path(s.labels).name,
                    Path(s.labels).read_bytes(), s.n_digits) for s in sets),
        helpers=tuple((Path(h).name, Path(h).read_bytes()) for h in helpers),
        time_limit=time_limit, limits=limits, unsafe=unsafe)


def grade_on_worker(spec: TaskSpec) -> list:
    """Run one student's program on every set (on a worker): a list of run dicts, no score."""
    with tempfile.TemporaryDirectory(prefix="hw02-task-") as tmp:
        tmp = Path(tmp)
        os.chmod(tmp, 0o700)
        program = tmp / "program" / "hw02.py"
        program.parent.mkdir()
        if spec.program is not None:
            program.write_bytes(spec.program)
        elif spec.program_size is not None:  # too large to send: the same size, so the same refusal
            with open(program, "wb") as fh:
                fh.truncate(spec.program_size)
        helpers = []
        (tmp / "helpers").mkdir()
        for name, body in spec.helpers:
            path = tmp / "helpers" / Path(name).name
            path.write_bytes(body)
            helpers.append(path)
        sets = []
        for i, (data_name, data, labels_name, labels, n) in enumerate(spec.sets):
            folder = tmp / f"set{i + 1}"
            folder.mkdir()
            (folder / Path(data_name).name).write_bytes(data)
            (folder / Path(labels_name).name).write_bytes(labels)
            sets.append((folder / Path(data_name).name, folder / Path(labels_name).name, n))
        runs = run_sets(program, sets, time_limit=spec.time_limit, helpers=helpers,
                        limits=spec.limits, unsafe=spec.unsafe)
    return [dataclasses.asdict(run) for run in runs]


def runs_from_worker(result) -> list:
    """The :class:`~autograder.hw02.rules.RunResult` list a task returned."""
    return [RunResult(**run) for run in result]


def start_local_cluster(n: int, *, allowed_failures: int = ALLOWED_FAILURES):
    """``(client, cluster)``: a :class:`~distributed.LocalCluster` of ``n`` single-slot worker
    processes on 127.0.0.1, TLS only, with temporary credentials that only this process holds."""
    security = Security.temporary()
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures, **NO_WEB_PAGES}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, resources={RESOURCE: 1},
                               protocol=TLS, security=security, dashboard_address=None,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    return Client(cluster, security=security), cluster


def client_security(address: str, tls: dict | None = None) -> Security:
    """The client's :class:`~distributed.Security` for the scheduler at ``address``.

    ``address`` must be ``tls://``: anything else is refused (``ValueError``) before any
    connection. ``tls`` maps :data:`TLS_OPTIONS`' keys to files (PEM); one not given is
    taken from Dask's configuration (``distributed.comm.tls.ca-file``, ``.client.cert``,
    ``.client.key``). The CA file and the certificate are required.
    """
    if not address.startswith(TLS):
        raise ValueError(
            f"--scheduler {address}: refused, the grader talks to a Dask cluster only over TLS. Over plain "
            f"TCP anyone who reaches the scheduler could run code on the root workers, or join as a worker "
            f"and receive the final data. Start the scheduler and workers with certificates "
            f"(autograder/README.md, section 5) and give --scheduler tls://HOST:PORT "
            f"{' '.join(f'{flag} FILE' for flag in TLS_OPTIONS.values())}")
    security = Security(require_encryption=True, **{k: v for k, v in (tls or {}).items() if v})
    needed = [TLS_OPTIONS[attr] for attr in ("tls_ca_file", "tls_client_cert") if not getattr(security, attr)]
    if needed:
        raise ValueError(f"--scheduler {address}: give the client's credentials, {' and '.join(needed)} "
                         f"(or set them in Dask's configuration, distributed.comm.tls.*)")
    for attr, flag in TLS_OPTIONS.items():
        path = getattr(security, attr)
        if path and not os.path.isfile(path):
            raise ValueError(f"{flag} {path}: no such file")
    try:
        security.get_connection_args("client")
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ValueError(f"--scheduler {address}: the TLS credentials do not load ({exc})") from None
    return security


def connect(scheduler: str, *, tls: dict | None = None, log=print):
    """``(client, cluster)`` for ``--scheduler``: a ``tls://`` address (with the client's
    credentials ``tls``, see :func:`client_security`), or ``local:N`` (``cluster`` is then
    :func:`start_local_cluster`'s, else ``None``)."""
    text = str(scheduler).strip()
    m = _LOCAL.fullmatch(text)
    if text.startswith("local") and not m:
        raise ValueError(f"--scheduler {text!r}: write local:N with N >= 1 workers (e.g. local:2)")
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ValueError(f"--scheduler {text!r}: at least one worker (local:1)")
        if tls and any(tls.values()):
            raise ValueError(f"--scheduler {text}: makes its own temporary credentials; "
                             f"{', '.join(TLS_OPTIONS.values())} are for a tls:// scheduler")
        client, cluster = start_local_cluster(n)
        log(f"started a local Dask cluster of {n} single-slot workers at {cluster.scheduler_address} "
            f"(TLS, temporary credentials)")
        return client, cluster
    if not text:
        raise ValueError("--scheduler: empty address")
    security = client_security(text, tls)
    try:
        client = Client(text, security=security, timeout="20s")
    except (OSError, TimeoutError, CommClosedError) as exc:
        raise ConnectionError(f"--scheduler {text}: cannot reach a Dask scheduler there with these "
                              f"credentials ({exc})") from None
    return client, None


def worker_tls_problem(dask_worker) -> str | None:
    """Why a worker is not TLS only (run on the worker by :func:`check_workers`), or ``None``."""
    plain = [listener.listen_address for listener in dask_worker.listeners
             if not str(listener.listen_address).startswith(TLS)]
    if plain:
        return f"it listens on {plain[0]}"
    if not dask_worker.security.require_encryption:
        return "it does not require encryption (distributed.comm.require-encryption)"
    return None


def check_workers(client, *, unsafe: bool, wait_seconds: float = 60) -> int:
    """The number of grading slots. ``RuntimeError`` if the client or any grading worker is not
    TLS only, if there is no slot, or if a worker cannot run the sandbox."""
    if not str(client.scheduler.address).startswith(TLS):
        raise RuntimeError(f"the client talks to {client.scheduler.address} without TLS: refused, nothing sent; "
                           f"start the cluster with certificates (autograder/README.md, section 5)")
    try:
        client.wait_for_workers(1, timeout=wait_seconds)
    except TimeoutError:
        raise RuntimeError(f"no Dask worker joined within {wait_seconds:g} s; start them with "
                           f"`{WORKER_COMMAND}`") from None
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]  # all of them (newer Dask lists 5)
    except TypeError:  # older Dask: always all of them
        workers = client.scheduler_info()["workers"]
    slots = {addr: w for addr, w in workers.items() if w.get("resources", {}).get(RESOURCE, 0) >= 1}
    if not slots:
        raise RuntimeError(f"none of the {len(workers)} worker(s) offers the resource "
                           f"{RESOURCE!r}, so no task could start; start them with `{WORKER_COMMAND}`")
    bad = {addr: f"it listens on {addr}" for addr in slots if not addr.startswith(TLS)}
    bad.update({addr: f"its nanny listens on {w['nanny']}" for addr, w in slots.items()
                if w.get("nanny") and not str(w["nanny"]).startswith(TLS)})
    bad = bad or _problems(client, worker_tls_problem, slots)
    if bad:
        addr, problem = next(iter(bad.items()))
        raise RuntimeError(f"{len(bad)} worker(s) are not TLS only, e.g. {addr}: {problem}. Anyone who "
                           f"reaches such a worker could run code on it, so nothing was sent. Start every "
                           f"worker with `{WORKER_COMMAND}`")
    bad = {} if unsafe else _problems(client, sandbox.sandbox_problem, slots)
    if bad:
        addr, problem = next(iter(bad.items()))
        raise RuntimeError(f"{len(bad)} worker(s) cannot isolate the submissions, e.g. {addr}: "
                           f"{problem}. Fix them, or pass --unsafe-sandbox")
    return len(slots)


def _problems(client, check, workers) -> dict:
    """``{worker: problem}`` for the ``workers`` where ``check`` (run there) finds one."""
    try:
        problems = client.run(check, workers=list(workers))
    except Exception as exc:  # the worker cannot even import the course's autograder
        raise RuntimeError(f"a worker cannot run the course's grader ({type(exc).__name__}: {exc}); "
                           f"install the course environment on every worker host") from None
    return {addr: problem for addr, problem in problems.items() if problem}


def run_on_cluster(client, students, spec_of, record, *, log=print) -> dict:
    """Submit one task per student, call ``record(student, runs)`` as each finishes.

    ``spec_of(student)`` builds the student's :class:`TaskSpec` (read when submitted, at
    most :data:`MAX_IN_FLIGHT` ahead). Returns ``{student: reason}`` for the students
    whose task failed for good (worker lost twice, or the grader failing on a worker):
    nothing is recorded for them.
    """
    pending = list(students)
    pending.reverse()
    owner, outstanding, failures = {}, {}, {}
    run_id = uuid.uuid4().hex[:8]

    def submit():
        student = pending.pop()
        future = client.submit(grade_on_worker, spec_of(student), key=f"hw02-{run_id}-{student}",
                               resources={RESOURCE: 1}, retries=1, pure=False)
        owner[future.key] = student
        outstanding[future.key] = future
        return future

    queue = as_completed([submit() for _ in range(min(MAX_IN_FLIGHT, len(pending)))])
    try:
        for future in queue:
            student = owner.pop(future.key)
            outstanding.pop(future.key, None)
            try:
                runs = runs_from_worker(future.result())
            except Exception as exc:  # KilledWorker, a grader error on the worker, a lost scheduler
                reason = f"{type(exc).__name__}: {exc}"
                failures[student] = reason
                log(f"{student}: not graded ({reason}); a rerun grades it")
            else:
                record(student, runs)
            future.release()
            if pending:
                queue.add(submit())
    finally:  # interrupted: nothing keeps running for a grader that is gone
        if outstanding:
            client.cancel(list(outstanding.values()))
    return failures
