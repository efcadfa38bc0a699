"""Grading tools that run outside nbgrader (a plain folder of submissions, as from an LMS).

- ``python -m autograder.evil_twins``: homework 2, "evil twins" (see ``autograder/README.md``).
"""
