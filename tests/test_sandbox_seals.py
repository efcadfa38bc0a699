"""Runs are sealed from each other (issue 22, part 3): what one sandboxed run leaves, the next cannot find.

Each channel is tried for real, through ``autograder.sandbox.run_sandboxed`` (real
bubblewrap) and, where a notebook kernel matters, through the kernel sandbox: the first
run stores a value, the second (under the same leased uid where that matters) looks for it.
"""

import ctypes
import json
import os
import sys
import threading

import pyseccomp
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder import sandbox
from autograder.nbgrader_plugins.kernel_sandbox import SandboxedExecute
from autograder.sandbox import seccomp

pytestmark = pytest.mark.usefixtures("require_sandbox")

SYSCALLS = {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
            for name in ("add_key", "keyctl", "ptrace", "clone", "unshare", "memfd_create")}


#: Tests that pin every run to one uid go to one pytest-xdist worker (``--dist loadgroup``):
#: two of them at once on two workers would find that uid taken ("all 1 sandbox uids are in use").
ONE_UID = pytest.mark.xdist_group("sandbox-one-uid")


@pytest.fixture
def one_uid(monkeypatch):
    """Every run takes the same uid (the last of the range), as consecutive students may."""
    monkeypatch.setattr(sandbox, "UID_RANGE", range(sandbox.UID_RANGE[-1], sandbox.UID_RANGE[-1] + 1))


def run(source, *, memory=512 * sandbox.MB, processes=64, wall_seconds=60):
    """Run Python ``source`` in a fresh sandbox with only the standard library."""
    prelude = (f"import ctypes, os, sys\nlibc = ctypes.CDLL(None, use_errno=True)\nNR = {SYSCALLS!r}\n"
               "def syscall(name, *args):\n"
               "    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])\n"
               "    return r if r >= 0 else -ctypes.get_errno()\n")
    return sandbox.run_sandboxed([sys.executable, "-c", prelude + source], wall_seconds=wall_seconds,
                                 limits=sandbox.Limits(memory=memory, processes=processes),
                                 runtime=sandbox.Runtime(packages=()))


def out(result):
    return result.stdout.decode(errors="replace").strip()


# ----------------------------------------------------------------------------- keyrings
KEYRINGS = {"user": -4, "user-session": -5, "session": -3}
KEYRING_ID = ("def keyring(where):\n"
              "    if where == 'persistent':  # keyctl(KEYCTL_GET_PERSISTENT, own uid, into @s)\n"
              "        return syscall('keyctl', 22, -1, -3)\n"
              f"    return {KEYRINGS!r}[where]\n")
STORE = KEYRING_ID + (
    "ring = keyring(WHERE)\n"
    "key = syscall('add_key', b'user', b'channel', b'answers-of-a-strong-student', 27, ring) if ring != -1 else ring\n"
    "print('stored' if key > 0 else 'refused: ' + os.strerror(-key))\n")
READ = KEYRING_ID + (
    "ring = keyring(WHERE)\n"
    "key = syscall('keyctl', 10, ring, b'user', b'channel', 0)  # KEYCTL_SEARCH\n"
    "buf = ctypes.create_string_buffer(64)\n"
    "n = syscall('keyctl', 11, key, buf, 64) if key > 0 else key  # KEYCTL_READ\n"
    "print(buf.raw[:n].decode() if n > 0 else 'nothing: ' + os.strerror(-n))\n")


@pytest.fixture(params=["with the seccomp filter", "fresh keyrings alone"])
def keyring_seal(request, monkeypatch):
    """Both walls, then the per-run keyrings alone (the filter replaced by one that allows everything)."""
    if request.param == "fresh keyrings alone":
        allow_all = seccomp.to_bpf(pyseccomp.SyscallFilter(pyseccomp.ALLOW))
        monkeypatch.setattr(seccomp, "compiled_filter", lambda: allow_all)
    return request.param


@pytest.mark.parametrize("where", ["user", "user-session", "session", "persistent"])
@ONE_UID
def test_a_key_stored_in_one_run_cannot_be_read_by_the_next_run_of_the_same_uid(one_uid, keyring_seal, where):
    first = run(f"WHERE = {where!r}\n" + STORE + "print(os.getuid())")
    second = run(f"WHERE = {where!r}\n" + READ + "print(os.getuid())")
    assert first.returncode == 0 and second.returncode == 0, (first.stderr_tail, second.stderr_tail)
    assert out(first).split()[-1] == out(second).split()[-1]  # the same uid, one after the other
    assert "strong-student" not in out(second), (out(first), out(second))
    if keyring_seal == "with the seccomp filter":
        assert out(first).startswith("refused: Operation not permitted"), out(first)
    else:  # the program may store its key: nothing of it survives the run
        assert out(first).startswith("stored"), out(first)


# ----------------------------------------------------------------------------- files
@ONE_UID
def test_dev_shm_is_writable_and_private_to_its_run(one_uid):
    first = run("open('/dev/shm/channel', 'w').write('x'); open('/tmp/channel', 'w').write('x'); print('written')")
    second = run("print(os.listdir('/dev/shm'), 'channel' in os.listdir('/tmp'))")
    assert out(first) == "written", first.stderr_tail
    # /tmp may hold the folders leading to a runtime that lives under the host's /tmp (a CI clone)
    assert out(second) == "[] False", second.stderr_tail


