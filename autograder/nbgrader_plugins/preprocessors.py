"""nbgrader preprocessors of the course (configured in ``nbgrader_config.py``).

- :class:`OverwriteCellsExpectingHiddenTests` (autograde): nbgrader's ``OverwriteCells``
  without the false alarm. The gradebook holds each locked test cell *with* its hidden
  tests, the student's copy holds it *without* them, so plain ``OverwriteCells`` warns
  ``Attribute 'checksum' for cell ... has changed!`` for every such cell of every honest
  submission. This one restores the hidden tests silently when the student's cell is
  exactly the released version, and still warns (and restores the cell) when a locked
  cell was edited.
- :class:`HideHiddenTestsInFeedback` (generate_feedback): removes what would show hidden
  test code in the feedback (see its docstring); it also clears the hidden regions from
  the cell sources, as nbgrader's ``ClearHiddenTests`` does.
- :class:`SanitizeStudentContent` (autograde, and every HTML page nbgrader renders: the
  formgrader's submission view and the feedback): nothing a student's notebook holds can
  run script in the browser of whoever opens it (see its docstring).
"""

from __future__ import annotations

import copy
import re

from bleach.css_sanitizer import CSSSanitizer
from bleach.sanitizer import Cleaner
from nbconvert.filters.markdown import markdown2html
from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells
from nbgrader.api import MissingEntry
from traitlets import Bool, List, Set, Unicode

from autograder.nbgrader_plugins.check_data import MIME

__all__ = ["OverwriteCellsExpectingHiddenTests", "HideHiddenTestsInFeedback", "SanitizeStudentContent",
           "hidden_lines"]

_BEGIN, _END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _released_source(source: str) -> str:
    """``source`` as ``generate_assignment`` releases it: hidden test regions removed."""
    cell = {"source": source}
    from nbformat import NotebookNode

    cell = NotebookNode(cell)
    ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


class OverwriteCellsExpectingHiddenTests(OverwriteCells):
    """``OverwriteCells`` that does not report a released cell's missing hidden tests as a change."""

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except MissingEntry:
                source_cell = None
            if source_cell is not None and source_cell.locked and _BEGIN in source_cell.source \
                    and cell.source == _released_source(source_cell.source):
                cell.source = source_cell.source  # the released cell, untouched: put the hidden tests back
        return super().preprocess_cell(cell, resources, cell_index)


def hidden_lines(source: str) -> list[str]:
    """The stripped, non-empty lines inside the hidden test regions of ``source``."""
    lines, inside = [], False
    for line in source.split("\n"):
        if _BEGIN in line:
            inside = True
        elif _END in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


class HideHiddenTestsInFeedback(NbGraderPreprocessor):
    """Keep hidden tests hidden in ``nbgrader generate_feedback``.

    For every cell that held hidden tests: each error output keeps only
    ``ExceptionName: message`` (the instructor's assertion message), without the
    traceback and the source lines it quotes; the check data the hidden tests emitted
    (:data:`autograder.nbgrader_plugins.check_data.MIME`) is removed; the hidden regions are cleared from
    the source. In every other cell, traceback lines that quote a hidden line (a function
    defined in hidden tests and called later, say) are removed. Run it instead of (or
    before) nbgrader's ``ClearHiddenTests``.
    """

    def preprocess(self, nb, resources):
        self._hidden = set()
        for cell in nb.cells:
            if cell.cell_type == "code":
                self._hidden.update(hidden_lines(cell.source))
        return super().preprocess(nb, resources)

    def _quotes_hidden(self, line: str) -> bool:
        text = _ANSI.sub("", line)
        for part in text.split("\n"):
            body = re.sub(r"^\s*(-*>\s*)?\d+\s", "", part).strip()
            if body and (body in self._hidden or any(h in body for h in self._hidden if len(h) >= 12)):
                return True
        return False

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            if _BEGIN in cell.get("source", ""):
                cell.source = _released_source(cell.source)
            return cell, resources
        had_hidden = _BEGIN in cell.source
        outputs = []
        for out in cell.get("outputs", []):
            out = copy.deepcopy(out)
            if out.get("output_type") == "error":
                if had_hidden:
                    value = out.get("evalue", "")
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {value}" if value else out.get("ename", "Error")]
                else:
                    out["traceback"] = [line for line in out.get("traceback", []) if not self._quotes_hidden(line)]
            if had_hidden and MIME in out.get("data", {}):
                continue
            outputs.append(out)
        cell.outputs = outputs
        if had_hidden:
            cell.source = _released_source(cell.source)
        return cell, resources


