r"""psql's restricted mode for loads: a dump runs SQL, never a psql meta-command.

A forged or tampered dump may hold meta-commands: ``\!`` runs a shell command on the restoring
host, ``\o |cmd`` and ``\g |cmd`` pipe into one, ``\copy ... program`` starts one, ``\i`` reads a
local file, ``\connect`` goes elsewhere. The script fed to psql therefore starts with
``\restrict KEY`` (psql 13.22, 14.19, 15.14, 16.10, 17.6 and later, CVE-2025-8714): from then on
psql refuses every meta-command except ``\unrestrict KEY`` with that very key, and with
``ON_ERROR_STOP`` the first refusal stops the load. The key is random per load and exists only in
this process and the pipe (never on disk, never on a command line), so no dump can hold it.
Plain SQL and ``COPY ... FROM stdin`` data load as before.

pg_dump of those versions frames its output with ``\restrict K`` (near the top) and
``\unrestrict K`` (the last line), K its own random key. While we hold the restriction psql refuses
a nested ``\restrict`` ("backslash commands are restricted; only \unrestrict is allowed") and an
``\unrestrict`` with another key ("\unrestrict: wrong key"; the restriction stays), so either
line would stop the load of a genuine dump. They are taken out of the stream: the first
``\restrict K`` before any ``COPY`` (where pg_dump puts it, outside any data) and every
``\unrestrict K`` line with that same K. Removing a line can only take a command away, never lift
our restriction, which lasts until psql exits.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from itertools import chain

from sealbox.errors import SourceError

__all__ = [
    "new_key",
    "require_restrict",
    "restricted_script",
    "supports_restrict",
    "whole_lines",
]

# The first minor release of each major version with \restrict; every major after 17 has it.
_FIRST_WITH_RESTRICT = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")
_HEAD = re.compile(rb"^(?:\\restrict ([A-Za-z0-9]{1,128})\r?\n|COPY )", re.M)


def new_key() -> str:
    """A fresh key for one load: 64 hex digits (256 bits)."""
    return secrets.token_hex(32)


def supports_restrict(version_line: str) -> bool:
    """Whether ``psql --version`` output names a psql that knows ``\\restrict``."""
    match = _VERSION.search(version_line)
    if match is None:
        return False
    major = int(match.group(1))
    if major > max(_FIRST_WITH_RESTRICT):
        # 18.0 and later; a bare "18beta1" predates the fix, "19devel" does not.
        return match.group(2) is not None or major > 18
    first = _FIRST_WITH_RESTRICT.get(major)
    return first is not None and match.group(2) is not None and int(match.group(2)) >= first


def require_restrict(version_line: str, psql: str) -> None:
    """SourceError unless this psql can be restricted: a load never runs unprotected."""
    if not supports_restrict(version_line):
        shown = version_line.strip().splitlines()[0][:80] if version_line.strip() else "unknown"
        raise SourceError(
            f"{psql} ({shown}) has no \\restrict: loading a dump with it could run commands"
            " from the dump; install psql 13.22, 14.19, 15.14, 16.10, 17.6 or later"
        )


def restricted_script(data: Iterable[bytes], key: str) -> Iterator[bytes]:
    """``\\restrict key``, then the dump without pg_dump's own restrict/unrestrict lines."""
    yield b"\\restrict " + key.encode() + b"\n"
    blocks = whole_lines(data)
    for block in blocks:
        match = _HEAD.search(block)
        if match is None:
            yield block
            continue
        if match.group(1) is None:  # data before any \restrict: a dump from an older pg_dump
            yield block
            yield from blocks
            return
        yield block[: match.start()]
        unrestrict = re.compile(rb"^\\unrestrict " + match.group(1) + rb"\r?(?:\n|\Z)", re.M)
        for rest in chain([block[match.end() :]], blocks):
            yield unrestrict.sub(b"", rest)
        return


def whole_lines(data: Iterable[bytes]) -> Iterator[bytes]:
    """The bytes of ``data`` in blocks that each end at a line end (the last may not)."""
    carry = bytearray()  # a line longer than a chunk (a big bytea value) grows here, once
    for chunk in data:
        end = chunk.rfind(b"\n")
        if end < 0:
            carry += chunk
            continue
        yield bytes(carry) + chunk[: end + 1] if carry else chunk[: end + 1]
        carry = bytearray(chunk[end + 1 :])
    if carry:
        yield bytes(carry)
