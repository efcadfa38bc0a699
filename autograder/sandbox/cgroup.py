"""A control group per sandboxed run: the memory and the processes of the whole run, capped.

Resource limits (``setrlimit``) count per process (address space) or per uid (processes);
a run can get past them with many processes, or with memory no address space shows:
``memfd_create`` files, ``/dev/shm`` and ``/tmp`` pages. A cgroup counts everything the
run's processes charge, page cache and tmpfs pages included, whatever they do.

Each run gets its own group, ``noisylabels-uid-<uid>`` inside the grader's own group of
each hierarchy (the uid is leased to one run at a time, so the name is unique), with
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
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["CONTROLLERS", "Hierarchy", "RunCgroup", "hierarchies", "cgroup_problem"]

CONTROLLERS = ("memory", "pids")


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
    if os.geteuid() != 0:
        return "per-run cgroups need root"
    missing = [name for name in CONTROLLERS if name not in hierarchies()]
    if not missing:
        return None
    return (f"no usable cgroup controller for {' and '.join(missing)} (cgroup v2 with the controller "
            f"delegated to the grader's group, or a writable v1 hierarchy): a run's total "
            f"{'memory' if 'memory' in missing else 'processes'} are limited per process only")


class RunCgroup:
    """One run's groups (one per hierarchy): created capped, joined by the command, then removed."""

    def __init__(self, uid: int, memory: int, processes: int | None):
        self.folders = []
        try:
            for hierarchy in {h.folder: h for h in hierarchies().values()}.values():
                folder = hierarchy.folder / f"noisylabels-uid-{uid}"
                if folder.exists():  # left by a grader that died: the uid's lease is ours now
                    self._empty(folder)
                else:
                    folder.mkdir()
                self.folders.append(folder)
                for h in hierarchies().values():
                    if h.folder == hierarchy.folder:
                        for name, value in h.limit_files(memory, processes):
                            with contextlib.suppress(FileNotFoundError):  # e.g. no swap accounting
                                (folder / name).write_text(value)
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
