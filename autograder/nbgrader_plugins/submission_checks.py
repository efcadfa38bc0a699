"""``nbgrader autograde`` refuses a submission that is not regular files only, before copying anything.

nbgrader runs as the instructor (often root) and copies ``submitted/<student>/<assignment>/``
with ``shutil.copy``, which follows links: a ``notes.txt`` linked to the instructor's key
file, the gradebook or the reference solution lands in ``autograded/`` and then in the
student's feedback, and a ``timestamp.txt`` that is a FIFO stops autograde for the whole
class. :class:`CheckedAutograde` is nbgrader's ``Autograde`` that first checks the
student's submitted folder with :func:`autograder.submission.check_submission` (links,
FIFOs, sockets, devices, hard links, a folder in a file's place, files over the size cap),
before nbgrader reads its timestamp or copies a file. A refused student:

- gets nothing copied and no autograded folder; the reasons go to autograde's log (an
  error naming the student, ``hw02.py is a symbolic link: submit the file itself``) and to
  :data:`REFUSED_LOG` in the course folder; autograde ends with nbgrader's error summary
  (exit status 1) naming them, after grading everyone else;
- is entered in the gradebook (so ``nbgrader export`` lists them, with 0 points).

nbgrader 0.9 has no setting for the class its autograde command and its formgrader API
use, so ``nbgrader_config.py`` calls :func:`install`, which puts :class:`CheckedAutograde`
in place of the name ``Autograde`` in those two modules (and fails loudly if nbgrader
changed so that it cannot). Every ``nbgrader autograde`` run from the course folder
therefore checks; there is no command to bypass it.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.converters import Autograde

from autograder.submission import SubmissionRefused, check_submission, escape_control

__all__ = ["CheckedAutograde", "REFUSED_LOG", "install"]

#: File in the course folder (mode 0600) where every refused submission is recorded.
REFUSED_LOG = "refused_submissions.log"


class CheckedAutograde(Autograde):
    """nbgrader's ``Autograde`` that refuses a submitted folder holding anything but regular files."""

    def init_destination(self, assignment_id: str, student_id: str) -> bool:
        # The first step that reads the submission (its timestamp.txt): check before it.
        self.check_submitted(assignment_id, student_id)
        return super().init_destination(assignment_id, student_id)

    def check_submitted(self, assignment_id: str, student_id: str) -> None:
        """Raise :class:`SubmissionRefused` (after logging and recording why) unless the
        student's submitted folder is regular files and folders only."""
        folder = Path(self.coursedir.format_path(self.coursedir.submitted_directory, student_id, assignment_id))
        expected = ["timestamp.txt", *(Path(nb).name for nb in self.notebooks),
                    *self.exclude_overwriting.get(assignment_id, [])]
        if os.path.islink(folder.parent):  # submitted/<student> itself
            problems = [f"the folder {folder.parent.name} is a symbolic link: submit the folder itself"]
        else:
            problems = check_submission(folder, files=expected)
        if not problems:
            return
        reasons = [escape_control(p, keep_newlines=False) for p in problems]
        self.log.error("Submission of %s for %s refused, nothing of it copied or graded: %s",
                       escape_control(student_id), assignment_id, "; ".join(reasons))
        self._record_refusal(assignment_id, student_id, reasons)
        if self.create_student:  # listed by `nbgrader export` (0 points), like a missing submission
            with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
                gb.update_or_create_student(student_id)
        raise SubmissionRefused([f"{student_id}/{assignment_id}: {r}" for r in reasons])

    def _record_refusal(self, assignment_id, student_id, reasons) -> None:
        path = Path(self.coursedir.root) / REFUSED_LOG
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "a") as fh:
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            for reason in reasons:
                fh.write(f"{stamp}\t{assignment_id}\t{escape_control(student_id)}\t{reason}\n")


def install() -> None:
    """Make ``nbgrader autograde`` and formgrader's autograde use :class:`CheckedAutograde`."""
    from nbgrader.apps import api, autogradeapp

    for module in (autogradeapp, api):
        current = getattr(module, "Autograde", None)
        if current is None or not issubclass(current, Autograde):
            raise RuntimeError(f"{module.__name__} has no Autograde to replace: this nbgrader "
                               f"cannot be made to check submissions (autograder/nbgrader_plugins/"
                               f"submission_checks.py)")
        module.Autograde = CheckedAutograde
