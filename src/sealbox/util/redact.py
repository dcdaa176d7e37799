"""URLs as people see them: any password replaced by ``***``.

Every URL that can reach an error, a log line, the run history, the API or an alert (database and
source URLs, destinations, endpoints) goes through :func:`mask_url` first. The operator may have
written a password into it (``mysql://root:pw@host/db``) against the advice to use
``password_file``, maybe without percent-encoding it; the mask must hide it even then.
"""

from __future__ import annotations

import re

__all__ = ["ambiguous_userinfo", "mask_url"]

MASK = "***"

# Query parameters that carry a password (libpq and SQLAlchemy URLs accept ?password=...).
_SECRET_PARAM = re.compile(r"([?&;](?:password|passwd|pwd|secret|token)=)[^&;#]*", re.I)


def mask_url(url: str) -> str:
    """``url`` with the password of its user part, and password-like query parameters, masked.

    The user part is taken to run to the *last* ``@``: a password with an unencoded ``@``, ``/``,
    ``?`` or ``#`` makes URL parsers read part of it as the host or the path, and a mask that
    stopped at the first of those would show the rest. The cost is a rare over-masked URL (an
    ``@`` in a path after a ``:``), never a shown password.
    """
    start = url.find("://")
    start = 0 if start < 0 else start + 3
    at = url.rfind("@", start)
    if at >= 0:
        colon = url.find(":", start, at)
        if colon >= 0:
            url = f"{url[: colon + 1]}{MASK}{url[at:]}"
    else:
        # No '@': "user:password" with the host forgotten reads as "host:port"; a port that is not
        # a number is masked too.
        ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
        end = min(ends, default=len(url))
        host, sep, port = url[start:end].rpartition(":")
        if sep and not port.isdigit() and not port.endswith("]"):
            url = f"{url[: start + len(host) + 1]}{MASK}{url[end:]}"
    return _SECRET_PARAM.sub(r"\1" + MASK, url)


def ambiguous_userinfo(url: str) -> bool:
    """Whether the user part of ``url`` (to its last ``@``) holds an unencoded ``@ / ? #``:
    parsers disagree on where such a password ends (and then name part of it as the host)."""
    start = url.find("://")
    start = 0 if start < 0 else start + 3
    at = url.rfind("@", start)
    return at >= 0 and any(c in url[start:at] for c in "@/?#")
