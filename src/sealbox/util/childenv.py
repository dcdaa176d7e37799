"""The environment Sealbox gives the programs it starts (dump tools, database clients, command
sources, ``dpkg-query``).

Sealbox's own environment holds credentials meant for Sealbox alone (``SEALBOX_AGENT_TOKEN``,
``AWS_SECRET_ACCESS_KEY``, the SSH key path...). A child inherits nothing of it but what it needs to
find programs and read text: ``PATH``, the locale (``LANG``, ``LC_*``) and ``TZ``. Whatever else a
child needs (its password variable, a command source's configured ``env``) is passed explicitly.
An inherited ``EDITOR`` or ``PAGER`` is a command line the child may run; it is never passed on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["minimal_env"]

_KEPT = ("PATH", "LANG", "TZ")


def _kept(name: str) -> bool:
    return name in _KEPT or name.startswith("LC_")


def minimal_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH, locale and TZ from our environment, then ``extra`` on top (it wins)."""
    env = {name: value for name, value in os.environ.items() if _kept(name)}
    env.setdefault("PATH", os.defpath)
    env.update(extra or {})
    return env
