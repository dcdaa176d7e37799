#!/usr/bin/env python3
"""Benchmark: the system backup's live MariaDB dump against plain `mariadb-dump > file`.

Builds (once) a ~1 GB MariaDB database `sealbox_bench` on 127.0.0.1 (root, no password), then:
  1. `mariadb-dump --single-transaction ... > file` (the reference: what an admin would run),
  2. `sealbox backup system` with only that database (dump streamed, chunked, compressed,
     encrypted and stored, no temporary file),
  3. `sealbox backup system` with the 1 GiB dataset (bench/repo_bench.py's) plus the database.
Prints wall times, throughput and the ratio of 2 to 1 (goal: at most 1.3).

    python bench/system_bench.py [--rows 4000000] [--workdir bench/results/system]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchlib import timed, write_config

ROOT = Path(__file__).resolve().parents[1]
DB = "sealbox_bench"


def mysql(sql: str) -> str:
    done = subprocess.run(
        ["mariadb", "--protocol=TCP", "-h127.0.0.1", "-uroot", "-N", "-B", "-e", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def ensure_database(rows: int) -> int:
    """Create the benchmark database once; return its data size in bytes."""
    size = mysql(
        f"SELECT COALESCE(SUM(data_length), 0) FROM information_schema.tables WHERE table_schema = '{DB}'"
    )
    if int(size or 0) > 0:
        return int(size)
    print(f"building a {rows:,}-row MariaDB database once (about 1 GB) ...", flush=True)
    mysql(f"CREATE DATABASE IF NOT EXISTS {DB}")
    mysql(
        f"CREATE TABLE {DB}.audit (id BIGINT PRIMARY KEY, at DATETIME, user VARCHAR(32), target VARCHAR(64),"
        " action VARCHAR(16), detail VARCHAR(255)) ENGINE=InnoDB"
    )
    step = 500_000
    for start in range(1, rows + 1, step):
        end = min(rows, start + step - 1)
        mysql(
            f"INSERT INTO {DB}.audit SELECT seq, NOW() - INTERVAL seq SECOND, CONCAT('user', seq % 997),"
            f" CONCAT('srv-', seq % 4001, '.corp.example'), ELT(1 + seq % 5, 'login', 'logout', 'checkout',"
            f" 'checkin', 'approve'), CONCAT(MD5(seq), ' ', SHA1(seq), ' ', MD5(seq * 7), ' session ', seq)"
            f" FROM {DB}.seq_{start}_to_{end}"
        )
    mysql(f"ANALYZE TABLE {DB}.audit")
    return int(
        mysql(f"SELECT SUM(data_length) FROM information_schema.tables WHERE table_schema = '{DB}'")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "results" / "system")
    parser.add_argument(
        "--dataset",
        type=Path,
        default=ROOT / "bench" / "results" / "repo" / "pristine-1024-1",
        help="the 1 GiB dataset (made by bench/repo_bench.py)",
    )
    args = parser.parse_args()
    data_size = ensure_database(args.rows)
    work = args.workdir.absolute()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    sys.path.insert(0, str(ROOT / "src"))
    from sealbox.crypto import agekeys

    identity = agekeys.identity_from_secret(agekeys.new_secret())
    recipient = agekeys.recipient_of(identity)
    (work / "remote").mkdir()

    def config(paths: list[Path], name: str) -> Path:
        return write_config(
            work / f"{name}.toml",
            state_dir=work / "state",
            recipient=recipient,
            remote=work / "remote" / name,
            body=f"""[system]
destination = "remote"
paths = [{", ".join(f'"{p}"' for p in paths)}]
[[system.databases]]
type = "mariadb"
url = "mysql://root@127.0.0.1/{DB}"
""",
        )

    dump_file = work / "plain.sql"
    with open(dump_file, "wb") as out:
        plain = timed(
            [
                "mariadb-dump",
                "--protocol=TCP",
                "-h127.0.0.1",
                "-uroot",
                "--single-transaction",
                "--quick",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                "--default-character-set=utf8mb4",
                "--databases",
                DB,
            ],
            stdout=out,
        )
        out.flush()
        os.fsync(out.fileno())
    dump_size = dump_file.stat().st_size

    dump_file.unlink()
    empty = work / "empty"
    empty.mkdir()
    sealbox = [sys.executable, "-m", "sealbox", "backup", "system", "--config"]
    db_only = timed([*sealbox, str(config([empty], "db"))], stdout=subprocess.DEVNULL)
    rows = [("mariadb-dump > file", plain), ("sealbox backup system (database only)", db_only)]
    if args.dataset.exists():
        subprocess.run(["sync"], check=True)
        full = timed([*sealbox, str(config([args.dataset], "full"))], stdout=subprocess.DEVNULL)
        rows.append(("sealbox backup system (1 GiB dataset + database)", full))
    print(
        f"\nSystem backup benchmark: MariaDB data {data_size / 2**20:,.0f} MiB, dump {dump_size / 2**20:,.0f} MiB"
    )
    for name, seconds in rows:
        print(f"{name:<50} {seconds:7.2f} s  {dump_size / 2**20 / seconds:7.1f} MiB/s of dump")
    ratio = db_only / plain
    print(
        f"ratio sealbox / plain dump: {ratio:.2f} (goal <= 1.3) {'ok' if ratio <= 1.3 else 'MISSED'}"
    )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
