"""Homework 2's author block: ok, missing and incomplete are told apart, with reasons."""

import re

import pytest

from autograder.hw02.author_block import STATUSES, TEMPLATE_AID, check_author_block
from noisylabels.evil_twins import STUDENT_STUB

CODE = '"""Find the evil twins."""\n\nimport argparse\n\n\ndef main():\n    pass\n'


def block(author="Ada Lovelace", netid="al123", aid="lecture 3 notes, a Stack Overflow post on argparse"):
    return f"# Author: {author}\n# Netid: {netid}\n# Aid: {aid}\n"


def test_the_template_aid_is_the_student_stubs():
    aid_line = next(line for line in STUDENT_STUB.splitlines() if line.startswith("# Aid:"))
    assert aid_line == "# Aid: " + TEMPLATE_AID


def test_a_filled_in_block_at_the_top_is_ok_and_gives_its_fields():
    result = check_author_block(block() + CODE)
    assert result.status == "ok", result.reason
    assert (result.author, result.netid) == ("Ada Lovelace", "al123")
    assert result.aid == "lecture 3 notes, a Stack Overflow post on argparse"
    assert result.reason == ""


def test_shebang_encoding_line_and_blank_lines_may_come_first():
    source = "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n\n\n" + block() + CODE
    assert check_author_block(source).status == "ok"
    assert check_author_block("\ufeff" + block() + CODE).status == "ok"  # a byte-order mark too


def test_field_names_are_read_in_any_case_and_spacing():
    source = "#author : Ada\n#  NetID:al123\n# AID:   none\n" + CODE
    result = check_author_block(source)
    assert result.status == "ok", result.reason
    assert (result.author, result.netid, result.aid) == ("Ada", "al123", "none")


def test_the_aid_continues_on_the_comment_lines_below_it():
    source = block(aid="the lecture notes,") + "#   Bob (a friend) explained subsets,\n#   torch docs\n\n# unrelated\n" + CODE
    result = check_author_block(source)
    assert result.status == "ok"
    assert result.aid == "the lecture notes, Bob (a friend) explained subsets, torch docs"


def test_the_released_student_stub_is_incomplete_on_all_three_fields():
    result = check_author_block(STUDENT_STUB)
    assert result.status == "incomplete"
    assert "'your name'" in result.reason and "'your netid'" in result.reason
    assert "template's text" in result.reason
    assert (result.author, result.netid, result.aid) == (None, None, None)


def test_a_partly_filled_block_is_incomplete_and_names_what_is_left():
    result = check_author_block(block(netid="your netid", aid=TEMPLATE_AID) + CODE)
    assert result.status == "incomplete"
    assert "Netid" in result.reason and "Aid" in result.reason and "Author" not in result.reason
    assert result.author == "Ada Lovelace" and result.netid is None


def test_template_text_left_beside_the_students_own_aid_is_dropped():
    result = check_author_block(block(aid=TEMPLATE_AID + " Lecture 3 notes.") + CODE)
    assert result.status == "ok", result.reason
    assert result.aid == "Lecture 3 notes."


@pytest.mark.parametrize("field", ["Author", "Netid", "Aid"])
def test_a_missing_or_empty_field_is_incomplete(field):
    lines = block().splitlines(keepends=True)
    without = "".join(line for line in lines if not line.startswith(f"# {field}:"))
    assert check_author_block(without + CODE).status == "incomplete"
    empty = "".join(f"# {field}:\n" if line.startswith(f"# {field}:") else line for line in lines)
    result = check_author_block(empty + CODE)
    assert result.status == "incomplete" and field in result.reason


def test_a_file_without_a_block_is_missing():
    result = check_author_block(CODE)
    assert result.status == "missing" and "no author block" in result.reason
    assert check_author_block("").status == "missing"


def test_a_block_below_the_docstring_is_missing_at_the_top_but_still_read():
    source = '"""Find the evil twins."""\n' + block() + "import argparse\n"
    result = check_author_block(source)
    assert result.status == "missing"
    assert "not at the top" in result.reason and "line 2" in result.reason
    assert result.netid == "al123"


def test_a_comment_before_the_block_means_it_is_not_at_the_top():
    assert check_author_block("# hw02.py\n" + block() + CODE).status == "missing"


@pytest.mark.parametrize("aid", ["I asked ChatGPT about argparse", "used claude for the loop",
                                 "GitHub Copilot", "an LLM helped with numpy", "gpt-4o"])
def test_a_chatbot_without_a_link_is_incomplete(aid):
    result = check_author_block(block(aid=aid) + CODE)
    assert result.status == "incomplete"
    assert "no link" in result.reason


@pytest.mark.parametrize("aid", ["ChatGPT https://chatgpt.com/share/6650-abcd",
                                 "Gemini, see g.co/gemini/share/abc123",
                                 "Claude:\n#   https://claude.ai/share/0f9e"])
def test_a_chatbot_with_a_link_is_ok(aid):
    result = check_author_block(block(aid=aid) + CODE)
    assert result.status == "ok", result.reason


@pytest.mark.parametrize("aid", ["none; no ChatGPT", "did not use ChatGPT, Gemini or Claude",
                                 "lecture notes, without any LLM", "AIDS research paper? no: the torch docs"])
def test_a_negated_or_absent_chatbot_needs_no_link(aid):
    result = check_author_block(block(aid=aid) + CODE)
    assert result.status == "ok", result.reason


def test_a_chatbot_named_after_a_negated_one_still_needs_its_link():
    result = check_author_block(block(aid="no ChatGPT, but I asked Claude about winnowing") + CODE)
    assert result.status == "incomplete" and "Claude" in result.reason


def test_status_is_always_one_of_the_three():
    for source in [CODE, STUDENT_STUB, block() + CODE, "\ufeff" + block() + CODE, "#\n#\n", "\x00\x01"]:
        assert check_author_block(source).status in STATUSES


def test_bytes_are_refused_with_a_clear_error():
    with pytest.raises(TypeError, match=re.escape("decode the file first")):
        check_author_block(block().encode())