@pytest.mark.slow
def test_an_abstract_unix_socket_does_not_reach_a_run_graded_at_the_same_time():
    listen = ("import socket\ns = socket.socket(socket.AF_UNIX)\ns.bind('\\0noisylabels-channel')\ns.listen()\n"
              "s.settimeout(8)\ntry:\n    print(s.accept()[0].recv(64).decode())\nexcept OSError:\n    print('nobody')")
    talk = ("import socket, time\nfor _ in range(40):\n    try:\n        c = socket.socket(socket.AF_UNIX)\n"
            "        c.connect('\\0noisylabels-channel'); c.send(b'hello'); print('sent'); break\n"
            "    except OSError:\n        time.sleep(0.2)\nelse:\n    print('no listener')")
    results = {}
    listener = threading.Thread(target=lambda: results.update(listen=run(listen)))
    listener.start()
    results["talk"] = run(talk)
    listener.join()
    assert out(results["talk"]) == "no listener"
    assert out(results["listen"]) == "nobody"


# ----------------------------------------------------------------------------- kernel features
def test_a_run_cannot_make_a_user_namespace():
    result = run(
        "import subprocess\n"
        "r = subprocess.run(['unshare', '--user', '--map-root-user', 'id', '-u'], capture_output=True)\n"
        "print('unshare', r.returncode)\n"
        "pid = syscall('clone', 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD\n"
        "if pid == 0:\n    os._exit(0)\n"
        "print('clone', 'refused' if pid < 0 else 'made one')\n"
        "pid = syscall('clone', 17, 0, 0, 0, 0)  # a plain fork still works\n"
        "if pid == 0:\n    os._exit(7)\n"
        "print('fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) if pid > 0 else pid)\n")
    assert result.returncode == 0, result.stderr_tail
    assert out(result).splitlines() == ["unshare 1", "clone refused", "fork 7"]


def test_a_run_cannot_trace_its_own_sibling_process():
    result = run(
        "import subprocess, time\nvictim = subprocess.Popen(['sleep', '30'])\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    r = syscall('ptrace', 16, victim.pid, 0, 0)  # PTRACE_ATTACH\n"
        "    print('traced' if r == 0 else 'refused: ' + os.strerror(-r), flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0); victim.kill()\n")
    assert out(result) == "refused: Operation not permitted", (out(result), result.stderr_tail)


# ----------------------------------------------------------------------------- run totals
@pytest.mark.slow
def test_memfd_memory_over_the_run_cap_is_refused_or_killed():
    result = run("fds, chunk = [], b'x' * (32 << 20)\n"  # each under the largest-file limit (64 MB)
                 "for i in range(32):\n    fd = os.memfd_create('hoard'); os.write(fd, chunk); fds.append(fd)\n"
                 "print('held', sum(os.fstat(fd).st_size for fd in fds) >> 20, 'MB')", memory=512 * sandbox.MB)
    assert "held" not in out(result), "1 GB of memfd under a 512 MB cap"
    assert result.returncode != 0 and result.memory_exhausted


@pytest.mark.slow
def test_the_memory_of_many_processes_together_is_capped():
    result = run("import select\nr, w = os.pipe(); hold, release = os.pipe()\n"
                 "for _ in range(4):\n    if os.fork() == 0:\n"
                 "        block = b'x' * (200 << 20); os.write(w, b'k'); os.read(hold, 1); os._exit(0)\n"
                 "held = 0\nwhile held < 4 and select.select([r], [], [], 10)[0] and os.read(r, 1) == b'k':\n"
                 "    held += 1\nprint('held', held)", memory=512 * sandbox.MB)
    assert out(result) != "held 4", "four processes of 200 MB each under a 512 MB cap"


def test_a_fork_bomb_stays_under_the_process_cap():
    result = run("import time\nmade = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n"
                 "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(20); os._exit(0)\n"
                 "    made += 1\nprint(made)", processes=32)
    assert result.returncode == 0, result.stderr_tail
    assert 0 < int(out(result)) < 32


# ----------------------------------------------------------------------------- honest work
MULTIPROCESSING = (
    "import multiprocessing as mp\nfrom multiprocessing import shared_memory\n"
    "def square(x):\n    return x * x\n"
    "with mp.Pool(2) as pool:\n    squares = pool.map(square, range(10))\n"
    "q = mp.Queue(); q.put('queued'); shm = shared_memory.SharedMemory(create=True, size=1 << 20)\n"
    "shm.buf[:2] = b'ok'; print(sum(squares), q.get(), bytes(shm.buf[:2]).decode()); shm.close(); shm.unlink()\n")


def test_honest_multiprocessing_works_in_a_run():
    result = run(MULTIPROCESSING, memory=2 * sandbox.GB)
    assert out(result) == "285 queued ok", result.stderr_tail


@pytest.mark.slow
def test_a_notebook_kernel_has_multiprocessing_and_no_keyring_or_user_namespace(tmp_path):
    nb = new_notebook(cells=[new_code_cell(MULTIPROCESSING), new_code_cell(
        "import ctypes, os, subprocess\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"r = libc.syscall({SYSCALLS['add_key']}, b'user', b'channel', b'x', 1, ctypes.c_long(-4))\n"
        "print('add_key', os.strerror(ctypes.get_errno()) if r < 0 else 'stored')\n"
        "print('unshare', subprocess.run(['unshare', '-U', 'true'], capture_output=True).returncode)")])
    nb, _ = SandboxedExecute(timeout=120, allow_errors=True).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    texts = ["".join(o.get("text", "") or o.get("ename", "") for o in c.outputs) for c in nb.cells]
    assert texts[0].strip() == "285 queued ok", nb.cells[0].outputs
    assert texts[1].split("\n")[:2] == ["add_key Operation not permitted", "unshare 1"], nb.cells[1].outputs


def test_the_seccomp_filter_is_compiled_once_per_process():
    assert seccomp.compiled_filter() is seccomp.compiled_filter()
    assert len(seccomp.compiled_filter()) % 8 == 0 and json.dumps(seccomp.DENIED)  # BPF: 8-byte instructions
