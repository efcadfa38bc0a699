"""Feedback pages readable offline: math drawn as MathML (no MathJax, nothing fetched),
student TeX made inert, wide figures inside the page (issue 23, item 6).

The exporter is nbgrader's feedback exporter as ``nbgrader_config.py`` configures it
(``GenerateFeedback.exporter_class``), with the template settings ``GenerateFeedback`` itself
applies; the real ``nbgrader generate_feedback`` runs in tests/test_nbgrader_homeworks.py,
which checks every homework's feedback for scripts and MathML too.
"""

from __future__ import annotations

import base64
import io
import os
import re

import nbformat
import pytest
from traitlets.config import Config

from autograder.nbgrader_plugins.feedback_page import OfflineFeedbackExporter, tex_to_mathml
from lab_server import browser  # noqa: F401 (a fixture)


def _feedback_exporter() -> OfflineFeedbackExporter:
    import nbgrader

    folder = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader")
    c = Config()
    c.HTMLExporter.template_name = "feedback"
    c.HTMLExporter.extra_template_basedirs = [os.path.join(folder, "templates")]
    c.HTMLExporter.extra_template_paths = [os.path.join(folder, "static", "node_modules", "bootstrap", "dist", "css")]
    return OfflineFeedbackExporter(config=c)


def _wide_png(width_px: int = 3000) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width_px / 100, 2), dpi=100)
    ax.plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _graded_notebook() -> nbformat.NotebookNode:
    markdown = ("The generalized cross-entropy is $\\mathcal{L}_q = \\frac{1 - p_y^q}{q}$, and\n\n"
                "$$\\sum_{i=1}^{n} w_i \\ell_i$$\n\n\\begin{align}a &= b\\end{align}\n\n"
                "A student's TeX: $\\href{javascript:alert(1)}{x}$ and $\\text{<img src=x onerror=alert(1)>}$.")
    figure = nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": _wide_png(), "text/plain": "<Figure>"})])
    grade = nbformat.v4.new_code_cell("assert True", metadata={"nbgrader": {
        "grade": True, "grade_id": "check", "points": 1, "score": 1, "solution": False, "locked": True}})
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown), figure, grade])


def _render() -> str:
    html, _ = _feedback_exporter().from_notebook_node(
        _graded_notebook(), resources={"nbgrader": {"notebook": "hw", "score": 1, "max_score": 1, "late_penalty": 0}})
    return html


def test_feedback_math_is_mathml_and_the_page_has_no_script():
    html = _render()
    assert html.count("<math") >= 5, html.count("<math")
    assert "<script" not in html.lower()
    assert not re.findall(r"""(?:src|href)=["']https?://""", html)  # nothing loaded from the network
    assert "max-width: 100%" in html


def test_student_tex_cannot_carry_links_or_markup_into_the_feedback():
    assert "href" not in tex_to_mathml(r"\href{javascript:alert(1)}{x}")
    made = tex_to_mathml(r"\text{<img src=x onerror=alert(1)>}")
    assert "<img" not in made and "onerror" not in made.replace("&lt;", "")
    unknown = tex_to_mathml(r"\notacommand{<b>x</b>}")
    assert "<b>" not in unknown  # escaped text whether or not latex2mathml converts it


def test_nbgrader_config_uses_the_offline_feedback_exporter():
    from nbgrader.apps import NbGraderAPI  # noqa: F401 (nbgrader importable)
    from traitlets.config.loader import PyFileConfigLoader

    from conftest import ROOT

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert config.GenerateFeedback.exporter_class is OfflineFeedbackExporter


@pytest.mark.slow
def test_feedback_page_offline_in_chromium_draws_math_and_keeps_figures_inside(browser, tmp_path):
    page_file = tmp_path / "feedback.html"
    page_file.write_text(_render())
    context = browser.new_context(viewport={"width": 1000, "height": 800}, offline=True)
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_file.as_uri())
    page.wait_for_timeout(500)
    boxes = page.evaluate("() => Array.from(document.querySelectorAll('math')).map(m => m.getBoundingClientRect().width)")
    widest_image = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll('img')).map(i => i.getBoundingClientRect().right))")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    page.screenshot(path=str(tmp_path / "feedback.png"), full_page=True)
    context.close()
    assert len(boxes) >= 5 and min(boxes[:3]) > 0, boxes  # the honest formulas, laid out by the browser itself
    assert widest_image <= 1000, widest_image
    assert overflow <= 0, overflow
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
