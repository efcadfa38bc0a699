"""One-time root set-up: let the graders' unix group give each sandboxed run its own cgroup.

    python -m autograder.sandbox.delegate --group graders      # as root, once (idempotent)
    python -m autograder.sandbox.delegate --check [--group graders]

A grader running as an ordinary account (the sandbox's unprivileged mode, see
:mod:`autograder.sandbox`) cannot create control groups. This command creates
``noisylabels-grading`` at the root of the cgroup v1 hierarchy of each controller the
sandbox caps (``memory``, ``pids``), owned by ``root:GROUP`` with mode 1775: a member of
GROUP may then create a group of its own inside it, which the kernel makes owned by that
member (limits, ``cgroup.procs``), move its own processes into it and remove it. Nothing
else changes: the subtree has no limit of its own, and members cannot change or remove the
groups of other accounts (theirs are not group-writable; the sticky bit keeps removal to
their owner) or anything outside the subtree.

Under cgroup v2 the same is not enough (a process may only be moved between groups below
one whose ``cgroup.procs`` the mover can write: the common-ancestor rule), so the command
reports that and does nothing; the unprivileged runs then keep per-process limits only.

Exit status: 0 done (or, with ``--check``, delegated to the group), 1 not possible here
(or not delegated), 2 a usage problem (not root, no such group).
"""

from __future__ import annotations

import argparse
import grp
import os
import stat
import sys
from pathlib import Path

from autograder.sandbox import cgroup

__all__ = ["subtree_folders", "delegate", "check", "main"]

MODE = 0o1775  # group-writable, sticky: a member removes only its own run groups


def subtree_folders() -> dict:
    """``{controller: folder}``: where the delegated subtree of each capped controller lives
    (``<v1 mount point>/noisylabels-grading``, or ``$NOISYLABELS_SANDBOX_CGROUP``); controllers without a v1 hierarchy are missing."""
    return {name: Path(point) / cgroup.delegated_name() for name, (point, _) in cgroup.v1_mounts().items()}


def _describe(folder: Path) -> str:
    info = folder.stat()
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"{folder} (owner uid {info.st_uid}, group {group}, mode {stat.S_IMODE(info.st_mode):04o})"


def _group_id(group: str, out) -> int | None:
    """The gid of ``group``, or None after printing the error (with the command that makes it)."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        out(f"error: no unix group {group!r} (make it first: groupadd {group})")
        return None


def delegate(group: str, out=print) -> int:
    """Create or fix the subtrees for ``group``; print each step. Returns the exit status."""
    if os.geteuid() != 0:
        out("error: delegating a cgroup subtree needs root (run it once with sudo)")
        return 2
    gid = _group_id(group, out)
    if gid is None:
        return 2
    folders = subtree_folders()
    status = 0
    for name in cgroup.CONTROLLERS:
        folder = folders.get(name)
        if folder is None:
            out(f"{name}: no cgroup v1 hierarchy holds it here (cgroup v2 delegation is not supported: "
                f"unprivileged runs keep per-process limits only)")
            status = 1
            continue
        created = False
        if not folder.is_dir():
            folder.mkdir()
            created = True
        info = folder.stat()
        changed = []
        if (info.st_uid, info.st_gid) != (0, gid):
            os.chown(folder, 0, gid)
            changed.append(f"owner root:{group}")
        if stat.S_IMODE(info.st_mode) != MODE:
            os.chmod(folder, MODE)
            changed.append(f"mode {MODE:04o}")
        what = "created" if created else ("fixed " + ", ".join(changed) if changed else "already delegated")
        out(f"{name}: {what}: {_describe(folder)}")
    if status == 0:
        out(f"members of {group} now give each sandboxed run its own memory and process caps")
    return status


def check(group: str | None = None, out=print) -> int:
    """Print the state of each subtree; 0 when all are delegated (to ``group`` if given)."""
    gid = None if group is None else _group_id(group, out)
    if group is not None and gid is None:
        return 2
    folders = subtree_folders()
    status = 0
    for name in cgroup.CONTROLLERS:
        folder = folders.get(name)
        if folder is None:
            out(f"{name}: no cgroup v1 hierarchy: not delegable by this command")
            status = 1
        elif not folder.is_dir():
            out(f"{name}: not delegated ({folder} missing)")
            status = 1
        else:
            info = folder.stat()
            fine = info.st_uid == 0 and stat.S_IMODE(info.st_mode) == MODE and (gid is None or info.st_gid == gid)
            usable = os.access(folder, os.W_OK | os.X_OK)
            out(f"{name}: {'delegated' if fine else 'WRONG owner or mode'}: {_describe(folder)}; "
                f"this account ({os.getuid()}) {'can' if usable else 'cannot'} create run groups there")
            status = status or (0 if fine else 1)
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.sandbox.delegate",
        description="Delegate a cgroup subtree to the graders' unix group, so that sandboxed runs of a "
                    "grader that is not root get their own memory and process caps (run once as root).")
    parser.add_argument("--group", help="the graders' unix group (its members may create run groups)")
    parser.add_argument("--check", action="store_true", help="only print the state (no root needed)")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.group)
    if not args.group:
        parser.error("--group is required (or --check)")
    return delegate(args.group)


if __name__ == "__main__":
    sys.exit(main())
