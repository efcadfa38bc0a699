"""Homework 2's author block: is it at the top of ``hw02.py``, in the format, filled in?

The homework's rules ask every ``hw02.py`` to start with::

    # Author: your name
    # Netid: your netid
    # Aid: If in doubt, list anything your referenced. ... (the template's long text)

:func:`check_author_block` reads a submission's source and says ``ok``, ``missing`` or
``incomplete`` with a reason. It only reports: it never changes a score.

What is checked
    * **At the top**: only a shebang, an encoding line and blank lines may come before
      the block. A block further down is reported as ``missing`` (the reason gives its
      line); its fields are still read.
    * **The format**: ``# Author:``, ``# Netid:`` and ``# Aid:`` lines (field names in any
      case, spaces around ``#`` and ``:`` free, the three in any order, blank lines between
      them allowed). The Aid may continue on the ``#`` lines right below it.
    * **Filled in**: no field empty or still the template's text ("your name", "your
      netid", the stub's "If in doubt, list anything your referenced..."). Template
      sentences left in the Aid next to the student's own text are dropped; the rest
      counts. "None" is a valid Aid.
    * **A link for a chatbot**: when the Aid names a chatbot (ChatGPT, GPT, OpenAI, Gemini,
      Bard, Claude, Copilot, LLM, DeepSeek, Llama, Mistral, Perplexity, AI, ...) and does
      not negate it ("no ChatGPT", "did not use an LLM"), it must hold at least one link
      (``https://...`` or a bare ``chatgpt.com/share/...``). One link is enough for the
      whole Aid; the link is not opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["AuthorBlock", "check_author_block", "STATUSES", "TEMPLATE_AID"]

#: The possible values of :attr:`AuthorBlock.status`.
STATUSES = ("ok", "missing", "incomplete")

#: The Aid placeholder of the homework's template (and of ``evil_twins.STUDENT_STUB``).
TEMPLATE_AID = (
    "If in doubt, list anything your referenced. A stack overflow post, chatgpt, gemini, "
    "your friend Bob, etc. If referring to an LLM, you must included a link to a particular "
    "session. Just saying \"I asked chatgpt\" isn't a get out of trouble free statement. If "
    "two submissions are nearly identical and nothing is listed, I will have to assume that "
    "there was copying with an attempt at obfuscation."
)

FIELDS = ("author", "netid", "aid")
_LABELS = {"author": "Author", "netid": "Netid", "aid": "Aid"}

_FIELD_LINE = re.compile(r"^\s*#\s*(author|net\s*-?\s*id|aid)\s*:(.*)$", re.IGNORECASE)
_COMMENT_LINE = re.compile(r"^\s*#(.*)$")
_ENCODING_LINE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")

# Whole-field placeholders (compared after lower-casing and dropping all but letters).
_PLACEHOLDERS = {
    "author": {"yourname", "name", "author", "firstlast", "firstnamelastname"},
    "netid": {"yournetid", "netid", "yournetidhere"},
}
_NOTHING = {"", "todo", "tbd", "fixme", "xxx"}

_CHATBOT = re.compile(
    r"\b(chat\s*-?\s*gpt|gpt(?:-?[0-9][0-9a-z.]*)?|openai|gemini|bard|claude|anthropic|copilot|"
    r"llms?|large language models?|deepseek|llama|mistral|perplexity|grok|chatbots?|"
    r"ai|a\.i\.)(?=\W|$)",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(no|not|never|without|didn'?t|don'?t|nor|none)\b", re.IGNORECASE)
# A negation reaches to the end of its clause: "did not use ChatGPT, Gemini or Claude".
_CLAUSE_END = re.compile(r"[.;!?]|\b(?:but|except|however|although)\b", re.IGNORECASE)
_LINK = re.compile(r"https?://\S+|\b(?:[a-z0-9-]+\.)+[a-z]{2,}/\S+", re.IGNORECASE)


@dataclass
class AuthorBlock:
    """The verdict on one ``hw02.py``.

    ``status`` is one of :data:`STATUSES`; ``reason`` says why when it is not ``ok``
    (several problems joined by ``"; "``). ``author``, ``netid`` and ``aid`` are what the
    student filled in (Aid lines joined by spaces, template sentences dropped), or None
    when the field is absent, empty or still the placeholder.
    """

    status: str
    reason: str
    author: str | None = None
    netid: str | None = None
    aid: str | None = None


def _template_sentence_patterns() -> list:
    sentences = re.findall(r"[^.]+\.", TEMPLATE_AID)
    return [re.compile(r"\s+".join(re.escape(w) for w in s.split()), re.IGNORECASE)
            for s in sentences]


_TEMPLATE_SENTENCES = _template_sentence_patterns()


def _strip_template(aid: str) -> str:
    """``aid`` without the template's sentences."""
    for pattern in _TEMPLATE_SENTENCES:
        aid = pattern.sub(" ", aid)
    return " ".join(aid.split())


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _mentions_chatbot(aid: str) -> str | None:
    """The first chatbot named (and not negated) in ``aid``, or None."""
    text = _LINK.sub(" ", aid)  # a link's own words (chatgpt.com/share/...) are not a mention
    for match in _CHATBOT.finditer(text):
        before = _CLAUSE_END.split(text[: match.start()])[-1]
        if not _NEGATION.search(before):
            return match.group(0)
    return None


