"""Notebook kernels that run a student's notebook inside the grading sandbox (nbgrader autograde).

``nbgrader autograde`` executes every submitted notebook in a kernel: the student's own
code, with any cells they added. Left alone, that kernel runs as the grader's user with
the grader's files in reach (the gradebook, the other students' folders, the instructor's
final data). :class:`SandboxedExecute` (configured in ``nbgrader_config.py`` in place of
nbgrader's ``Execute``) starts the kernel through bubblewrap instead, with the same
isolation as :mod:`autograder.sandbox`:

- an unprivileged uid of its own (when nbgrader runs as root; run by an ordinary account,
  the kernel keeps that account's uid inside a user namespace of its own: the sandbox's
  unprivileged mode), its own PID, IPC, UTS and network namespaces (the kernel talks to
  nbgrader over Unix sockets in a private folder: ZeroMQ's ``ipc`` transport, so it needs
  no network at all);
- a mount namespace with the system and the course environment read-only (the course
  library is importable: the homework notebooks need it), a private ``/tmp``, and a
  **copy** of the notebook's folder at the folder's own path: what the notebook writes
  there is thrown away with the copy, and nothing else of the course is visible;
- the same seccomp filter, fresh keyrings, private ``/dev/shm`` and per-run cgroup
  (memory and processes of the whole kernel) as every sandboxed run, and limits on
  memory, processes and file size per process: the command line and the start-up steps
  come from :class:`autograder.sandbox.IsolatedRun`, shared with homework 2's runs; when
  the kernel shuts down, its PID namespace, its cgroup and (root mode) every process of its
  uid are killed;
- a wall-clock limit for the **whole notebook** (``SandboxedExecute.notebook_timeout``,
  on top of nbgrader's per-cell ``timeout``): past it the kernel is killed, the cells
  not yet run are left without output (nbgrader scores them 0) and the first of them
  says why;
- the course library's **grading edition** of the assignment being graded
  (:mod:`autograder.nbgrader_plugins.grading_edition`): the reference implementations the homework asks
  students to write are replaced, on disk as the kernel sees it, by stubs that raise.

Points are still read from the executed notebook by nbgrader; what a grade cell's
output can claim is limited by grading outside the kernel
(:mod:`autograder.nbgrader_plugins.outside_kernel`).

Where isolation is impossible, autograde stops with the reason, unless
``NOISYLABELS_UNSAFE_SANDBOX=1`` is set (then kernels run as nbgrader's do by default,
and the log says so).
"""

from __future__ import annotations

import importlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer

from autograder import sandbox
from autograder.nbgrader_plugins import grading_edition

__all__ = ["UNSAFE_ENV", "KERNEL_LIMITS", "SandboxedKernelManager", "SandboxedExecute"]

UNSAFE_ENV = "NOISYLABELS_UNSAFE_SANDBOX"
#: A notebook kernel trains small networks: more room than a homework 2 run.
KERNEL_LIMITS = sandbox.Limits(memory=12 * sandbox.GB, processes=512, file_size=512 * sandbox.MB,
                               tmp_size=1 * sandbox.GB, shm_size=1 * sandbox.GB)
#: Environment variables a kernel inherits from nbgrader's (everything else is dropped).
PASSED_ENV = ("LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NOISYLABELS_SIZE",
              "NOISYLABELS_HW02_TIME_LIMIT", "PYTHONHASHSEED")


def _default_thread_env(env: dict) -> dict:
    """``noisylabels lab``'s thread setting (one a kernel on a small machine) unless ``env`` sets one."""
    from noisylabels.lab import THREAD_VARIABLES, default_threads

    threads = default_threads()
    if not threads or any(name in env for name in THREAD_VARIABLES):
        return {}
    return {name: str(threads) for name in THREAD_VARIABLES}


def _course_packages() -> list:
    """Folders of the course's own packages (an editable install points outside site-packages)."""
    import noisylabels

    import autograder

    return [str(Path(m.__file__).resolve().parent) for m in (noisylabels, autograder)]


class SandboxedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel runs isolated (see the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._private = None   # the grader's folder for this kernel: sockets, connection file
        self._scratch = None   # the copy of the notebook's folder
        self._run = None       # the kernel's uid and cgroup (sandbox.IsolatedRun)
        #: the assignment being autograded: its grading edition of the library is mounted
        self.assignment_id = None

    async def _async_pre_start_kernel(self, **kw):
        self._end_run()  # a restart: the last kernel's run ends here
        self._private = Path(tempfile.mkdtemp(prefix="nlk-", dir="/run" if os.access("/run", os.W_OK) else None))
        self._run = sandbox.IsolatedRun(KERNEL_LIMITS)
        uid = self._run.uid
        sockets = self._private / "s"
        sockets.mkdir()
        if self._run.privileged:  # the kernel's own uid must reach its sockets
            os.chown(sockets, uid, uid)
            os.chmod(self._private, 0o755)  # unprivileged mode: the kernel is this account, 0700 is enough
        self.transport = "ipc"
        self.ip = str(sockets / "k")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        uid = self._run.uid
        cwd = Path(kw.pop("cwd", None) or os.getcwd()).resolve()
        env = {k: v for k, v in (kw.pop("env", None) or os.environ).items() if k in PASSED_ENV}
        env.update(HOME="/tmp", TMPDIR="/tmp", MPLCONFIGDIR="/tmp/matplotlib",
                   IPYTHONDIR="/tmp/ipython", JUPYTER_RUNTIME_DIR="/tmp/jupyter",
                   PATH=os.pathsep.join([os.path.dirname(os.path.abspath(sys.executable)), "/usr/bin", "/bin"]))
        env.setdefault("LANG", "C.UTF-8")
        # as in `noisylabels build` and `lab`: one PyTorch/BLAS thread a kernel on a small machine, unless
        # set (hw01 graded in 385 s with PyTorch's default 2 threads on a busy 2-core machine; 1 thread: issue 23)
        env.update(_default_thread_env(env))
        # the notebook's folder, copied: the kernel may write there, the original stays as it is
        self._scratch = self._private / "notebook"
        shutil.copytree(cwd, self._scratch, symlinks=False)
        if self._run.privileged:  # unprivileged mode: the copy is this account's already
            for root, dirs, files in os.walk(self._scratch):
                for name in dirs + files:
                    os.lchown(os.path.join(root, name), uid, uid)
            os.chown(self._scratch, uid, uid)
        connection = self._private / "s" / "connection.json"
        shutil.copyfile(self.connection_file, connection)
        os.chmod(connection, 0o444)
        cmd = [str(connection) if arg == self.connection_file else arg for arg in kernel_cmd]
        runtime = sandbox.Runtime(packages=None, extra=tuple(_course_packages()))
        # after the runtime: the withheld reference implementations, bound over the originals
        mounts = grading_edition.edition_mounts(self.assignment_id, self._private / "edition")
        mounts += ["--bind", str(self._scratch), str(cwd),
                   "--bind", str(self._private / "s"), str(self._private / "s")]
        self.log.debug("starting the kernel in the sandbox as uid %s (%s mode)", uid,
                       "root" if self._run.privileged else "unprivileged")
        kw["stdout"] = subprocess.DEVNULL  # the kernel's start-up banner; its stderr stays for errors
        with self._run.launch(cmd, runtime=runtime, workdir=str(cwd), env=env, mount_points=[cwd, self._private / "s"],
                              mounts=mounts) as (argv, popen_kwargs):
            return await super()._async_launch_kernel(argv, cwd="/", env={"PATH": "/usr/bin:/bin"},
                                                      **popen_kwargs, **kw)

    async def _async_interrupt_kernel(self) -> None:
        """Interrupt by message: a signal to bubblewrap would not reach the kernel in its session."""
        if self.kernel_spec is not None:
            self.kernel_spec.interrupt_mode = "message"
        await super()._async_interrupt_kernel()

    interrupt_kernel = _async_interrupt_kernel  # AsyncKernelManager binds the name at class creation

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self._end_run()

    def _end_run(self) -> None:
        if self._run is not None:
            self._run.close()  # kills what the kernel left (its namespace, cgroup, root mode: uid), frees them
            self._run = None
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None


class SandboxedExecute(Execute):
    """nbgrader's ``Execute`` with every kernel in the sandbox (for ``Autograde`` only),
    and a wall-clock limit for the whole notebook (:attr:`notebook_timeout`)."""

    notebook_timeout = Integer(
        30 * 60, allow_none=True,
        help="Seconds one notebook may run in all (kernel start included; 0 or None: no limit). Past it "
             "the kernel is killed and every cell not yet run gets an error output saying why (nbgrader "
             "scores such cells 0). The per-cell limit (``timeout``) still applies within it.",
    ).tag(config=True)

    def __init__(self, *args, **kwargs):
        problem = sandbox.sandbox_problem()
        if problem is None:
            kwargs["kernel_manager_class"] = SandboxedKernelManager
        elif os.environ.get(UNSAFE_ENV) != "1":
            raise sandbox.SandboxUnavailable(
                f"cannot run the students' notebooks isolated: {problem}. Fix that, or set "
                f"{UNSAFE_ENV}=1 to autograde with unisolated kernels (they can read and change "
                f"what the grading user can)")
        super().__init__(*args, **kwargs)
        self._unsafe_problem = problem
        self._assignment_id = None
        if problem is not None:
            self.log.warning("%s=1: autograding with UNISOLATED kernels (%s)", UNSAFE_ENV, problem)
        else:
            for weakness in sandbox.weaker_isolation():
                self.log.warning("kernels run isolated, but %s", weakness)

    def _import_graders(self) -> None:
        """The grader modules (``GradeOutsideKernel.grader_modules``) declare what each assignment withholds."""
        from autograder.nbgrader_plugins.outside_kernel import GradeOutsideKernel

        for name in GradeOutsideKernel(config=self.config).grader_modules:
            importlib.import_module(name)

    def preprocess(self, nb, resources=None, km=None):
        self._assignment_id = ((resources or {}).get("nbgrader") or {}).get("assignment")
        self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout else None
        self._out_of_time = False
        # no cell may wait past the notebook's deadline (nbclient: timeout_func overrides timeout)
        self.timeout_func = self._cell_timeout if self._deadline is not None else None
        if self._assignment_id:
            self._import_graders()
            entry = grading_edition.withheld(self._assignment_id)
            if entry is not None:  # a withheld name that is gone stops here, before any kernel starts
                for module, names in entry.names.items():
                    grading_edition.edition_source(grading_edition.module_file(module).read_text(encoding="utf-8"),
                                                   module, names, entry.homework)
            if entry is not None and self._unsafe_problem is not None:
                self.log.warning("%s: the library's reference implementations are NOT withheld without "
                                 "the sandbox (%s)", self._assignment_id, entry.names)
        return super().preprocess(nb, resources, km)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if isinstance(km, SandboxedKernelManager):
            km.assignment_id = self._assignment_id
        return km

    def _cell_timeout(self, cell) -> int:
        remaining = max(1, math.ceil(self._deadline - time.monotonic()))
        return remaining if not self.timeout or self.timeout < 0 else min(self.timeout, remaining)

    def _limit_text(self) -> str:
        minutes, seconds = divmod(self.notebook_timeout, 60)
        return f"{minutes}-minute" if not seconds else f"{self.notebook_timeout}-second"

    def _out_of_time_error(self, what: str) -> NotebookNode:
        reason = f"the notebook ran past its {self._limit_text()} limit: {what}"
        return NotebookNode(output_type="error", ename="NotebookTimeLimit", evalue=reason,
                            traceback=[f"NotebookTimeLimit: {reason}"])

    def _stop_kernel(self) -> None:
        self._out_of_time = True
        self.log.warning("%s: the notebook ran past its %s limit; its kernel is killed and the cells "
                         "left are not run", self._assignment_id, self._limit_text())
        if self.km is not None:
            run_sync(self.km.shutdown_kernel)(now=True)

    def preprocess_cell(self, cell, resources, index):
        """Run the cell, unless the notebook is past its limit (then: an error output saying so)."""
        if self._deadline is not None and not self._out_of_time and time.monotonic() >= self._deadline:
            self._stop_kernel()
        if self._out_of_time:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [self._out_of_time_error("this cell was not run")]
            return cell, self.resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
            stopped = any(o.get("ename") == "CellTimeoutError" for o in cell.get("outputs", []))
        except (CellTimeoutError, DeadKernelError):
            if self._deadline is None or time.monotonic() < self._deadline:
                raise
            stopped = True  # a cell that ignores interrupts: nbclient gave up waiting for it
        if self._deadline is not None and time.monotonic() >= self._deadline:
            if stopped:
                cell.outputs.append(self._out_of_time_error("this cell was stopped"))
            self._stop_kernel()
        return cell, self.resources
