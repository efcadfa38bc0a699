"""SanitizeStudentContent leaves nothing active in a submitted notebook (quick, no kernel or browser).

The browser test (tests/test_browser_xss.py, slow) shows the same end to end through the
real nbgrader and Chromium; this one checks the preprocessor on its own, element by element.
"""

from __future__ import annotations

from html.parser import HTMLParser

import nbformat
import pytest
from nbconvert.filters import markdown2html

from autograder.nbgrader_plugins.check_data import MIME
from autograder.nbgrader_plugins.preprocessors import SanitizeStudentContent

ATTACK = "document.title='PWNED'"
HOSTILE_HTML = [
    f"<b>kept-bold</b><script>{ATTACK}</script>",
    f'<img src=x onerror="{ATTACK}">',
    f'<a href="javascript:{ATTACK}">click</a>',
    f'<a href="JaVaScRiPt&#58;{ATTACK}">click</a>',
    f'<svg onload="{ATTACK}"></svg>',
    f'<iframe src="javascript:{ATTACK}"></iframe>',
    f'<object data="x.swf"></object><embed src="x.swf">',
    f'<form action="/api/contents"><button formaction="javascript:{ATTACK}">b</button></form>',
    f'<div style="background:url(javascript:{ATTACK})">x</div>',
    f'<base href="https://evil.example/"><meta http-equiv="refresh" content="0;url=javascript:{ATTACK}">',
]
HOSTILE_SVG = (f"<svg xmlns='http://www.w3.org/2000/svg' onload=\"{ATTACK}\"><script>{ATTACK}</script>"
               "<rect width='4' height='2' fill='teal'/></svg>")


class _ActiveContent(HTMLParser):
    """Collects every element, attribute and URL that a browser would run."""

    ACTIVE_TAGS = {"script", "iframe", "object", "embed", "form", "base", "meta", "frame", "frameset", "applet"}

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag in self.ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").replace(" ", "").lower()
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if "javascript:" in value or "vbscript:" in value:
                self.found.append(f"{tag} {name}={value[:30]}")

    handle_startendtag = handle_starttag


def active_content(html: str) -> list:
    parser = _ActiveContent()
    parser.feed(html)
    return parser.found


def _output(data: dict):
    return nbformat.v4.new_output("display_data", data=data)


def _sanitized(cells, widgets=None):
    nb = nbformat.v4.new_notebook(cells=cells)
    if widgets is not None:
        nb.metadata["widgets"] = widgets
    nb, _ = SanitizeStudentContent().preprocess(nb, {})
    return nb


@pytest.mark.parametrize("html", HOSTILE_HTML)
def test_html_output_keeps_no_script_handler_or_script_url(html):
    assert active_content(html), "the payload itself must be active, or the test proves nothing"
    cell = nbformat.v4.new_code_cell("", outputs=[_output({"text/html": html, "text/plain": "x"})])
    out = _sanitized([cell]).cells[0].outputs[0]
    assert active_content(out.data["text/html"]) == []


def test_svg_and_markdown_outputs_are_sanitized_and_javascript_outputs_dropped():
    cell = nbformat.v4.new_code_cell("", outputs=[
        _output({"image/svg+xml": HOSTILE_SVG}),
        _output({"text/markdown": f'<img src=x onerror="{ATTACK}">'}),
        _output({"application/javascript": ATTACK}),
        _output({"application/vnd.jupyter.widget-view+json": {"model_id": "w1"}, "text/plain": "fallback"}),
    ])
    svg, markdown, javascript, widget = _sanitized([cell]).cells[0].outputs
    assert active_content(svg.data["image/svg+xml"]) == []
    assert active_content(markdown2html(markdown.data["text/markdown"])) == []
    assert "application/javascript" not in javascript.data
    assert "application/vnd.jupyter.widget-view+json" not in widget.data
    assert widget.data["text/plain"] == "fallback"


def test_markdown_answer_cells_lose_handlers_and_javascript_links_but_honest_markdown_stays():
    hostile = nbformat.v4.new_markdown_cell(
        f'My answer, **kept**.\n\n<img src=x onerror="{ATTACK}">\n\n[click](javascript:alert%281%29)')
    honest_source = "## Part A\n\nThe noise rate is $\\epsilon = 0.2$, see [the paper](https://arxiv.org/abs/1611.03530)."
    honest = nbformat.v4.new_markdown_cell(honest_source)
    nb = _sanitized([hostile, honest])
    rendered = markdown2html(nb.cells[0].source)
    assert active_content(rendered) == []
    assert "kept" in rendered
    assert nb.cells[1].source == honest_source


def test_grades_text_images_and_check_data_are_kept_as_they_are():
    data = {"text/plain": "Score: 3 of 4", "image/png": "iVBORw0KGgo=", MIME: {"values": [1, 2, 3]}}
    cell = nbformat.v4.new_code_cell("", outputs=[_output(dict(data))])
    assert dict(_sanitized([cell]).cells[0].outputs[0].data) == data


def test_widget_state_in_the_notebook_metadata_is_removed():
    state = {"application/vnd.jupyter.widget-state+json": {"state": {"w1": {"state": {
        "value": f'<img src=x onerror="{ATTACK}">'}}}}}
    nb = _sanitized([nbformat.v4.new_code_cell("")], widgets=state)
    assert "widgets" not in nb.metadata