def _skip_preamble(lines: list) -> int:
    """Index of the first line after the shebang, encoding line and blank lines."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif i == 0 and line.startswith("#!"):
            i += 1
        elif i <= 1 and _ENCODING_LINE.match(line):
            i += 1
        else:
            break
    return i


def _field_name(raw: str) -> str:
    return "netid" if raw.lower().startswith("net") else raw.lower()


def _read_fields(lines: list, start: int) -> dict:
    """The block's fields, read from the run of comment and blank lines from ``start``."""
    fields: dict = {}
    i = start
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        match = _FIELD_LINE.match(line)
        if match is None:
            if not _COMMENT_LINE.match(line):
                break  # code or a docstring: the block is over
            i += 1
            continue
        name, value = _field_name(match.group(1)), match.group(2).strip()
        i += 1
        if name == "aid":  # the Aid goes on over the comment lines right below it
            parts = [value]
            while i < len(lines) and _COMMENT_LINE.match(lines[i]) and not _FIELD_LINE.match(lines[i]):
                parts.append(_COMMENT_LINE.match(lines[i]).group(1).strip())
                i += 1
            value = " ".join(p for p in parts if p)
        fields.setdefault(name, value)
    return fields


def _judge(fields: dict) -> tuple:
    """(problems, cleaned values) for the fields of a block."""
    problems, values = [], {}
    for name in FIELDS:
        label = _LABELS[name]
        if name not in fields:
            problems.append(f"no '# {label}:' line")
            values[name] = None
            continue
        value = fields[name]
        if name == "aid":
            own = _strip_template(value)
            if not own.strip(" .,;:-"):
                problems.append("the Aid still holds the template's text" if value.strip()
                                else "the Aid is empty (write 'none' if you used no help)")
                values[name] = None
                continue
            values[name] = own
            bot = _mentions_chatbot(own)
            if bot and not _LINK.search(own):
                problems.append(f"the Aid names {bot!r} but gives no link to the session")
            continue
        if _letters(value) in _NOTHING:
            problems.append(f"the {label} is empty")
            values[name] = None
        elif _letters(value) in _PLACEHOLDERS[name]:
            problems.append(f"the {label} is still the template's {value!r}")
            values[name] = None
        else:
            values[name] = value
    return problems, values


def check_author_block(source: str) -> AuthorBlock:
    """Check the author block of a ``hw02.py`` given as text; see the module's docstring."""
    if not isinstance(source, str):
        raise TypeError(f"check_author_block needs the source as str, not {type(source).__name__}"
                        " (decode the file first)")
    lines = source.lstrip("\ufeff").splitlines()
    start = _skip_preamble(lines)
    top = start < len(lines) and _FIELD_LINE.match(lines[start])
    if not top:
        later = next((i for i, line in enumerate(lines) if _FIELD_LINE.match(line)), None)
        if later is None:
            return AuthorBlock("missing", "no author block (# Author: / # Netid: / # Aid: lines)")
        _, values = _judge(_read_fields(lines, later))
        return AuthorBlock("missing", f"the author block is not at the top of the file "
                                      f"(it starts on line {later + 1})", **values)
    problems, values = _judge(_read_fields(lines, start))
    if problems:
        return AuthorBlock("incomplete", "; ".join(problems), **values)
    return AuthorBlock("ok", "", **values)
