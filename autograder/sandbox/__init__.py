"""Run an untrusted command in a fresh, isolated scratch folder, under limits.

Used by both grading paths of the course: the stand-alone grader
(``python -m autograder.hw02.grade``) and nbgrader's autograde (homework 2's program and
the notebook kernels, see ``autograder/nbgrader_plugins/kernel_sandbox.py``). Isolation comes from an
existing, maintained tool, bubblewrap (``bwrap``, Debian's ``bubblewrap``), plus
util-linux ``setpriv``; nothing here re-implements a namespace.

What one :func:`run_sandboxed` call gives the command (see ``autograder/README.md``):

- an **unprivileged uid** of its own (one per concurrent run, from :data:`UID_RANGE`), no
  capabilities, ``no_new_privs``;
- its own **PID namespace** with a private ``/proc`` (the grader and other runs are not
  visible, cannot be signalled), **network namespace** (no network, not even the host's
  loopback), **IPC** and **UTS** namespaces;
- a **mount namespace** built from nothing: the system's ``/usr`` and the Python runtime
  read-only (a :class:`Runtime` chooses which installed packages are visible), a
  size-limited writable scratch folder (the working directory, holding read-only copies of
  the given files) and a size-limited private ``/tmp``. The grader's folders, keys, grades,
  other submissions and the course repository are not mounted at all;
- a private, size-limited, writable ``/dev/shm`` (``multiprocessing`` and DataLoader
  workers need it);
- it dies with the grader (``--die-with-parent``), and when the command ends its PID
  namespace's init ends too, which makes the kernel kill every process it started,
  whatever it did with sessions, process groups or its environment;
- a **seccomp filter** (:mod:`autograder.sandbox.seccomp`, after Docker's default
  profile): no keyrings, no new namespaces (user namespaces included), no ``ptrace``,
  ``perf_event_open``, ``bpf``, ``userfaultfd``, ``io_uring``, ...;
- **fresh keyrings**: the uid's user, user-session and persistent keyrings are cleared
  before every run and the run gets a new, empty session keyring, so nothing stored
  there reaches the next run of the uid even without the filter;
- resource limits: address space, largest file (its standard output included), CPU time,
  number of processes of its uid, no core files; a wall-clock stop in the grader; and,
  for the **whole run**, a control group (:mod:`autograder.sandbox.cgroup`) capping its
  memory (``memfd``, ``/dev/shm`` and ``/tmp`` pages included) and its processes.

That is the **root mode**, used when the grader runs as root. A grader running as an
ordinary account (an instructor grading their own course folder) gets the **unprivileged
mode** instead, chosen automatically (:func:`privileged`): bubblewrap makes a user namespace
too (``--unshare-user --disable-userns``, no capabilities), with the same PID, network, IPC,
UTS and mount namespaces, file system, seccomp filter and limits. The run is the grader's
own uid outside its namespaces, so nothing is ever killed by uid in this mode (that would
kill the instructor's own processes): a run's processes end with its PID namespace and its
cgroup. What differs:

- no uid of its own; the run gets a new, empty session keyring (the filter refuses every
  keyring call anyway; the user keyrings are per user namespace on Linux 5.3 and later);
- its process limit is set inside its user namespace (``prlimit --nproc``), where Linux 5.14
  and later count only the run's own processes; on an older kernel it is set to the
  grader's current number of processes plus the limit;
- its cgroup is made in a subtree root delegated once to the graders' unix group
  (``python -m autograder.sandbox.delegate --group GROUP``); without one, the run's total
  memory and processes are limited per process only and :func:`weaker_isolation` says so.

Where bubblewrap, libseccomp or the privileges they need are missing,
:func:`sandbox_problem` says why and callers refuse to grade unless asked for the weaker
``unsafe`` mode (plain ``setrlimit`` and a scratch folder, the program running as the
grader's user). Where only the cgroup controllers are missing, runs go on with the
per-process limits and :func:`weaker_isolation` says what is lost (graders log it).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import itertools
import logging
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from autograder.sandbox import cgroup, seccomp

__all__ = [
    "MB",
    "GB",
    "UID_RANGE",
    "Limits",
    "Runtime",
    "SandboxResult",
    "SandboxUnavailable",
    "UidLease",
    "IsolatedRun",
    "privileged",
    "bwrap_arguments",
    "weaker_isolation",
    "leftover_processes",
    "isolation_mounts",
    "sandbox_problem",
    "run_sandboxed",
    "file_digest",
    "tree_digest",
]

MB, GB = 1024 ** 2, 1024 ** 3

#: Unprivileged uids (and gids) the sandboxed commands run as: one per concurrent run, so
#: that runs cannot signal each other and each has its own ``RLIMIT_NPROC`` count.
UID_RANGE = range(61000, 61064)

#: Where the grader keeps its per-uid lock files (root only, never mounted in a sandbox).
LOCK_DIR = Path(os.environ.get("NOISYLABELS_SANDBOX_LOCKS", "/run/noisylabels-sandbox"))

SCRATCH = "/submission"  # the working directory inside the sandbox


class SandboxUnavailable(RuntimeError):
    """The machine cannot run the isolated sandbox (the message says why)."""


@dataclass(frozen=True)
class Limits:
    """Limits on one sandboxed run (all per run)."""

    memory: int = 6 * GB          #: RLIMIT_AS of each process, and the whole run's memory (its cgroup)
    processes: int | None = 256   #: processes and threads of the run at once (None: unchanged)
    file_size: int = 64 * MB      #: RLIMIT_FSIZE: largest file written, standard output included
    output: int = 1 * MB          #: bytes of standard output read back
    scratch_size: int = 256 * MB  #: the writable working folder (tmpfs)
    tmp_size: int = 256 * MB      #: the private /tmp (tmpfs)
    shm_size: int = 256 * MB      #: the private /dev/shm (tmpfs)
    stderr_tail: int = 2000       #: bytes of standard error kept (its end)


@dataclass
class SandboxResult:
    """What one run did. ``returncode`` is the command's (negative: killed by that signal)."""

    returncode: int | None
    seconds: float
    stdout: bytes = b""
    stdout_size: int = 0          #: bytes it wrote to standard output in all
    stderr_tail: str = ""
    wall_killed: bool = False     #: the grader's own wall-clock stop had to kill it
    memory_exhausted: bool = False  #: the run reached its whole-run memory cap
    isolated: bool = True         #: False in the ``unsafe`` mode
    changed_files: list = field(default_factory=list)  #: given files whose content changed


