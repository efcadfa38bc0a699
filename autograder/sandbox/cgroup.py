"""A control group per sandboxed run: the memory and the processes of the whole run, capped.

Resource limits (``setrlimit``) count per process (address space) or per uid (processes);
a run can get past them with many processes, or with memory no address space shows:
``memfd_create`` files, ``/dev/shm`` and ``/tmp`` pages. A cgroup counts everything the
run's processes charge, page cache and tmpfs pages included, whatever they do.

A grader running as root gives each run its own group, ``noisylabels-uid-<uid>`` inside the
grader's own group of each hierarchy (the uid is leased to one run at a time, so the name is
unique). A grader running as an ordinary account (the sandbox's unprivileged mode) cannot
create groups there; root delegates a subtree once (:mod:`autograder.sandbox.delegate`:
``<hierarchy>/noisylabels-grading``, group-writable by the graders' unix group) and each run
creates ``u<uid>-<pid>-<n>`` inside it (:func:`delegated_hierarchies`). Either way the group has
``memory`` limited to :attr:`Limits.memory` (swap included) and ``pids`` to
:attr:`Limits.processes`. The command joins it between ``fork`` and ``exec``, before
bubblewrap starts anything; the group is emptied and removed after the run.

Which hierarchy holds a controller is read from ``/proc/self/mountinfo``: a cgroup v2
(unified) mount that offers it to the grader's group, else a v1 mount of that controller.
These machines mount ``memory`` and ``pids`` as v1 hierarchies (their cgroup2 mount holds
no controller), so the v1 files are what the tests exercise here; v2 uses the same steps
with its file names (``memory.max``, ``memory.swap.max``, ``pids.max``, ``cgroup.kill``) and
needs the two controllers enabled for the grader's children, which v2 allows only for a
group without processes of its own or the root group (a grader in a container whose cgroup
root it owns works; one inside a systemd service falls back). Not run on these machines.

Where neither is usable, :func:`cgroup_problem` says why; the sandbox still runs, with the
per-process limits only (the grader logs the weaker isolation rather than refusing to grade).
Delegation is implemented for v1 hierarchies only: under v2 an unprivileged process may move
itself only between groups below one it can write ``cgroup.procs`` of (the common-ancestor
rule), which a grader started from a login shell does not meet.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["CONTROLLERS", "DELEGATED", "DELEGATED_ENV", "delegated_name", "Hierarchy", "RunCgroup",
           "hierarchies", "delegated_hierarchies", "run_hierarchies", "v1_mounts", "cgroup_problem",
           "sweep_stale_groups"]

CONTROLLERS = ("memory", "pids")

#: The subtree root delegates to the graders' unix group (``python -m autograder.sandbox.delegate``).
DELEGATED = "noisylabels-grading"
#: Another name for it (tests, so that they never change a machine's real subtree).
DELEGATED_ENV = "NOISYLABELS_SANDBOX_CGROUP"


def delegated_name() -> str:
    """The delegated subtree's folder name: ``$NOISYLABELS_SANDBOX_CGROUP``, else :data:`DELEGATED`."""
    name = os.environ.get(DELEGATED_ENV) or DELEGATED
    if "/" in name or name in (".", ".."):
        raise ValueError(f"{DELEGATED_ENV}={name!r} is not a plain folder name")
    return name


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller lives: the grader's own group in a v1 or v2 hierarchy."""

    controller: str
    folder: Path
    v2: bool

    def limit_files(self, memory: int, processes: int | None) -> list:
        """``(file, value)`` pairs that cap a run's group, in the order they must be written."""
        if self.controller == "pids":
            return [] if processes is None else [("pids.max", str(processes))]
        if self.v2:
            return [("memory.max", str(memory)), ("memory.swap.max", "0"), ("memory.oom.group", "1")]
        return [("memory.limit_in_bytes", str(memory)), ("memory.memsw.limit_in_bytes", str(memory))]


