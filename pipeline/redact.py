"""Masking of credentials inside URIs before they are written, printed or logged.

A tracking or backend URI may carry a password (``http://user:pass@mlflow:5000``,
``postgresql://mlflow:PW@db/mlflow``); ``run.json`` is a tracked DVC output and logs are shared,
so the password is replaced by ``***`` wherever the pipeline shows a URI. The user name stays (it
says which account was used and is not a secret). Imports nothing from the project.
"""

from __future__ import annotations

import re

MASK = "***"
# scheme://user:password@  (the password runs up to the last '@' before the host part)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^/\s]*)@")


def mask_credentials(text: str | None) -> str | None:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``.

    Works on a bare URI and on a line that contains URIs; ``None`` and text without credentials
    come back unchanged.
    """
    if not text:
        return text
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