# ----------------------------------------------------------------------------- runtimes
def _site_dirs() -> list:
    """Every site-packages / dist-packages folder an interpreter on this machine might use."""
    import site

    dirs = set(site.getsitepackages())
    with contextlib.suppress(Exception):
        dirs.add(site.getusersitepackages())
    for prefix in {sys.prefix, sys.base_prefix, "/usr", "/usr/local"}:
        for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages",
                        "lib/python3/dist-packages", "local/lib/python3*/dist-packages"):
            dirs.update(str(p) for p in Path(prefix).glob(pattern))
    return sorted(d for d in dirs if Path(d).is_dir())


def _distribution_closure(names) -> list:
    """The installed distributions ``names`` need, with all their requirements (markers applied)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen, todo, found = set(), list(names), []
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(dist)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return found


def _top_level_entries(dist) -> set:
    """Paths (absolute) of the top-level files and folders a distribution installed."""
    base = Path(dist.locate_file(""))
    entries = set()
    for f in dist.files or []:
        parts = Path(f).parts
        if not parts or parts[0] == ".." or parts[0] == "__pycache__":
            continue
        entries.add(base / parts[0])
    return {e for e in entries if e.exists()}


@dataclass(frozen=True)
class Runtime:
    """The Python a sandboxed command sees: which installed distributions are visible.

    ``packages=None`` shows the whole environment the grader runs in (notebook kernels,
    which need the course library); otherwise only the named distributions and what they
    require (homework 2: ``("numpy", "torch")``). ``extra`` are host folders mounted
    read-only at the same path (e.g. the course package of an editable install).
    """

    packages: tuple | None = ("numpy", "torch")
    extra: tuple = ()

    def roots(self) -> list:
        """Host folders mounted whole (read-only): the interpreter's prefixes and ``extra``."""
        roots = []
        for prefix in (sys.base_prefix, sys.prefix, *map(str, self.extra)):
            if not Path(prefix).is_relative_to("/usr") and prefix not in roots:
                roots.append(prefix)
        return roots

    def mounts(self) -> list:
        """bubblewrap arguments that build this runtime (after the system mounts)."""
        args = []
        for root in self.roots():
            args += ["--ro-bind", root, root]
        trees = ["/usr", *self.roots()]
        site_dirs = [d for d in _site_dirs() if any(Path(d).is_relative_to(t) for t in trees)]
        for site_dir in site_dirs:  # every package folder starts empty ...
            args += ["--tmpfs", site_dir]
        if self.packages is None:  # ... then the environment's own comes back whole
            for site_dir in site_dirs:
                if Path(site_dir).is_relative_to(sys.prefix):
                    args += ["--ro-bind", site_dir, site_dir]
        else:  # ... or only the allowed distributions
            for entry in _visible_entries(tuple(self.packages)):
                args += ["--ro-bind", entry, entry]
        return args


