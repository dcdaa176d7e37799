"""What a dump declares: its tables and how many rows each holds, read from the dump's own text
as it streams (the drill compares them with what a throwaway database holds after the load).

Pure code: bytes in, counts out. Two dialects:

- **PostgreSQL** (``pg_dump --format=plain``): ``CREATE TABLE schema.name (`` declares a table;
  its rows are the lines between ``COPY schema.name (...) FROM stdin;`` and ``\\.`` (COPY's text
  format escapes newlines inside values, so one line is one row).
- **MariaDB** (``mariadb-dump``): ``CREATE TABLE `name` (`` declares a table; each
  ``INSERT INTO `name` VALUES (...),(...);`` statement (on one line, or one row per line as
  mariadb-dump 10.11 writes them) adds one row per top-level tuple. Quoted strings (backslash
  escapes, doubled quotes) are skipped first: what remains holds numbers, ``NULL``, ``0x`` hex
  (``--hex-blob``), commas and one pair of parentheses per row.

Identifiers are kept exactly as the dump quotes them, and only when they are one complete
quoted or plain identifier (:data:`PG_TABLE`, :data:`MARIADB_TABLE`): they are pasted back into
a ``SELECT count(*)`` against the throwaway database, so nothing else may pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["MARIADB_TABLE", "PG_TABLE", "Declared", "DumpCounter", "declared"]

_PG_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"\x00]|"")+")'
PG_TABLE = re.compile(rf"{_PG_PART}\.{_PG_PART}")
MARIADB_TABLE = re.compile(r"`(?:[^`\x00]|``)+`")

_PG_CREATE = re.compile(rb"^CREATE (?:UNLOGGED )?TABLE (" + PG_TABLE.pattern.encode() + rb") \($")
_PG_COPY = re.compile(rb"^COPY (" + PG_TABLE.pattern.encode() + rb")(?: \(.*\))? FROM stdin;$")
_MY_CREATE = re.compile(rb"^CREATE TABLE (" + MARIADB_TABLE.pattern.encode() + rb") \($")
_MY_INSERT = re.compile(rb"^INSERT (?:IGNORE )?INTO (" + MARIADB_TABLE.pattern.encode() + rb") ")
_MY_STRING = re.compile(rb"'(?:[^'\\]|\\.|'')*'", re.DOTALL)
MAX_LINE = 256 << 20  # a longer line is not a dump's: counting stops with an error


@dataclass
class Declared:
    """Tables in the order the dump creates them, with the rows it loads into each."""

    tables: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


class _Lines:
    """Splits a byte stream into lines (without their newline), however the chunks split them."""

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        data = self.tail + chunk if self.tail else chunk
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            yield data[start:end]
            start = end + 1
        self.tail = data[start:]
        if len(self.tail) > MAX_LINE:
            raise ValueError(f"a line longer than {MAX_LINE >> 20} MiB: not a dump")

    def end(self) -> Iterator[bytes]:
        if self.tail:
            yield self.tail
        self.tail = b""


class DumpCounter:
    """Counts a dump's tables and rows as its chunks go by (:meth:`feed`), then :meth:`result`."""

    def __init__(self, dialect: str) -> None:
        if dialect not in ("postgresql", "mariadb"):
            raise ValueError(f"no row counting for {dialect} dumps")
        self.found, self.lines = Declared(), _Lines()
        self.line = self._postgresql if dialect == "postgresql" else self._mariadb
        self.copying: str | None = None

    def feed(self, chunk: bytes) -> None:
        for line in self.lines.feed(chunk):
            self.line(line)

    def result(self) -> Declared:
        for line in self.lines.end():
            self.line(line)
        if self.copying is not None:
            self.found.problems.append(
                f"the dump ends inside the data of {self.copying} (truncated?)"
            )
            self.copying = None
        return self.found

    def _postgresql(self, line: bytes) -> None:
        found = self.found
        if self.copying is not None:
            if line == b"\\.":
                self.copying = None
            else:
                found.tables[self.copying] += 1
        elif match := _PG_CREATE.match(line):
            found.tables.setdefault(match.group(1).decode(), 0)
        elif match := _PG_COPY.match(line):
            self.copying = match.group(1).decode()
            if self.copying not in found.tables:
                found.problems.append(f"COPY into {self.copying}, which the dump never creates")
                found.tables[self.copying] = 0

    def _mariadb(self, line: bytes) -> None:
        found = self.found
        if self.copying is not None:  # inside an INSERT: rows until the line that ends it
            self._rows(self.copying, line)
        elif match := _MY_CREATE.match(line):
            found.tables.setdefault(match.group(1).decode(), 0)
        elif match := _MY_INSERT.match(line):
            table = match.group(1).decode()
            values = line[match.end() :]
            if not values.startswith(b"VALUES"):
                found.problems.append(f"an INSERT into {table} without VALUES")
                return
            if table not in found.tables:
                found.problems.append(f"rows for {table}, which the dump never creates")
                found.tables[table] = 0
            self._rows(table, values[len(b"VALUES") :])

    def _rows(self, table: str, text: bytes) -> None:
        """Tuples on one line of an INSERT (a dump escapes newlines inside strings, so a string
        never spans lines); the statement ends with the line that ends with ``;``."""
        bare = _MY_STRING.sub(b"''", text).rstrip()
        self.found.tables[table] += bare.count(b"(")
        self.copying = None if bare.endswith(b";") else table


def declared(dialect: str, chunks: Iterable[bytes]) -> Declared:
    """The tables and rows a whole dump declares."""
    counter = DumpCounter(dialect)
    for chunk in chunks:
        counter.feed(chunk)
    return counter.result()
