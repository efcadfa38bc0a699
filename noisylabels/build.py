"""``noisylabels build``: execute every lesson and solution notebook headless, in order.

Each notebook runs in a copy of its folder under ``build/`` (so nothing is written into
the repository), on the offline data. The executed notebook, an HTML page and the
figures it drew are written next to it; a notebook that fails is reported with its
error and the others still run. With the HTML pages comes a static course site
(``build/index.html``, see :mod:`noisylabels.site`), readable offline. The run ends with a table (notebook, status, seconds,
the result the notebook asserted), also saved as ``build/summary.md`` and
``build/summary.json``.

Notebooks run ``jobs`` at a time (default: one a core on a small machine, where each kernel
gets one thread; one at a time elsewhere). On the 2-core course machine the default-size
lessons took 1,284 s one after another with one thread a kernel.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from .course import all_notebooks, find_root
from .results import RESULT_MARKER

__all__ = ["NotebookRun", "execute_notebook", "build", "default_jobs", "format_table", "kernel_environment"]


@dataclass
class NotebookRun:
    """What happened to one notebook."""

    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    result: str = ""
    error: str = ""
    output: str = ""


def _collect_results(nb) -> list[str]:
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                for line in out.get("text", "").splitlines():
                    if line.startswith(RESULT_MARKER):
                        found.append(line[len(RESULT_MARKER):].strip())
    return found


def _save_figures(nb, folder: Path) -> int:
    count = 0
    for i, cell in enumerate(nb.cells):
        for k, out in enumerate(cell.get("outputs", [])):
            data = out.get("data", {})
            if "image/png" in data:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"cell{i:03d}_{k}.png").write_bytes(base64.b64decode(data["image/png"]))
                count += 1
    return count


def _save_html(nb, path: Path, site_root: Path) -> None:
    from .site import export_html

    export_html(nb, path, site_root)


def _error_summary(err: Exception) -> str:
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    return f"{ename}: {evalue}".strip()


def execute_notebook(source: Path, workdir: Path, timeout: int = 1800, size: str | None = None,
                     progress: bool = True) -> tuple[NotebookRun, object]:
    """Execute the notebook ``source`` inside ``workdir`` and return its run record and the
    executed notebook. Errors are recorded, never raised."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(source, as_version=4)
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=code_cells, desc=f"  {source.name}", unit="cell", leave=False)

    def on_cell_executed(**kwargs):
        if bar is not None and kwargs.get("cell", {}).get("cell_type") == "code":
            bar.update(1)

    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
        on_cell_executed=on_cell_executed,
    )
    start = time.perf_counter()
    status, error = "ok", ""
    try:
        with kernel_environment(size):
            client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError, RuntimeError) as err:
        status, error = "failed", _error_summary(err)
    except Exception as err:  # a kernel that cannot start, say
        status, error = "failed", _error_summary(err)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    results = _collect_results(nb)
    return NotebookRun(str(source), status, round(seconds, 1), "; ".join(results), error), nb


@contextmanager
def kernel_environment(size: str | None = None):
    """The environment the kernels started inside it inherit: the run size, inline figures and,
    on a small machine, one PyTorch/BLAS thread a kernel (as ``noisylabels lab`` does: lesson
    01's quick run took 352 s with PyTorch's two threads on a busy 2-core machine and 77 s with
    one). Variables already set are kept; everything is restored on exit. Nested uses are no-ops."""
    from .lab import THREAD_VARIABLES, default_threads

    wanted = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if size is not None:
        wanted["NOISYLABELS_SIZE"] = size
    threads = default_threads()
    if threads and not any(k in os.environ for k in THREAD_VARIABLES):
        wanted.update({name: str(threads) for name in THREAD_VARIABLES})
    saved = {name: os.environ.get(name) for name in wanted}
    for name, value in wanted.items():
        if name == "MPLBACKEND":
            os.environ.setdefault(name, value)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def default_jobs(cpu_count: int | None = None) -> int:
    """How many notebooks run at once: one a core where kernels get one thread (a small
    machine, see :func:`noisylabels.lab.default_threads`), else one at a time."""
    from .lab import default_threads

    cpu_count = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, cpu_count) if default_threads(cpu_count) == 1 else 1


def format_table(runs: list[NotebookRun]) -> str:
    """The summary table in Markdown."""
    lines = ["| notebook | status | seconds | result |", "| --- | --- | ---: | --- |"]
    for r in runs:
        shown = r.result if r.status == "ok" else (r.error or "failed")
        shown = shown.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.notebook} | {r.status} | {r.seconds:.1f} | {shown} |")
    return "\n".join(lines)


def build(root=None, out="build", names=None, size: str | None = None, timeout: int = 1800,
          html: bool = True, progress: bool = True, jobs: int | None = None) -> list[NotebookRun]:
    """Execute the course notebooks (all, or those whose path contains one of ``names``),
    ``jobs`` at a time (default :func:`default_jobs`); the table keeps the course order."""
    from tqdm.auto import tqdm

    root = Path(root or find_root())
    out = Path(out)
    if not out.is_absolute():
        out = root / out
    notebooks = all_notebooks(root)
    if names:
        notebooks = [nb for nb in notebooks if any(n in str(nb.relative_to(root)) for n in names)]
    jobs = max(1, min(jobs or default_jobs(), len(notebooks) or 1))
    bar = tqdm(total=len(notebooks), desc="notebooks", unit="nb", disable=not progress)

    def run_one(source: Path) -> NotebookRun:
        rel = source.relative_to(root)
        # run in a copy of the notebook's folder, so that nothing is written into the repository
        workdir = out / rel.parent
        if rel.parts[0] == "solutions":
            if workdir.exists():
                shutil.rmtree(workdir)
            shutil.copytree(source.parent, workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        workdir.mkdir(parents=True, exist_ok=True)
        # one cell bar at a time: with parallel jobs only the notebook bar shows
        run, nb = execute_notebook(source, workdir, timeout=timeout, progress=progress and jobs == 1)
        run.notebook = str(rel)
        target = workdir / source.name
        nbformat.write(nb, target)
        _save_figures(nb, workdir / f"{source.stem}_figures")
        if html:
            try:
                _save_html(nb, target.with_suffix(".html"), out)
            except Exception as err:  # HTML is a convenience; never lose the run over it
                run.output = f"HTML export failed: {err}"
        mark = "ok" if run.status == "ok" else f"FAILED: {run.error}"
        bar.write(f"{rel}: {mark} ({run.seconds:.0f} s)")
        bar.update(1)
        return run

    with kernel_environment(size):
        if jobs == 1:
            runs = [run_one(source) for source in notebooks]
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                runs = list(pool.map(run_one, notebooks))
    bar.close()
    table = format_table(runs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(table + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps([asdict(r) for r in runs], indent=1), encoding="utf-8")
    if html:
        from .site import write_site

        start = time.perf_counter()
        index = write_site(root, out, runs)
        if progress:
            print(f"course site: {index} ({time.perf_counter() - start:.1f} s)")
    return runs