@lru_cache(maxsize=None)
def _visible_entries(packages: tuple) -> tuple:
    entries = set()
    for dist in _distribution_closure(packages):
        entries.update(str(e) for e in _top_level_entries(dist))
    return tuple(sorted(entries))


# ----------------------------------------------------------------------------- availability
def privileged() -> bool:
    """Root mode (a uid of its own per run) when the grader is root, else the unprivileged mode."""
    return os.geteuid() == 0


@lru_cache(maxsize=None)
def _bwrap_disables_userns() -> bool:
    """Whether this bubblewrap has ``--disable-userns`` (0.8 and later)."""
    run = subprocess.run(["bwrap", "--help"], capture_output=True, text=True)
    return "--disable-userns" in run.stdout + run.stderr


def _kernel_version() -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", os.uname().release)[:2])


def nproc_counts_per_user_namespace() -> bool:
    """Whether ``RLIMIT_NPROC`` set inside a user namespace counts only that namespace's
    processes of the uid (Linux 5.14 and later, "ucounts")."""
    return _kernel_version() >= (5, 14)


_probe_lock = threading.Lock()


def sandbox_problem() -> str | None:
    """Why the isolated sandbox cannot run here, or ``None`` when it can (in this grader's mode).

    Found out once per process (threads wait for the first answer)."""
    with _probe_lock:
        return _sandbox_problem()


@lru_cache(maxsize=None)
def _sandbox_problem() -> str | None:
    if sys.platform != "linux":
        return "the sandbox needs Linux namespaces"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if privileged() and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if not privileged() and shutil.which("prlimit") is None:
        return "prlimit (util-linux) is not installed"
    problem = seccomp.filter_problem()
    if problem:
        return problem
    lease = UidLease() if privileged() else None  # a uid no run of any grader is using
    if lease is not None:
        try:
            uid = lease.acquire()
        except (OSError, SandboxUnavailable) as error:
            return f"no sandbox uid can be leased: {error}"
        wrapper = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    else:
        wrapper = ["prlimit", "--nproc=64:64", "--"]
    filter_fd = seccomp.filter_fd()
    try:
        probe = subprocess.run(["bwrap", "--seccomp", str(filter_fd), *_system_mounts(),
                                *([] if privileged() else _user_namespace_arguments()), "--unshare-pid",
                                "--unshare-net", "--unshare-ipc", "--die-with-parent", "--proc", "/proc",
                                "--", *wrapper, "true"],
                               capture_output=True, text=True, pass_fds=(filter_fd,))
    finally:
        os.close(filter_fd)
        if lease is not None:
            lease.release()
    if probe.returncode != 0:
        if privileged():
            return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()[-300:]}"
        return (f"bubblewrap cannot create an unprivileged user namespace here ({probe.stderr.strip()[-300:]}): "
                f"allow them (sysctl user.max_user_namespaces > 0; kernel.unprivileged_userns_clone=1 on "
                f"Debian kernels before 6.1; AppArmor's kernel.apparmor_restrict_unprivileged_userns=0 on "
                f"Ubuntu 24.04), or grade as root")
    return None


def weaker_isolation() -> list:
    """What the isolated sandbox lacks on this machine without refusing to run (for the log)."""
    weaker = []
    if not privileged():
        weaker.append("unprivileged mode: runs are this account's uid outside their namespaces, with no uid "
                      "of their own (see 'Grading without root' in autograder/README.md)")
        if not nproc_counts_per_user_namespace():
            weaker.append(f"Linux {'.'.join(map(str, _kernel_version()))} counts a run's process limit over "
                          f"every process of this account (5.14 and later count the run's own)")
    problem = cgroup.cgroup_problem()
    if problem:
        weaker.append(problem)
    return weaker


