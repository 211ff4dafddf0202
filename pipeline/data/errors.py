"""The one error every dataset reader raises for bad input data."""

from __future__ import annotations


class DataError(ValueError):
    """Unusable input data: one line naming the file (or folder, or url) and the problem.

    Readers raise it before anything is written; ``stages/prepare.py`` prints it as
    ``error: datasets.<name>: <message>`` and exits with code 2.
    """
