"""nbgrader's exchange with submissions closed to other students (issue 23).

nbgrader 0.9.6 leaves two doors open on a shared server:

- ``nbgrader submit`` makes each submission's folder in ``inbound/`` mode 0777 "so the
  instructor can delete later": a student who learns the folder's name (it is hidden by a
  random suffix, not protected) can delete or replace another student's files in it.
  :class:`ClosedSubmit` makes it 0770 instead: the student's, and the group's that the
  setgid ``inbound/`` gives it (the grading group, ``deploy/install.sh``), so the instructor
  still collects and deletes it. Installed for every account by the system
  ``nbgrader_config.py`` (``c.ExchangeFactory.submit``).
- ``nbgrader collect`` copies a submission with those modes, so ``submitted/<student>/<assignment>/``
  came out writable by every account that could reach it. :class:`ClosedCollect` removes
  every permission of "others" from what it copied. Installed in the course's
  ``nbgrader_config.py`` (``c.ExchangeFactory.collect``), so the formgrader's Collect button uses it too.
- ``nbgrader release_feedback`` copies each feedback page into the exchange with the mode it has
  in ``feedback/`` (0640 or 0600 in this course, closed to students), so no student could fetch
  their feedback ("Permission denied" in the Assignments tab). :class:`OpenReleaseFeedback` makes
  the released pages 0644, nbgrader's intended mode: ``feedback/`` in the exchange is 0711, so a
  page is reachable only by its name, a hash of the student's own submission.
"""

import os

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback
from nbgrader.exchange.default.submit import ExchangeSubmit

from autograder.permissions import close_to_others

SUBMISSION_MODE = 0o770
FEEDBACK_PAGE_MODE = 0o644


class ClosedSubmit(ExchangeSubmit):
    """nbgrader's submit, then the submission's folder in ``inbound/`` 0770 instead of 0777."""

    def copy_files(self):
        super().copy_files()
        os.chmod(os.path.join(self.inbound_path, self.assignment_filename), SUBMISSION_MODE)


class ClosedCollect(ExchangeCollect):
    """nbgrader's collect, then ``chmod -R o-rwx`` on each submission it copied."""

    def do_copy(self, src, dest, log=None):
        super().do_copy(src, dest, log)
        close_to_others(dest)


class OpenReleaseFeedback(ExchangeReleaseFeedback):
    """nbgrader's release_feedback, then the released pages readable (0644) by the student who knows the name."""

    def copy_files(self):
        super().copy_files()
        for page in os.scandir(self.dest_path):
            if page.name.endswith(".html") and page.is_file(follow_symlinks=False) and page.stat().st_uid == os.geteuid():
                os.chmod(page.path, FEEDBACK_PAGE_MODE)