def _user_namespace_arguments() -> list:
    """bubblewrap arguments of the unprivileged mode: a user namespace, no nested one, no capabilities."""
    args = ["--unshare-user"]
    if _bwrap_disables_userns():
        args.append("--disable-userns")
    return args + ["--cap-drop", "ALL"]


def _system_mounts() -> list:
    """The read-only system: /usr, the merged-/usr links, the few /etc files programs read."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/" + name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--perms", "0755", "--dir", "/etc"]  # readable by the sandbox's uid (bwrap makes 0700)
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
                 "passwd", "group", "hosts", "alternatives", "fonts"):  # fonts: matplotlib's fontconfig
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _parent_dirs(paths) -> list:
    """``--perms 0755 --dir`` for every ancestor of the mount points (bwrap would make them 0700)."""
    dirs = set()
    for p in paths:
        for parent in Path(p).parents:
            if str(parent) not in ("/", ""):
                dirs.add(str(parent))
    args = []
    dirs.discard("/tmp")  # the private /tmp: world-writable, made by the caller
    for d in sorted(dirs, key=lambda d: (d.count("/"), d)):
        args += ["--perms", "0755", "--dir", d]
    return args


# ----------------------------------------------------------------------------- uids
class UidLease:
    """An unprivileged uid that no other run (in this or another grader process) is using.

    ``acquire()`` takes the first free uid of :data:`UID_RANGE` (an ``flock`` on a file in
    :data:`LOCK_DIR`) and kills anything still running under it; ``release()`` kills
    everything the uid still runs and frees it.
    """

    def __init__(self):
        self.uid = None
        self._fh = None

    def acquire(self) -> int:
        LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        for uid in UID_RANGE:
            fh = open(LOCK_DIR / f"uid-{uid}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            self.uid, self._fh = uid, fh
            _kill_uid(uid)  # nothing of an earlier run may still hold it
            return uid
        raise SandboxUnavailable(f"all {len(UID_RANGE)} sandbox uids are in use")

    def release(self) -> None:
        if self._fh is not None:
            _kill_uid(self.uid)
            self._fh.close()
            self._fh = None


def _processes_by_uid(uids) -> dict:
    """``{uid: [pid, ...]}`` of the live processes owned by one of ``uids``."""
    by_uid = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                uid = entry.stat().st_uid
                if uid in uids:
                    by_uid.setdefault(uid, []).append(int(entry.name))
    return by_uid


def leftover_processes() -> list:
    """Pids of sandbox processes that no run holds any more: what a run left behind.

    Root mode: processes of the sandbox uids that no run holds a lease for. Unprivileged
    mode: :func:`_orphaned_sandbox_processes` (never every process of this account).
    """
    if not privileged():
        return _orphaned_sandbox_processes()
    leftovers = []
    for uid, pids in _processes_by_uid(UID_RANGE).items():
        lock = LOCK_DIR / f"uid-{uid}.lock"
        try:
            with open(lock, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: nobody is running as uid
                leftovers += pids
        except BlockingIOError:
            continue  # a run in progress (this or another grader process)
        except OSError:
            leftovers += pids
    return sorted(leftovers)


def _status(pid) -> dict:
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def _orphaned_sandbox_processes() -> list:
    """This account's processes in a PID namespace whose init is a bubblewrap that no
    bubblewrap of this PID namespace watches any more (its run is over, yet it lives).

    A run's namespace init is ``bwrap``, child of the ``bwrap`` the grader started; while
    that one lives the run is in progress (this or another grader's, or an application
    sandboxed by bubblewrap, e.g. Flatpak). Other namespaces (a browser's sandbox) are not
    the sandbox's and are never reported.
    """
    own_ns, uid = os.readlink("/proc/self/ns/pid"), os.getuid()
    info = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError, KeyError):
                status = _status(entry.name)
                if int(status["Uid"][0]) == uid and status["State"][0] != "Z":  # a zombie holds nothing
                    info[int(entry.name)] = (os.readlink(f"/proc/{entry.name}/ns/pid"), int(status["PPid"][0]),
                                             status["Name"][0] if status.get("Name") else "", status["NSpid"])
    namespaces = {}
    for pid, (ns, _, _, _) in info.items():
        if ns != own_ns:
            namespaces.setdefault(ns, []).append(pid)
    leftovers = []
    for ns, pids in namespaces.items():
        inits = [p for p in pids if info[p][3][-1] == "1"]
        if not inits or info[inits[0]][2] != "bwrap":
            continue
        parent = info.get(info[inits[0]][1])
        if parent is not None and parent[0] == own_ns and parent[2] == "bwrap":
            continue  # its run is in progress
        leftovers += pids
    return sorted(leftovers)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (none should exist outside a run). Root mode only:
    in the unprivileged mode the run's uid is the grader's own."""
    if not privileged():
        raise RuntimeError("refusing to kill every process of this account's uid (unprivileged mode)")
    for _ in range(50):
        pids = _processes_by_uid((uid,)).get(uid, [])
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


# ----------------------------------------------------------------------------- digests
def file_digest(path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(paths) -> dict:
    """``{path: sha256}`` for files (missing files map to ``None``)."""
    out = {}
    for p in paths:
        try:
            out[str(p)] = file_digest(p)
        except OSError:
            out[str(p)] = None
    return out


# ----------------------------------------------------------------------------- running
def _preexec(limits: Limits, cpu_seconds: float | None, isolated: bool, run=None):
    def limit(kind, soft, hard=None):
        if soft is None:
            return
        hard = soft if hard is None else hard
        _, current = resource.getrlimit(kind)
        if current != resource.RLIM_INFINITY:  # never above what this process may raise to
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(kind, (soft, hard))

    nproc = limits.processes
    if run is not None and not run.privileged:
        # set inside the run's user namespace (prlimit, see bwrap_arguments), where only the
        # run's processes count; an older kernel counts every process of this account
        nproc = None if nproc is None or nproc_counts_per_user_namespace() else _task_count(os.getuid()) + nproc

    def preexec():  # in the child, between fork and exec: inherited by everything it starts
        if not isolated:
            os.setsid()
        if run is not None:
            if run.cgroup is not None:
                run.cgroup.join()
            if run.privileged:
                _fresh_keyrings(run.uid)
            else:
                _new_session_keyring()
        limit(resource.RLIMIT_AS, limits.memory)
        limit(resource.RLIMIT_FSIZE, limits.file_size)
        limit(resource.RLIMIT_CORE, 0)
        if cpu_seconds is not None:
            limit(resource.RLIMIT_CPU, int(cpu_seconds), int(cpu_seconds) + 5)
        limit(resource.RLIMIT_NPROC, nproc)

    return preexec


def _task_count(uid: int) -> int:
    """Processes and threads of ``uid`` now (what ``RLIMIT_NPROC`` counts without user namespaces)."""
    count = 0
    for pid in _processes_by_uid((uid,)).get(uid, []):
        with contextlib.suppress(OSError):
            count += len(os.listdir(f"/proc/{pid}/task"))
    return count


# keyctl(2) operations and special keyring ids (linux/keyctl.h)
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR, KEYCTL_GET_PERSISTENT = 1, 7, 22
KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -3, -4, -5


@lru_cache(maxsize=None)
def _keyctl_call():
    import pyseccomp

    libc, number = ctypes.CDLL(None, use_errno=True), pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "keyctl")
    return lambda *args: libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))