def _own_groups() -> dict:
    """``{controller or "": path}`` from ``/proc/self/cgroup`` ("" is the v2 hierarchy)."""
    groups = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            groups[name] = path
    return groups


def _mounts() -> list:
    """``(mount point, root, fstype, options)`` of every cgroup mount."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        if fstype in ("cgroup", "cgroup2"):
            found.append((fields[4], fields[3], fstype, options))
    return found


def _inside(mount_point, mount_root, group) -> Path:
    relative = os.path.relpath(group, mount_root) if group.startswith(mount_root) else group.lstrip("/")
    return Path(mount_point) / ("" if relative == "." else relative)


@lru_cache(maxsize=None)
def hierarchies() -> dict:
    """``{controller: Hierarchy}`` for the controllers this grader can use (maybe empty)."""
    try:
        groups, mounts = _own_groups(), _mounts()
    except OSError:
        return {}
    found = {}
    for point, root, fstype, options in mounts:
        if fstype == "cgroup2" and "" in groups:
            folder = _inside(point, root, groups[""])
            with contextlib.suppress(OSError):
                offered = (folder / "cgroup.controllers").read_text().split()
                for name in CONTROLLERS:
                    if name in offered and _enable_for_children(folder, name):
                        found.setdefault(name, Hierarchy(name, folder, True))
    for point, root, fstype, options in mounts:
        for name in CONTROLLERS:
            if fstype == "cgroup" and name in options and name in groups and name not in found:
                folder = _inside(point, root, groups[name])
                if os.access(folder, os.W_OK):
                    found[name] = Hierarchy(name, folder, False)
    return found


def v1_mounts() -> dict:
    """``{controller: (mount point, mount root)}`` of the v1 hierarchies holding :data:`CONTROLLERS`."""
    found = {}
    for point, root, fstype, options in _mounts():
        for name in CONTROLLERS:
            if fstype == "cgroup" and name in options:
                found.setdefault(name, (point, root))
    return found


@lru_cache(maxsize=None)
def delegated_hierarchies() -> dict:
    """``{controller: Hierarchy}`` of the delegated subtrees this account may create groups in.

    The subtree is ``noisylabels-grading`` in the grader's own group of a v1 hierarchy or in
    one of that group's ancestors (:mod:`autograder.sandbox.delegate` makes it at the
    hierarchy's root), usable when it is a folder this account can write to.
    """
    try:
        groups, mounts = _own_groups(), v1_mounts()
    except OSError:
        return {}
    found = {}
    for name, (point, root) in mounts.items():
        if name not in groups:
            continue
        folder = _inside(point, root, groups[name])
        for candidate in (folder, *folder.parents):
            subtree = candidate / delegated_name()
            if subtree.is_dir() and os.access(subtree, os.W_OK | os.X_OK):
                found[name] = Hierarchy(name, subtree, False)
                break
            if candidate == Path(point):
                break
    return found


def run_hierarchies() -> dict:
    """Where this grader's runs make their groups: its own groups as root, else the delegated subtree."""
    return hierarchies() if os.geteuid() == 0 else delegated_hierarchies()


def _enable_for_children(folder: Path, name: str) -> bool:
    control = folder / "cgroup.subtree_control"
    with contextlib.suppress(OSError):
        if name in control.read_text().split():
            return True
        control.write_text(f"+{name}")
        return True
    return False


@lru_cache(maxsize=None)
def cgroup_problem() -> str | None:
    """Why runs are not capped as a whole here (missing controllers), or ``None``."""
    missing = [name for name in CONTROLLERS if name not in run_hierarchies()]
    if not missing:
        return None
    whole = "memory" if "memory" in missing else "processes"
    if os.geteuid() != 0:
        return (f"no delegated cgroup subtree for {' and '.join(missing)} that this account may write to "
                f"(once, as root: python -m autograder.sandbox.delegate --group GROUP, with this account "
                f"in GROUP; v1 hierarchies only): a run's total {whole} are limited per process only")
    return (f"no usable cgroup controller for {' and '.join(missing)} (cgroup v2 with the controller "
            f"delegated to the grader's group, or a writable v1 hierarchy): a run's total "
            f"{whole} are limited per process only")


