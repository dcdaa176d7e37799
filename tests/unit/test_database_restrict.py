"""psql's restricted mode for loads: which psql has it, and the script it is fed (pure)."""

from __future__ import annotations

import pytest

from sealbox.databases.restricted import (
    new_key,
    require_restrict,
    restricted_script,
    supports_restrict,
)
from sealbox.errors import SourceError


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("psql (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", True),
        ("psql (PostgreSQL) 15.14", True),
        ("psql (PostgreSQL) 15.13", False),
        ("psql (PostgreSQL) 13.22", True),
        ("psql (PostgreSQL) 14.18", False),
        ("psql (PostgreSQL) 16.10", True),
        ("psql (PostgreSQL) 17.5", False),
        ("psql (PostgreSQL) 17.6", True),
        ("psql (PostgreSQL) 18.0", True),
        ("psql (PostgreSQL) 18beta1", False),
        ("psql (PostgreSQL) 19devel", True),
        ("psql (PostgreSQL) 12.22", False),
        ("psql (PostgreSQL) 9.6.24", False),
        ("mysql  Ver 8.0", False),
        ("", False),
    ],
)
def test_only_a_psql_with_restrict_is_trusted_with_a_load(version, supported):
    assert supports_restrict(version) is supported


def test_an_old_psql_is_refused_in_one_line():
    with pytest.raises(SourceError) as info:
        require_restrict("psql (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)\n", "/usr/bin/psql")
    message = str(info.value)
    assert "\n" not in message and "15.13" in message and "has no \\restrict" in message


def test_each_load_gets_a_new_long_key():
    keys = {new_key() for _ in range(3)}
    assert len(keys) == 3 and all(len(k) >= 32 and k.isalnum() for k in keys)


def _script(dump: bytes, size: int) -> bytes:
    chunks = [dump[i : i + size] for i in range(0, len(dump), size)] or [b""]
    return b"".join(restricted_script(iter(chunks), "K" * 64))


DUMP = (
    b"-- Sealbox: roles\n-- PostgreSQL database dump\n\n\\restrict AbC123\n\nSET x = 1;\n"
    b"COPY public.t (v) FROM stdin;\n\\restrict AbC123\n\\unrestrict other\n\\.\n"
    b"SELECT 1;\n\\unrestrict AbC123\n"
)


@pytest.mark.parametrize("size", [1, 2, 5, 13, 1 << 20])
def test_the_script_starts_restricted_and_drops_only_pg_dumps_frame(size):
    """Our \\restrict first; pg_dump's \\restrict (before any COPY) and its \\unrestrict with the
    same key go; COPY data that reads like either stays, wherever the chunks are cut."""
    assert _script(DUMP, size) == (
        b"\\restrict " + b"K" * 64 + b"\n"
        b"-- Sealbox: roles\n-- PostgreSQL database dump\n\n\nSET x = 1;\n"
        b"COPY public.t (v) FROM stdin;\n\\restrict AbC123\n\\unrestrict other\n\\.\n"
        b"SELECT 1;\n"
    )


def test_a_final_unrestrict_without_newline_goes_too():
    assert _script(b"\\restrict k1\nSELECT 1;\n\\unrestrict k1", 4).endswith(b"SELECT 1;\n")


def test_a_dump_without_frame_is_fed_unchanged():
    dump = b"SELECT 1;\nCOPY t FROM stdin;\n\\restrict k1\n\\.\n\\unrestrict k1\n"
    assert _script(dump, 3) == b"\\restrict " + b"K" * 64 + b"\n" + dump