def _fresh_keyrings(uid: int) -> None:
    """Clear ``uid``'s keyrings that outlive a run, then join a new, empty session keyring.

    Called as root in the run's child before ``exec``. The user (``@u``), user-session
    (``@us``) and persistent keyrings are per uid and persist across runs, so they are
    cleared as ``uid`` (keyring permissions are checked even for root); the session keyring
    the run starts with is a new anonymous one, not the grader's.
    """
    keyctl = _keyctl_call()
    os.setresuid(uid, uid, 0)  # the saved uid 0 lets this process become root again
    try:
        keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0)  # a session keyring of the uid's, to link the persistent one into
        persistent = keyctl(KEYCTL_GET_PERSISTENT, -1, KEY_SPEC_SESSION_KEYRING)
        for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING, *([persistent] if persistent > 0 else [])):
            keyctl(KEYCTL_CLEAR, ring)
    finally:
        os.setresuid(0, 0, 0)
    keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0)  # the run's own, empty


def _new_session_keyring() -> None:
    """Join a new, empty session keyring (unprivileged mode: the grader's own is left behind).

    An ordinary account cannot clear keyrings of another uid, and needs not: the run's uid is
    the grader's, its user keyrings belong to the run's user namespace (Linux 5.3 and later),
    and the seccomp filter refuses every keyring call. If the account's key quota is used up
    the run keeps the grader's session keyring, still out of the filtered program's reach.
    """
    _keyctl_call()(KEYCTL_JOIN_SESSION_KEYRING, 0)


