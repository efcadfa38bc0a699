"""nbgrader settings for ``noisylabels lab --instructor`` only (read before the course's
own ``nbgrader_config.py``, which has the last word).

The exchange folder (release, fetch, submit, collect) is the course's ``exchange/``
(not committed; ``noisylabels lab --instructor`` creates it) instead of
``/usr/local/share/nbgrader/exchange``, which an ordinary user cannot create: without
it, the Assignment List and Course List show "The exchange directory does not exist".
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader)
c.Exchange.root = os.environ.get(
    "NOISYLABELS_EXCHANGE",
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "exchange"),
)
