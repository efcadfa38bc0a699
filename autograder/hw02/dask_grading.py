"""Homework 2's grader on a Dask cluster: workers run the programs, the keys stay here.

    python -m autograder.hw02.grade SUBMISSIONS --final DIR --scheduler tcp://HOST:8786
    python -m autograder.hw02.grade SUBMISSIONS --final DIR --scheduler local:2

One Dask task per student. A task receives what a run needs and nothing more: the bytes
of ``hw02.py``, of each set's data and labels files, of the helper files, and the limits
and time limit. On the worker it writes them into a private temporary folder and runs
the sets with :func:`autograder.hw02.rules.run_sets` (the same sandbox, the same limits
as the local grader); it returns, per set, only what the run did (status, the indices
printed, reason, seconds, the end of standard error). Scoring with the keys
(:func:`autograder.hw02.rules.score_runs`) happens in the client, which records rows as
tasks finish (:func:`distributed.as_completed`); see :func:`autograder.hw02.grade.grade_all`.

Workers: one grading task at a time per worker process (``--nthreads 1``), and a resource
``grading=1`` that every task asks for, so a task never shares its worker's slot::

    dask worker tcp://HOST:8786 --nthreads 1 --resources grading=1

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
import tempfile
import uuid
from pathlib import Path

import dask
from distributed import Client, LocalCluster, as_completed
from distributed.core import CommClosedError

from autograder import sandbox
from autograder.hw02.rules import MAX_PROGRAM_BYTES, RunResult, run_sets

__all__ = ["RESOURCE", "WORKER_COMMAND", "ALLOWED_FAILURES", "MAX_IN_FLIGHT",
           "TaskSpec", "task_payload", "grade_on_worker", "connect", "check_workers", "run_on_cluster"]

#: The worker resource each grading task asks for (one per worker slot).
RESOURCE = "grading"
#: How every worker is started (one slot: one task at a time).
WORKER_COMMAND = f"dask worker ADDRESS --nthreads 1 --resources {RESOURCE}=1"
#: Times a task is handed to a new worker after the one running it died (``local:N``).
ALLOWED_FAILURES = 1
#: Tasks submitted ahead of the results, so that a class of thousands never sits in the
#: scheduler's memory at once (each task carries its data files).
MAX_IN_FLIGHT = 64
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


def connect(scheduler: str, log=print):
    """``(client, cluster)`` for ``--scheduler``: an address, or ``local:N`` (``cluster`` is then
    a :class:`~distributed.LocalCluster` of N single-slot worker processes, else ``None``)."""
    text = str(scheduler).strip()
    m = _LOCAL.fullmatch(text)
    if text.startswith("local") and not m:
        raise ValueError(f"--scheduler {text!r}: write local:N with N >= 1 workers (e.g. local:2)")
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ValueError(f"--scheduler {text!r}: at least one worker (local:1)")
        with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   resources={RESOURCE: 1}, dashboard_address=":0")
        log(f"started a local Dask cluster of {n} single-slot workers at {cluster.scheduler_address}")
        return Client(cluster), cluster
    if not text:
        raise ValueError("--scheduler: empty address")
    try:
        client = Client(text, timeout="20s")
    except (OSError, TimeoutError, CommClosedError) as exc:
        raise ConnectionError(f"--scheduler {text}: cannot reach a Dask scheduler there ({exc})") from None
    return client, None


def check_workers(client, *, unsafe: bool, wait_seconds: float = 60) -> int:
    """The number of grading slots; ``RuntimeError`` if none, or if a worker cannot run the sandbox."""
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
    if not unsafe:
        try:
            problems = client.run(sandbox.sandbox_problem, workers=list(slots))
        except Exception as exc:  # the worker cannot even import the course's autograder
            raise RuntimeError(f"a worker cannot run the course's grader ({type(exc).__name__}: {exc}); "
                               f"install the course environment on every worker host") from None
        bad = {addr: p for addr, p in problems.items() if p}
        if bad:
            addr, problem = next(iter(bad.items()))
            raise RuntimeError(f"{len(bad)} worker(s) cannot isolate the submissions, e.g. {addr}: "
                               f"{problem}. Fix them, or pass --unsafe-sandbox")
    return len(slots)


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
