"""``nbgrader collect`` that keeps each collected submission closed to other accounts.

nbgrader 0.9.6 copies a submission from the exchange with the modes ``nbgrader submit``
left on it (the folder 0777, files 0644), so ``submitted/<student>/<assignment>/`` came out
writable by every account that could reach it (issue 23). :class:`ClosedCollect` removes
every permission of "others" from what it copied; the owner and group (the grading group,
through the course folder's setgid bit) keep theirs. Installed in ``nbgrader_config.py`` as
``c.ExchangeFactory.collect``, so the formgrader's Collect button uses it too.
"""

from nbgrader.exchange.default.collect import ExchangeCollect

from autograder.permissions import close_to_others


class ClosedCollect(ExchangeCollect):
    """nbgrader's collect, then ``chmod -R o-rwx`` on each submission it copied."""

    def do_copy(self, src, dest, log=None):
        super().do_copy(src, dest, log)
        close_to_others(dest)