def _copy_regular_file(src, dest) -> None:
    """Copy ``src`` to ``dest`` without following a link (``O_NOFOLLOW``) or blocking on a FIFO
    (``O_NONBLOCK``); ``ValueError`` unless ``src`` is a regular file."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{src} is not a regular file")
        with open(dest, "wb") as out:
            shutil.copyfileobj(fh, out)


def _read_head(path, limit):
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


def _read_tail(path, limit):
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - limit))
        return fh.read().decode("utf-8", "replace")


def isolation_mounts(runtime: Runtime, limits: Limits, mount_points=()) -> list:
    """bubblewrap arguments for the file system every sandbox starts from.

    The private ``/tmp`` comes first, so that a runtime or a course that lives under the
    host's ``/tmp`` (a CI clone, say) is mounted on top of it rather than hidden by it; then
    the folders leading to the mount points, the read-only system and runtime, ``/proc``
    and ``/dev``. ``mount_points`` are paths the caller mounts afterwards.
    """
    args = ["--perms", "1777", "--size", str(limits.tmp_size), "--tmpfs", "/tmp"]
    args += _parent_dirs([*runtime.roots(), *map(str, mount_points)])
    args += _system_mounts() + runtime.mounts()
    args += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(limits.shm_size), "--tmpfs", "/dev/shm"]
    return args


def bwrap_arguments(command, *, uid: int, runtime: Runtime, limits: Limits, workdir: str, env: dict,
                    mount_points=(), mounts=(), network: bool = False, seccomp_fd: int | None = None,
                    user_namespace: bool = False) -> list:
    """The bubblewrap command line of every sandbox (program runs and notebook kernels).

    Namespaces, the seccomp filter read from ``seccomp_fd``, the file system of
    :func:`isolation_mounts`, then the caller's ``mounts`` (bubblewrap arguments for the
    ``mount_points``), the working folder, the whole environment, and ``command`` started
    by ``setpriv`` as ``uid`` with no capabilities and ``no_new_privs``. With
    ``user_namespace`` (the unprivileged mode) bubblewrap makes a user namespace as well and
    drops every capability itself; ``command`` keeps the grader's uid and is started by
    ``prlimit`` with the run's process limit, counted inside that namespace.
    """
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if user_namespace:
        args += _user_namespace_arguments()
    if not network:
        args.append("--unshare-net")
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    args += isolation_mounts(runtime, limits, mount_points)
    args += [*mounts, "--chdir", workdir, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    if not user_namespace:
        return args + ["--", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                       "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *command]
    if limits.processes is not None and nproc_counts_per_user_namespace():
        return args + ["--", "prlimit", f"--nproc={limits.processes}:{limits.processes}", "--", *command]
    return args + ["--", *command]


_run_numbers = itertools.count()


@lru_cache(maxsize=None)
def _sweep_stale_groups_once(uid: int) -> None:
    with contextlib.suppress(OSError):
        cgroup.sweep_stale_groups(uid)


class IsolatedRun:
    """What one isolated run owns: a leased uid (root mode) and a control group (a context manager).

    :meth:`launch` gives the command line and the ``Popen`` arguments that start a command
    in it; :meth:`close` kills whatever the run left, removes its group and frees the uid.
    In the unprivileged mode (:func:`privileged` false) ``uid`` is the grader's own, no uid
    is leased and nothing is killed by uid: what the run left is killed through its cgroup,
    and its PID namespace ends with it. Shared by :func:`run_sandboxed` and the notebook
    kernels (``autograder/nbgrader_plugins/kernel_sandbox.py``).
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self.privileged = privileged()
        self._lease = UidLease() if self.privileged else None
        if self.privileged:
            self.uid = self._lease.acquire()
            name = f"noisylabels-uid-{self.uid}"
        else:
            self.uid = os.getuid()
            name = f"u{self.uid}-{os.getpid()}-{next(_run_numbers)}"
            _sweep_stale_groups_once(self.uid)
        self._status_fds = []  # unprivileged mode: bubblewrap's --json-status-fd, read in close()
        self.cgroup = None
        if cgroup.cgroup_problem() is None:
            try:
                self.cgroup = cgroup.RunCgroup(name, limits.memory, limits.processes)
            except OSError as error:
                logging.getLogger(__name__).warning("no cgroup for this run (per-process limits only): %s", error)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextlib.contextmanager
    def launch(self, command, *, runtime: Runtime, workdir: str, env: dict, mount_points=(), mounts=(),
               network: bool = False, cpu_seconds: float | None = None):
        """Yield ``(argv, popen_kwargs)`` that start ``command`` in this run (see :func:`bwrap_arguments`).

        The arguments reach bubblewrap through a pipe (``bwrap --args FD``), so that the
        command line the sandbox's init shows in its /proc names no host path; the seccomp
        filter through another. Both are closed when the block ends (after ``Popen``). In the
        unprivileged mode bubblewrap also reports its namespace's init (``--json-status-fd``)
        for :meth:`close`.
        """
        fds = [seccomp.filter_fd()]
        try:
            argv = bwrap_arguments(command, uid=self.uid, runtime=runtime, limits=self.limits, workdir=workdir,
                                   env=env, mount_points=mount_points, mounts=mounts, network=network,
                                   seccomp_fd=fds[0], user_namespace=not self.privileged)
            split = argv.index("--")
            if not self.privileged:
                status_read, status_write = os.pipe()
                self._status_fds.append(status_read)
                fds.append(status_write)
                argv[split:split] = ["--json-status-fd", str(status_write)]
                split += 2
            payload = b"".join(a.encode() + b"\0" for a in argv[1:split])
            if len(payload) >= 60000:
                raise SandboxUnavailable(f"too many mounts for one sandbox ({len(payload)} bytes)")
            read_end, write_end = os.pipe()
            fds.append(read_end)
            with open(write_end, "wb") as fh:
                fh.write(payload)
            yield (["bwrap", "--args", str(read_end), *argv[split:]],
                   {"pass_fds": tuple(fds), "preexec_fn": _preexec(self.limits, cpu_seconds, True, self)})
        finally:
            for fd in fds:
                os.close(fd)

    def memory_exhausted(self) -> bool:
        """Whether the run reached its whole-run memory cap (``False`` without a cgroup)."""
        return self.cgroup is not None and self.cgroup.memory_exhausted()

    def close(self) -> None:
        """End the run: kill what is left of it (root mode: by its uid; unprivileged mode: its
        PID namespace's init, so the kernel kills the rest), remove its group, free the uid."""
        for fd in self._status_fds:
            _end_namespace(fd)
            os.close(fd)
        self._status_fds = []
        if self.cgroup is not None:  # before the uid is free for another run
            self.cgroup.close()
            self.cgroup = None
        if self._lease is not None:
            self._lease.release()


