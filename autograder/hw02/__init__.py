"""Homework 2 ("evil twins"), graded by its own rules.

- ``rules``: the command, the output parser, errors and score, one sandboxed run;
- ``data``: the instructor's secret final data (``python -m autograder.hw02.data make-final``);
- ``grade``: the stand-alone grader for a folder of scripts (``python -m autograder.hw02.grade``);
- ``dask_grading``: the same runs on a Dask cluster;
- ``similarity``: the class's similarity report; ``author_block``: the author-block check.
"""
