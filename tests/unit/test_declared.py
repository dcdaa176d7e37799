"""What a dump declares (tables, rows per table), read from pg_dump and mariadb-dump text as it
streams: the drill's yardstick for a loaded database."""

from __future__ import annotations

import pytest

from sealbox.databases.declared import declared
from sealbox.databases.mariadb import renamed
from sealbox.errors import IntegrityError

PG = b"""--
CREATE TABLE public.accounts (
    id integer NOT NULL,
    note text
);
CREATE TABLE public."Audit Log" (
    at timestamp with time zone
);
CREATE UNLOGGED TABLE s2.cache (
    k integer
);
CREATE TABLE public.empty (
    x integer
);
COPY public.accounts (id, note) FROM stdin;
1\tmulti\\nline
2\t\\N
\\.
COPY public."Audit Log" (at) FROM stdin;
2026-12-01 10:00:00+00
\\.
COPY s2.cache (k) FROM stdin;
\\.
"""

MARIADB = b"""CREATE DATABASE /*!32312 IF NOT EXISTS*/ `pam` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;

USE `pam`;
CREATE TABLE `targets` (
  `id` int(11) NOT NULL,
  `host` text DEFAULT NULL
) ENGINE=InnoDB;
INSERT INTO `targets` VALUES
(1,'it\\'s (a) test\\\\'),
(2,'x),(y'),
(3,NULL);
INSERT INTO `targets` VALUES (4,'one line'),(5,'()'),(6,'''quoted''');
CREATE TABLE `we``ird` (
  `b` blob
);
INSERT INTO `we``ird` VALUES
(0x00FF),
(NULL);
/*!50001 CREATE VIEW `v` AS SELECT 1 AS `a` */;
CREATE TABLE `none` (
  `x` int
);
"""


def test_postgresql_tables_and_rows():
    found = declared("postgresql", [PG])
    assert found.tables == {
        "public.accounts": 2,
        'public."Audit Log"': 1,
        "s2.cache": 0,
        "public.empty": 0,
    }
    assert found.rows == 3 and found.problems == []


def test_mariadb_tables_and_rows_with_strings_that_look_like_rows():
    found = declared("mariadb", [MARIADB])
    assert found.tables == {"`targets`": 6, "`we``ird`": 2, "`none`": 0}
    assert found.problems == []


@pytest.mark.parametrize("dialect,text", [("postgresql", PG), ("mariadb", MARIADB)])
@pytest.mark.parametrize("size", [1, 2, 7, 64])
def test_counts_do_not_depend_on_how_chunks_split_the_stream(dialect, text, size):
    whole = declared(dialect, [text])
    split = declared(dialect, [text[i : i + size] for i in range(0, len(text), size)])
    assert split.tables == whole.tables


def test_a_truncated_postgresql_dump_is_named():
    cut = PG[: PG.index(b"2\t\\N")]
    found = declared("postgresql", [cut])
    assert found.tables["public.accounts"] == 1
    assert found.problems == ["the dump ends inside the data of public.accounts (truncated?)"]


def test_rows_for_a_table_never_created_are_named():
    found = declared("postgresql", [b"COPY public.ghost (x) FROM stdin;\n1\n\\.\n"])
    assert found.tables == {"public.ghost": 1}
    assert found.problems == ["COPY into public.ghost, which the dump never creates"]
    found = declared("mariadb", [b"INSERT INTO `ghost` VALUES (1),(2);\n"])
    assert found.tables == {"`ghost`": 2} and "never creates" in found.problems[0]


def test_identifiers_that_are_not_one_whole_name_are_not_tables():
    odd = b"CREATE TABLE public.x; DROP TABLE y (\nCOPY public.x; DROP (a) FROM stdin;\n"
    assert declared("postgresql", [odd]).tables == {}


def test_renamed_rewrites_create_and_use_only():
    out = b"".join(renamed([MARIADB], "pam", "sealbox_drill_x"))
    assert b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `sealbox_drill_x` /*!40100" in out
    assert b"USE `sealbox_drill_x`;" in out and b"`pam`" not in out
    assert out.replace(b"sealbox_drill_x", b"pam") == MARIADB


@pytest.mark.parametrize(
    "evil",
    [
        b"USE `mysql`;\n",
        b"CREATE DATABASE `other`;\n",
        b"USE `pam`; DROP DATABASE mysql;\n",
    ],
)
def test_renamed_refuses_a_dump_that_goes_elsewhere(evil):
    with pytest.raises(IntegrityError):
        b"".join(renamed([MARIADB + evil], "pam", "sealbox_drill_x"))


def test_renamed_refuses_a_dump_that_never_selects_its_database():
    with pytest.raises(IntegrityError, match="never selects"):
        b"".join(renamed([b"CREATE TABLE `t` (\n`x` int);\n"], "pam", "new"))
