"""The course site that ``noisylabels build`` writes under ``build/``: readable offline.

- ``build/index.html``: the lessons in order (linked to their executed pages), the
  homework descriptions, the results table of the last build;
- ``build/lessons/NN_topic.html``: each executed lesson with its figures (embedded);
- ``build/homework/hwNN_topic.html``: the *student* version of each homework (from
  ``assignments/``, never ``solutions/``), not executed;
- ``build/_static/mathjax/``: MathJax 2.7, copied from the ``jupyter-server-mathjax``
  package (the one Jupyter itself serves), so that math renders without the network.

Plain nbconvert (already a dependency) instead of Jupyter Book / MyST: nothing more to
install, no network, and a page costs well under a second. nbconvert's defaults load
MathJax and require.js from a CDN; here MathJax is the local copy and require.js (only
needed by interactive widgets, which a static page cannot run) is left out, as are the
widget outputs (progress bars) themselves.
"""

from __future__ import annotations

import html
import shutil
import threading
import time
from pathlib import Path

import nbformat

from .course import assignment_names, lesson_notebooks

__all__ = ["MATHJAX_CONFIG", "mathjax_source", "export_html", "write_site"]

MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def mathjax_source() -> Path:
    """The MathJax 2.7 folder shipped by ``jupyter-server-mathjax``."""
    try:
        import jupyter_server_mathjax
    except ImportError as err:  # a dependency of the course; say what to install
        raise RuntimeError("the course site needs jupyter-server-mathjax (pip install -e .)") from err
    folder = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (folder / "MathJax.js").exists():
        raise RuntimeError(f"no MathJax.js in {folder}")
    return folder


_MATHJAX_COPY = threading.Lock()  # noisylabels build exports pages from several threads


def _copy_mathjax(out: Path) -> Path:
    target = out / "_static" / "mathjax"
    with _MATHJAX_COPY:
        if not (target / "MathJax.js").exists():
            if target.exists():  # an interrupted copy
                shutil.rmtree(target)
            shutil.copytree(mathjax_source(), target)
    return target


def _static_copy(nb):
    """A copy of ``nb`` without widget outputs and widget state (a static page cannot run them)."""
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if WIDGET_VIEW not in o.get("data", {})]
    return nb


def export_html(nb, path: Path, site_root: Path, title: str | None = None) -> None:
    """Write ``nb`` as an HTML page at ``path`` that loads MathJax from ``site_root/_static``."""
    from nbconvert import HTMLExporter

    path = Path(path)
    site_root = Path(site_root)
    _copy_mathjax(site_root)
    rel = Path(*([".."] * (len(path.resolve().relative_to(site_root.resolve()).parts) - 1)))
    exporter = HTMLExporter(
        mathjax_url=(rel / "_static" / "mathjax" / "MathJax.js").as_posix() + f"?config={MATHJAX_CONFIG}",
        require_js_url="",
    )
    resources = {"metadata": {"name": title or path.stem}}
    body, _ = exporter.from_notebook_node(_static_copy(nb), resources=resources)
    body = body.replace('<script src=""></script>', "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _results_table(runs) -> str:
    if not runs:
        return "<p>No notebook ran in the last build.</p>"
    rows = []
    for r in runs:
        shown = r.result if r.status == "ok" else (r.error or "failed")
        rows.append(f"<tr><td>{html.escape(r.notebook)}</td><td class='{r.status}'>{r.status}</td>"
                    f"<td class='num'>{r.seconds:.1f}</td><td>{html.escape(shown)}</td></tr>")
    return ("<table><thead><tr><th>notebook</th><th>status</th><th>seconds</th><th>result</th></tr></thead>"
            "<tbody>" + "".join(rows) + "</tbody></table>")


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; } td.ok { color: #1a7f37; } td.failed { color: #cf222e; } .missing { color: #777; }
"""


def write_site(root, out, runs=()) -> Path:
    """Write ``out/index.html`` and ``out/homework/*.html`` for the course at ``root``.

    Lessons link to ``out/lessons/<name>.html`` when the build wrote it (see
    :func:`noisylabels.build.build`); a lesson not built yet is listed without a link.
    Returns the index path.
    """
    start = time.perf_counter()
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _copy_mathjax(out)

    lesson_items = []
    for source in lesson_notebooks(root):
        title = _title(nbformat.read(source, as_version=4), source.stem)
        page = out / "lessons" / f"{source.stem}.html"
        if page.exists():
            lesson_items.append(f"<li><a href='lessons/{page.name}'>{html.escape(title)}</a></li>")
        else:
            lesson_items.append(f"<li>{html.escape(title)} <span class='missing'>(not built yet: "
                                f"<code>noisylabels build {source.stem[:3]}</code>)</span></li>")

    homework_items = []
    for name in assignment_names(root):
        for source in sorted(Path(root, "assignments", name).glob("*.ipynb")):
            nb = nbformat.read(source, as_version=4)
            title = _title(nb, name)
            page = out / "homework" / f"{source.stem}.html"
            export_html(nb, page, out, title=title)
            homework_items.append(f"<li><a href='homework/{page.name}'>{html.escape(title)}</a></li>")

    index = out / "index.html"
    index.write_text(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Noisy Labels: course site</title>
<style>{_STYLE}</style></head>
<body>
<h1>Noisy Labels</h1>
<p>Training neural networks when the labels are wrong. Pages written by <code>noisylabels build</code>
on {time.strftime('%Y-%m-%d %H:%M')}; they need no network.</p>
<h2>Lessons</h2>
<ol class="lessons">{''.join(lesson_items)}</ol>
<h2>Homework</h2>
<p>The student versions (solutions are not part of this site).</p>
<ul class="homework">{''.join(homework_items)}</ul>
<h2>Results of the last build</h2>
{_results_table(list(runs))}
<p class="missing">Site written in {time.perf_counter() - start:.1f} s.</p>
</body></html>
""", encoding="utf-8")
    return index
