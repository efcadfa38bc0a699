"""Feedback pages that need no network and no script: math as MathML, figures that fit.

nbgrader renders feedback with nbconvert's ``HTMLExporter``, whose page loads MathJax
from a CDN: offline (a class server without internet, a student reading the file on a
train) the math stays raw TeX. :class:`OfflineFeedbackExporter` (set as
``GenerateFeedback.exporter_class`` in ``nbgrader_config.py``) instead:

- renders the math of markdown (cells and ``text/markdown`` outputs) to **MathML** while
  the page is made (``latex2mathml``), which every current browser draws without any
  script; TeX it cannot convert stays visible as code. The MathML is passed through an
  allow-list (MathML elements and presentation attributes only: no ``href``, no event
  handler), since the TeX may be a student's;
- leaves **no MathJax script** in the page (nothing is fetched from anywhere);
- makes wide figures and tables **fit the page** (``max-width: 100%``).

Formgrader renders submissions with its own exporter in the Jupyter server, where the
course's ``jupyter/share`` MathJax macro (served locally, STIX-Web fonts) applies.
"""

from __future__ import annotations

import html
import re

import bleach
from jinja2 import pass_context
from latex2mathml.converter import convert
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

__all__ = ["MATHML_TAGS", "tex_to_mathml", "MathMLRenderer", "OfflineFeedbackExporter"]

#: MathML presentation elements kept in converted math.
MATHML_TAGS = frozenset({
    "math", "mrow", "mi", "mo", "mn", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "mfrac", "msqrt",
    "mroot", "munder", "mover", "munderover", "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom",
    "menclose", "merror", "mfenced", "semantics", "annotation",
})
#: Presentation attributes kept (no href, no event handler, no style).
MATHML_ATTRIBUTES = frozenset({
    "xmlns", "display", "mathvariant", "stretchy", "fence", "separator", "separators", "open", "close",
    "lspace", "rspace", "displaystyle", "scriptlevel", "columnalign", "rowalign", "rowspacing", "columnspacing",
    "columnlines", "rowlines", "frame", "width", "height", "depth", "accent", "accentunder", "movablelimits",
    "minsize", "maxsize", "linethickness", "notation", "form", "symmetric", "largeop", "voffset", "encoding",
})

_MATHJAX_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)
_ANY_MATHJAX_SCRIPT = re.compile(r"<script\b[^>]*>(?:(?!</script>).)*?(?:mathjax|init_mathjax)(?:(?!</script>).)*?</script>"
                                 r"|<script\b[^>]*\bsrc=[\"'][^\"']*mathjax[^\"']*[\"'][^>]*>\s*</script>",
                                 re.DOTALL | re.IGNORECASE)
_FIT_CSS = """<style type="text/css">
/* Noisy Labels feedback: figures and tables fit the page; MathML math at text size */
div.output_area img, div.output_area svg, div.text_cell_render img { max-width: 100%; height: auto; }
div.output_html, div.output_area table { max-width: 100%; overflow-x: auto; display: block; }
math[display="block"] { margin: 0.6em 0; overflow-x: auto; overflow-y: hidden; }
code.tex-unconverted { white-space: pre-wrap; }
</style>
"""


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """``tex`` as sanitized MathML, or as escaped code when it cannot be converted."""
    try:
        mathml = convert(tex, display="block" if display else "inline")
    except Exception:  # latex2mathml raises plain exceptions on TeX it does not know
        delimiter = "$$" if display else "$"
        return f'<code class="tex-unconverted">{html.escape(delimiter + tex + delimiter, quote=False)}</code>'
    return bleach.clean(mathml, tags=MATHML_TAGS, attributes=lambda tag, name, value: name in MATHML_ATTRIBUTES,
                        strip=True, strip_comments=True)


class MathMLRenderer(IPythonRenderer):
    """nbconvert's markdown renderer with math drawn as MathML instead of left for MathJax."""

    def block_math(self, body: str) -> str:
        return tex_to_mathml(body, display=True)

    def inline_math(self, body: str) -> str:
        return tex_to_mathml(body, display=False)

    def latex_environment(self, name: str, body: str) -> str:
        return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)


class OfflineFeedbackExporter(HTMLExporter):
    """nbgrader's feedback page, readable offline: MathML math, no MathJax, figures that fit."""

    @pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = MathMLRenderer(
            escape=False,
            attachments=cell.get("attachments", {}),
            embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links,
            **self.lexer_options,
        )
        return MarkdownWithMath(renderer=renderer).render(source)

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(nb, resources, **kw)
        output = _ANY_MATHJAX_SCRIPT.sub("", _MATHJAX_BLOCK.sub("", output))
        output = output.replace("</head>", _FIT_CSS + "</head>", 1)
        return output, resources