def _end_namespace(status_fd: int, seconds: float = 10.0) -> None:
    """Kill a run's PID namespace through its init, as bubblewrap reported it on ``status_fd``,
    and wait until it has ended (then every other process of the namespace has ended too).

    The init is held by a pidfd and checked to be in the reported PID namespace before it is
    signalled, so a reused pid is never signalled; killing it makes the kernel kill every
    other process of the namespace.
    """
    import json
    import select

    os.set_blocking(status_fd, False)
    text = b""
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(status_fd, 65536):
            text += chunk
    init, namespace = None, None
    for line in text.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            report = json.loads(line)
            init = report.get("child-pid", init)
            namespace = report.get("pid-namespace", namespace)
    if init is None or namespace is None:
        return  # bubblewrap never started the namespace
    try:
        pidfd = os.pidfd_open(init)
    except ProcessLookupError:
        return
    try:
        try:
            if os.readlink(f"/proc/{init}/ns/pid") != f"pid:[{namespace}]":
                return  # it ended and its pid is another process's now
        except OSError:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        if not select.select([pidfd], [], [], seconds)[0]:  # readable once it has exited
            logging.getLogger(__name__).warning("the namespace of run %s did not end in %.0f s", init, seconds)
    finally:
        os.close(pidfd)


def run_sandboxed(command, files=None, *, wall_seconds: float, limits: Limits | None = None,
                  runtime: Runtime | None = None, env=None, network: bool = False,
                  unsafe: bool = False, stdout_path=None) -> SandboxResult:
    """Run ``command`` (a list) in a fresh sandbox; never raises for what the command does.

    ``files`` maps names in the working folder to host files, mounted read-only (copied in
    the ``unsafe`` mode). ``env`` is the whole environment (``PATH`` defaults to the
    runtime's interpreter folder and the system's). ``wall_seconds`` is the grader's own
    hard stop (the command should carry its own ``timeout``). Raises
    :class:`SandboxUnavailable` when isolation is impossible here and ``unsafe`` is false.
    """
    limits = limits or Limits()
    runtime = runtime or Runtime()
    files = {str(k): Path(v) for k, v in (files or {}).items()}
    for name in files:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
    env = dict(env or {})
    env.setdefault("PATH", os.pathsep.join([os.path.dirname(os.path.abspath(sys.executable)),
                                            "/usr/local/bin", "/usr/bin", "/bin"]))
    env.setdefault("LANG", "C.UTF-8")
    if not unsafe:
        problem = sandbox_problem()
        if problem:
            raise SandboxUnavailable(problem)
    sources = dict(files)
    before = tree_digest(sources.values())
    logs = Path(tempfile.mkdtemp(prefix="sandbox-logs-"))  # the grader's, never mounted
    out_path = Path(stdout_path) if stdout_path else logs / "stdout"
    err_path = logs / "stderr"
    cpu_seconds = wall_seconds * (os.cpu_count() or 1) + 30
    try:
        with contextlib.ExitStack() as stack:
            run = None
            if unsafe:
                scratch = Path(tempfile.mkdtemp(prefix="sandbox-unsafe-"))
                stack.callback(shutil.rmtree, scratch, ignore_errors=True)
                (scratch / "tmp").mkdir()
                for name, src in files.items():
                    _copy_regular_file(src, scratch / name)
                env.update(HOME=str(scratch), TMPDIR=str(scratch / "tmp"))
                argv, cwd = list(command), scratch
                popen_kwargs = {"preexec_fn": _preexec(limits, cpu_seconds, False)}
            else:
                # Read-only copies the sandbox uid may read, in the grader's private folder
                # (the originals, e.g. instructor files of mode 0600, stay as they are).
                staged = logs / "files"
                staged.mkdir()
                mounts = ["--perms", "1777", "--size", str(limits.scratch_size), "--tmpfs", SCRATCH]
                for name, src in files.items():
                    _copy_regular_file(src, staged / name)
                    os.chmod(staged / name, 0o444)
                    mounts += ["--ro-bind", str(staged / name), f"{SCRATCH}/{name}"]
                run = stack.enter_context(IsolatedRun(limits))
                env.setdefault("HOME", SCRATCH)
                env.setdefault("TMPDIR", "/tmp")
                argv, popen_kwargs = stack.enter_context(run.launch(
                    command, runtime=runtime, workdir=SCRATCH, env=env, mount_points=[SCRATCH], mounts=mounts,
                    network=network, cpu_seconds=cpu_seconds))
                cwd = "/"
            start = time.perf_counter()
            wall_killed = False
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                proc = subprocess.Popen(argv, cwd=cwd, env=env if unsafe else {"PATH": "/usr/bin:/bin"},
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        close_fds=True, start_new_session=not unsafe,
                                        **popen_kwargs)
                try:
                    proc.wait(timeout=wall_seconds)
                except subprocess.TimeoutExpired:
                    wall_killed = True
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                if unsafe:  # whatever it left in its process group
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
            memory_exhausted = run is not None and run.memory_exhausted()
            seconds = time.perf_counter() - start
        result = SandboxResult(returncode=proc.returncode, seconds=round(seconds, 3),
                               stdout=_read_head(out_path, limits.output),
                               stdout_size=out_path.stat().st_size,
                               stderr_tail=_read_tail(err_path, limits.stderr_tail),
                               wall_killed=wall_killed, memory_exhausted=memory_exhausted,
                               isolated=not unsafe)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    after = tree_digest(sources.values())
    result.changed_files = [p for p in before if before[p] != after[p]]
    return result
