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
- it dies with the grader (``--die-with-parent``), and when the command ends its PID
  namespace's init ends too, which makes the kernel kill every process it started,
  whatever it did with sessions, process groups or its environment;
- resource limits: address space, largest file (its standard output included), CPU time,
  number of processes of its uid, no core files; a wall-clock stop in the grader.

Where bubblewrap or the privileges it needs are missing, :func:`sandbox_problem` says why
and callers refuse to grade unless asked for the weaker ``unsafe`` mode (plain
``setrlimit`` and a scratch folder, the program running as the grader's user).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = [
    "MB",
    "GB",
    "UID_RANGE",
    "Limits",
    "Runtime",
    "SandboxResult",
    "SandboxUnavailable",
    "UidLease",
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

    memory: int = 6 * GB          #: RLIMIT_AS of each process
    processes: int | None = 256   #: processes and threads of the run's uid at once (None: unchanged)
    file_size: int = 64 * MB      #: RLIMIT_FSIZE: largest file written, standard output included
    output: int = 1 * MB          #: bytes of standard output read back
    scratch_size: int = 256 * MB  #: the writable working folder (tmpfs)
    tmp_size: int = 256 * MB      #: the private /tmp (tmpfs)
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
@lru_cache(maxsize=None)
def sandbox_problem() -> str | None:
    """Why the isolated sandbox cannot run here, or ``None`` when it can."""
    if sys.platform != "linux":
        return "the sandbox needs Linux namespaces"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if os.geteuid() != 0:
        return ("the grader must run as root to give each program an unprivileged uid of its "
                "own (run it with sudo, or in a container where it is root)")
    probe = subprocess.run(["bwrap", *_system_mounts(), "--unshare-pid", "--unshare-net",
                            "--unshare-ipc", "--die-with-parent", "--proc", "/proc", "--",
                            "setpriv", f"--reuid={UID_RANGE[0]}", f"--regid={UID_RANGE[0]}",
                            "--clear-groups", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()[-300:]}"
    return None


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


@contextlib.contextmanager
def _lease_uid():
    lease = UidLease()
    try:
        yield lease.acquire()
    finally:
        lease.release()


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
    """Pids of sandbox-uid processes that no run holds a lease for: what a run left behind."""
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


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (none should exist outside a run)."""
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
def _preexec(limits: Limits, cpu_seconds: float, isolated: bool):
    def limit(kind, soft, hard=None):
        if soft is None:
            return
        hard = soft if hard is None else hard
        _, current = resource.getrlimit(kind)
        if current != resource.RLIM_INFINITY:  # never above what this process may raise to
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(kind, (soft, hard))

    def preexec():  # in the child, between fork and exec: inherited by everything it starts
        if not isolated:
            os.setsid()
        limit(resource.RLIMIT_AS, limits.memory)
        limit(resource.RLIMIT_FSIZE, limits.file_size)
        limit(resource.RLIMIT_CORE, 0)
        limit(resource.RLIMIT_CPU, int(cpu_seconds), int(cpu_seconds) + 5)
        limit(resource.RLIMIT_NPROC, limits.processes)

    return preexec


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
    args += ["--proc", "/proc", "--dev", "/dev"]
    return args


def _bwrap_command(command, files, uid, runtime, limits, env, network):
    targets = [f"{SCRATCH}/{name}" for name in files]
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if not network:
        args.append("--unshare-net")
    args += isolation_mounts(runtime, limits, [SCRATCH])
    args += ["--perms", "1777", "--size", str(limits.scratch_size), "--tmpfs", SCRATCH]
    for name, target in zip(files, targets):
        args += ["--ro-bind", str(files[name]), target]
    args += ["--chdir", SCRATCH, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
             "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *command]
    return args


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
            pass_fds = ()
            if unsafe:
                scratch = Path(tempfile.mkdtemp(prefix="sandbox-unsafe-"))
                stack.callback(shutil.rmtree, scratch, ignore_errors=True)
                (scratch / "tmp").mkdir()
                for name, src in files.items():
                    shutil.copyfile(src, scratch / name)
                env.update(HOME=str(scratch), TMPDIR=str(scratch / "tmp"))
                argv, cwd = list(command), scratch
            else:
                # Read-only copies the sandbox uid may read, in the grader's private folder
                # (the originals, e.g. instructor files of mode 0600, stay as they are).
                staged = logs / "files"
                staged.mkdir()
                for name, src in list(files.items()):
                    shutil.copyfile(src, staged / name)
                    os.chmod(staged / name, 0o444)
                    files[name] = staged / name
                uid = stack.enter_context(_lease_uid())
                env.setdefault("HOME", SCRATCH)
                env.setdefault("TMPDIR", "/tmp")
                argv, cwd = _bwrap_command(command, files, uid, runtime, limits, env, network), "/"
                # The arguments go through a pipe (``bwrap --args FD``), so that the command
                # line the sandbox's init shows in its /proc names no host path.
                split = argv.index("--")
                payload = b"".join(a.encode() + b"\0" for a in argv[1:split])
                read_end, write_end = os.pipe()
                stack.callback(os.close, read_end)
                if len(payload) >= 60000:
                    os.close(write_end)
                    raise SandboxUnavailable(f"too many mounts for one sandbox ({len(payload)} bytes)")
                os.write(write_end, payload)
                os.close(write_end)
                argv, pass_fds = ["bwrap", "--args", str(read_end), *argv[split:]], (read_end,)
            start = time.perf_counter()
            wall_killed = False
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                proc = subprocess.Popen(argv, cwd=cwd, env=env if unsafe else {"PATH": "/usr/bin:/bin"},
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        close_fds=True, pass_fds=pass_fds, start_new_session=not unsafe,
                                        preexec_fn=_preexec(limits, cpu_seconds, not unsafe))
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
            seconds = time.perf_counter() - start
        result = SandboxResult(returncode=proc.returncode, seconds=round(seconds, 3),
                               stdout=_read_head(out_path, limits.output),
                               stdout_size=out_path.stat().st_size,
                               stderr_tail=_read_tail(err_path, limits.stderr_tail),
                               wall_killed=wall_killed, isolated=not unsafe)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    after = tree_digest(sources.values())
    result.changed_files = [p for p in before if before[p] != after[p]]
    return result