# ---------------------------------------------------------------- student content, made inert

#: HTML a student's markdown and HTML outputs keep: text structure, tables, images, links.
#: No script, style, form, frame, object or embed element; no event handler or name
#: attribute, and ids on headings only (an id could stand in for a formgrader element).
HTML_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details", "div",
    "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "kbd", "li", "ol", "p", "pre", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
})
#: SVG drawing elements (matplotlib's SVG output uses these); no script, foreignObject,
#: animation or external reference.
SVG_TAGS = frozenset({
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan", "defs",
    "clippath", "clipPath", "use", "desc", "lineargradient", "linearGradient", "radialgradient",
    "radialGradient", "stop", "marker", "symbol", "pattern", "mask",
})
SVG_ATTRIBUTES = frozenset({
    "class", "clip-path", "clip-rule", "clipPathUnits", "cx", "cy", "d", "dx", "dy", "fill", "fill-opacity",
    "fill-rule", "font-family", "font-size", "font-style", "font-weight", "gradientTransform", "gradientUnits",
    "height", "marker-end", "marker-mid", "marker-start", "markerHeight", "markerWidth", "mask", "offset",
    "opacity", "orient", "patternUnits", "points", "preserveAspectRatio", "r", "refX", "refY", "rx", "ry",
    "stop-color", "stop-opacity", "stroke", "stroke-dasharray", "stroke-dashoffset", "stroke-linecap",
    "stroke-linejoin", "stroke-miterlimit", "stroke-opacity", "stroke-width", "style", "text-anchor",
    "transform", "version", "viewBox", "width", "x", "x1", "x2", "xmlns", "y", "y1", "y2",
})
#: CSS properties allowed in ``style`` attributes: looks only (no position, no url()).
CSS_PROPERTIES = frozenset({
    "background-color", "border", "border-collapse", "border-color", "border-style", "border-width", "color",
    "font-family", "font-size", "font-style", "font-weight", "height", "margin", "max-width", "padding",
    "text-align", "text-decoration", "vertical-align", "white-space", "width",
    "fill", "fill-opacity", "stroke", "stroke-width", "stroke-opacity", "stroke-linecap", "stroke-linejoin",
    "opacity",
})
#: Where links may point and images come from: nothing on the grading server (a relative or
#: absolute path there, even ``../../api/...``, would be a request with the instructor's cookie).
_LINK_PREFIXES = ("http://", "https://", "mailto:", "#")
_IMAGE_PREFIXES = ("data:image/png;", "data:image/jpeg;", "data:image/gif;", "attachment:", "http://", "https://")
_ATTRIBUTES = {
    "*": {"class", "title", "align", "style"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
    **{f"h{n}": {"id"} for n in range(1, 7)},  # markdown2html's heading anchors
}
_STYLE_BLOCK = re.compile(r"<style\b.*?</style\s*>", re.IGNORECASE | re.DOTALL)
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")
_PRE_BLOCK = re.compile(r"<pre\b.*?</pre>", re.IGNORECASE | re.DOTALL)


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if tag in SVG_TAGS:
        if name in ("href", "xlink:href"):
            return value.startswith("#")  # a reference inside the same drawing
        return name in SVG_ATTRIBUTES
    if name not in _ATTRIBUTES["*"] and name not in _ATTRIBUTES.get(tag, ()):
        return False
    if name == "href":
        return value.strip().lower().startswith(_LINK_PREFIXES)
    if name == "src":
        return value.strip().lower().startswith(_IMAGE_PREFIXES)
    return True


class SanitizeStudentContent(SanitizeHTML):
    """Make a submitted notebook inert for whoever opens it (formgrader, feedback, JupyterLab).

    nbconvert's :class:`~nbconvert.preprocessors.SanitizeHTML` (bleach with an allow-list,
    the path nbconvert's own ``HTMLExporter.sanitize_html`` and nbviewer take), with the
    course's allow-lists and three additions nbconvert lacks:

    - **outputs**: only :attr:`safe_output_keys` stay as they are (text, PNG/JPEG/GIF, LaTeX,
      the course's check data :data:`~autograder.nbgrader_plugins.check_data.MIME`);
      ``text/html``, ``text/markdown`` and ``image/svg+xml`` are sanitized; everything else
      (``application/javascript``, widget views, any other active type) is dropped, and an
      output left empty says so in ``text/plain``;
    - **markdown cells**: the source is rendered with nbconvert's ``markdown2html`` (the
      renderer of formgrader and feedback) and sanitized; if sanitizing changed the rendered
      HTML (a ``<script>``, an ``onerror=``, a ``javascript:`` link: things bleach cannot see
      in markdown source), the cell's source becomes the sanitized HTML; honest markdown
      stays markdown. Non-image attachments are dropped;
    - **metadata**: the notebook's ``widgets`` state (rendered by the widget manager as
      HTML) is removed.

    Disallowed tags are escaped, not removed (``strip`` is False), so that the grader sees
    what was tried. Why bleach and not nh3: it is already installed with nbconvert, and
    this class keeps nbconvert's configurable ``SanitizeHTML`` traits.
    """

    enabled = Bool(True).tag(config=True)
    tags = List(Unicode(), sorted(HTML_TAGS), help="HTML elements kept (SVG's are fixed)").tag(config=True)
    safe_output_keys = Set(
        {"metadata", "text/plain", "text/latex", "image/png", "image/jpeg", "image/gif", MIME},
        help="Output MIME types kept as they are (the rest is sanitized or dropped)",
    ).tag(config=True)
    sanitized_output_types = Set(
        {"text/html", "text/markdown", "image/svg+xml"}, help="Output MIME types kept after sanitizing",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)
        tags = set(self.tags) | set(SVG_TAGS)
        self._cleaner = Cleaner(tags=tags, attributes=_allowed_attribute,
                                protocols={"http", "https", "mailto", "data", "attachment"}, strip=self.strip,
                                strip_comments=True, css_sanitizer=CSSSanitizer(allowed_css_properties=CSS_PROPERTIES))
        return super().preprocess(nb, resources)

    def sanitize_html_tags(self, html_str):
        """``html_str`` with only allowed elements, attributes, URLs and styles left."""
        return self._cleaner.clean(_STYLE_BLOCK.sub("", html_str))

    def sanitize_markdown(self, source: str) -> str:
        """``source`` itself when its rendering is already clean, else the sanitized rendering."""
        rendered = markdown2html(source)
        clean = self.sanitize_html_tags(rendered)
        if clean == rendered:
            return source
        # as markdown, an HTML block ends at a blank line: keep it one block
        clean = _PRE_BLOCK.sub(lambda m: m.group(0).replace("\n", "&#10;"), clean)
        return "<div>\n" + _BLANK_LINES.sub("\n", clean).strip() + "\n</div>"

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "markdown":
            cell.source = self.sanitize_markdown(cell.source)
            for name, bundle in list(cell.get("attachments", {}).items()):
                kept = {k: v for k, v in bundle.items() if k in ("image/png", "image/jpeg", "image/gif")}
                if kept:
                    cell.attachments[name] = kept
                else:
                    del cell.attachments[name]
        elif cell.cell_type == "raw":
            cell.source = self.sanitize_html_tags(cell.source)
        elif cell.cell_type == "code":
            cell.outputs = self.sanitize_code_outputs(cell.outputs)
        return cell, resources

    def sanitize_code_outputs(self, outputs):
        for output in outputs:
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue  # streams and errors are shown as escaped text
            data, meta = output.get("data", {}), output.get("metadata", {})
            dropped = []
            for key in list(data):
                if key in self.safe_output_keys:
                    continue
                if key in self.sanitized_output_types:
                    value = "".join(data[key]) if isinstance(data[key], list) else str(data[key])
                    data[key] = self.sanitize_markdown(value) if key == "text/markdown" else self.sanitize_html_tags(value)
                else:
                    dropped.append(key)
                    del data[key]
                    meta.pop(key, None)
            for key in list(meta):
                if isinstance(meta[key], dict):
                    meta[key].pop("isolated", None)
            if dropped and not data:
                data["text/plain"] = f"[output of type {', '.join(sorted(dropped))} removed: not shown while grading]"
        return outputs