class RunCgroup:
    """One run's groups (one per hierarchy): created capped, joined by the command, then removed.

    ``name`` is unique to the run (root: ``noisylabels-uid-<uid>`` of its leased uid; an
    ordinary account: ``u<uid>-<pid>-<n>``); ``parents`` is :func:`run_hierarchies` by default.
    A group of that name left by a grader that died is emptied and reused.
    """

    def __init__(self, name: str, memory: int, processes: int | None, parents: dict | None = None):
        self.folders = []
        parents = run_hierarchies() if parents is None else parents
        try:
            for hierarchy in {h.folder: h for h in parents.values()}.values():
                folder = hierarchy.folder / name
                if folder.exists():  # left by a grader that died: the name is ours now
                    self._empty(folder)
                else:
                    folder.mkdir()
                self.folders.append(folder)
                for h in parents.values():
                    if h.folder == hierarchy.folder:
                        for file, value in h.limit_files(memory, processes):
                            with contextlib.suppress(FileNotFoundError):  # e.g. no swap accounting
                                (folder / file).write_text(value)
        except BaseException:
            self.close()
            raise

    def join(self) -> None:
        """Move the calling process into the run's groups (in the child, before ``exec``)."""
        pid = str(os.getpid())
        for folder in self.folders:
            with open(folder / "cgroup.procs", "w") as fh:
                fh.write(pid)

    def memory_exhausted(self) -> bool:
        """Whether the run hit its memory cap (the kernel refused or reclaimed memory for it)."""
        for folder in self.folders:
            with contextlib.suppress(OSError):
                if (folder / "memory.events").exists():
                    events = dict(line.split() for line in (folder / "memory.events").read_text().splitlines())
                    return int(events.get("max", 0)) > 0 or int(events.get("oom_kill", 0)) > 0
                if (folder / "memory.oom_control").exists():  # v1
                    control = dict(line.split() for line in (folder / "memory.oom_control").read_text().splitlines())
                    peak = int((folder / "memory.max_usage_in_bytes").read_text())
                    return int(control.get("oom_kill", 0)) > 0 or peak >= int((folder / "memory.limit_in_bytes").read_text())
        return False

    @staticmethod
    def _empty(folder: Path) -> None:
        kill = folder / "cgroup.kill"
        for _ in range(100):
            pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
            if not pids:
                return
            if kill.exists():
                kill.write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def close(self) -> None:
        """Kill whatever is left in the groups and remove them."""
        for folder in self.folders:
            with contextlib.suppress(FileNotFoundError):
                self._empty(folder)
                for _ in range(100):
                    try:
                        folder.rmdir()
                        break
                    except OSError:  # busy: the last processes are still being reaped
                        time.sleep(0.01)
        self.folders = []


def sweep_stale_groups(uid: int) -> list:
    """Remove this account's run groups (``u<uid>-<pid>-<n>``) in the delegated subtree whose
    grader process is gone, after killing what is left in them; return the folders removed."""
    pattern = re.compile(rf"u{uid}-(\d+)-\d+")
    removed = []
    for hierarchy in delegated_hierarchies().values():
        with contextlib.suppress(OSError):
            for entry in hierarchy.folder.iterdir():
                match = pattern.fullmatch(entry.name)
                if not (match and entry.is_dir()):
                    continue
                try:
                    os.kill(int(match.group(1)), 0)
                    continue  # its grader still runs
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue  # a live process of another account holds that pid
                group = RunCgroup.__new__(RunCgroup)
                group.folders = [entry]
                group.close()
                if not entry.exists():
                    removed.append(entry)
    return removed
