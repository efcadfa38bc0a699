"""The sandbox's seccomp filter: kernel calls a graded program has no use for, refused with EPERM.

Built with libseccomp (through ``pyseccomp``, its ctypes bindings) and handed to bubblewrap
(``bwrap --seccomp FD``), which loads it just before it starts the command: the program and
everything it starts carry it, and cannot remove it.

Modelled on Docker's default profile, as a deny list: the sandboxed program already runs
as an unprivileged uid with no capabilities and ``no_new_privs``, so every call Docker
refuses because it needs a capability (``mount``, ``kexec_load``, ``init_module``,
``reboot``, ...) fails anyway; it is denied here too, as a second wall. What the filter adds
is the calls an unprivileged process *can* make and that would reach past its run:

- the kernel keyrings (``add_key``, ``request_key``, ``keyctl``): a uid's keyrings outlive
  the run and would carry data to the next student graded under the same uid;
- new namespaces (``unshare``, ``setns``, ``clone`` with a ``CLONE_NEW*`` flag; ``clone3``
  answers ``ENOSYS``, as in Docker, because its flags cannot be inspected, and the C
  library falls back to ``clone``): a user namespace would give the program capabilities
  over its own mounts and more kernel surface;
- other processes' memory and the kernel's innards: ``ptrace``, ``process_vm_readv``/
  ``writev``, ``kcmp``, ``perf_event_open``, ``bpf``, ``userfaultfd``, ``io_uring_*``,
  ``open_by_handle_at``, and ``personality`` flags that switch off address randomisation
  or make data executable.

Threads and processes (``clone`` without namespace flags), ``memfd_create``, shared
memory and everything NumPy, PyTorch, Jupyter kernels and ``multiprocessing`` use are
allowed. System calls of another architecture (32-bit calls from a 64-bit program) kill
the caller (libseccomp's default for a foreign architecture), so the list cannot be
side-stepped with ``int 0x80``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from functools import lru_cache

__all__ = ["DENIED", "NAMESPACE_FLAGS", "compiled_filter", "to_bpf", "filter_problem"]

#: Refused whatever their arguments (names unknown to this machine's libseccomp are skipped).
DENIED = (
    # keyrings: per uid, they outlive the run
    "add_key", "request_key", "keyctl",
    # namespaces
    "unshare", "setns",
    # other processes, the kernel's state
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "perf_event_open", "bpf",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "open_by_handle_at", "lookup_dcookie", "fanotify_init",
    # the machine (need capabilities the program does not have; denied as Docker does)
    "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct",
    "quotactl", "quotactl_fd", "syslog", "iopl", "ioperm", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "vhangup", "uselib",
    "create_module", "get_kernel_syms", "query_module", "nfsservctl", "_sysctl", "sysfs",
    "ustat", "vm86", "vm86old",
)

#: ``CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
#: CLONE_NEWPID | CLONE_NEWNET`` (and ``CLONE_NEWTIME``): a ``clone`` with any is refused.
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                   0x40000000, 0x00000080)

#: ``personality`` flags refused: ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, READ_IMPLIES_EXEC.
PERSONALITY_FLAGS = (0x0040000, 0x0100000, 0x0400000)


def filter_problem() -> str | None:
    """Why the filter cannot be built here (libseccomp missing), or ``None``."""
    try:
        compiled_filter()
    except (ImportError, RuntimeError, OSError) as error:
        return f"the seccomp filter cannot be built (libseccomp: apt-get install libseccomp2): {error}"
    return None


def to_bpf(syscall_filter) -> bytes:
    """The compiled BPF program of a libseccomp filter (what ``bwrap --seccomp`` reads)."""
    with tempfile.TemporaryFile() as fh:
        syscall_filter.export_bpf(fh)
        fh.seek(0)
        return fh.read()


@lru_cache(maxsize=None)
def compiled_filter() -> bytes:
    """The sandbox's filter as BPF bytes, built once per process."""
    import pyseccomp as sc

    refuse = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(refuse, name)
        except (ValueError, OSError):  # not a system call on this architecture
            continue
    for flag in NAMESPACE_FLAGS:
        f.add_rule(refuse, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for flag in PERSONALITY_FLAGS:
        f.add_rule(refuse, "personality", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    return to_bpf(f)


def filter_fd() -> int:
    """A pipe's read end holding the compiled filter (for ``bwrap --seccomp FD``); the caller closes it."""
    program = compiled_filter()
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, program)
    finally:
        os.close(write_end)
    return read_end
