#!/usr/bin/env python3
"""Benchmark: the system backup's live MariaDB dump against plain `mariadb-dump > file`.

Builds (once) a ~1 GB MariaDB database `sealbox_bench` on 127.0.0.1 (root, no password), then:
  1. `mariadb-dump --single-transaction ... > file` (the reference: what an admin would run),
  2. the same dump piped through `zstd -1` into a file (compressed, as Sealbox stores it),
  3. `sealbox backup system` with only that database (dump streamed, chunked, compressed,
     encrypted and stored, no temporary file), into a fresh repository each round,
  4. `sealbox backup system` with the 1 GiB dataset (bench/repo_bench.py's) plus the database.
Fair: one untimed dump first warms the server's buffer pool for everyone; every timed step comes
after a `sync` and a settle pause; steps 1-3 run in an order that rotates over `--rounds`
(default 3) and the median is reported (min-max). Prints wall times, throughput and the ratio of
3 to 1 (goal: at most 1.3), and of 3 to 2.

    python bench/system_bench.py [--rows 4000000] [--rounds 3] [--workdir bench/results/system]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
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
    parser.add_argument("--rounds", type=int, default=3)
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

    dump = [
        "mariadb-dump", "--protocol=TCP", "-h127.0.0.1", "-uroot", "--single-transaction",
        "--quick", "--routines", "--triggers", "--events", "--hex-blob",
        "--default-character-set=utf8mb4", "--databases", DB,
    ]  # fmt: skip
    dump_file = work / "plain.sql"
    zst_file = work / "plain.sql.zst"
    sealbox = [sys.executable, "-m", "sealbox", "backup", "system", "--config"]
    empty = work / "empty"
    empty.mkdir()

    def settle() -> None:
        subprocess.run(["sync"], check=True)
        time.sleep(1.0)

    def plain() -> float:
        settle()
        with open(dump_file, "wb") as out:
            seconds = timed(dump, stdout=out)
        return seconds

    def compressed() -> float:
        settle()
        quoted = " ".join(dump)
        return timed(["sh", "-c", f"{quoted} | zstd -1 -q -o {zst_file} -f"])

    runs = iter(range(1000))

    def sealbox_db() -> float:
        settle()
        name = f"db{next(runs)}"  # a fresh repository: nothing to deduplicate against
        return timed([*sealbox, str(config([empty], name))], stdout=subprocess.DEVNULL)

    with open(work / "warm.sql", "wb") as out:  # warms the buffer pool for every step alike
        subprocess.run(dump, stdout=out, check=True)
    (work / "warm.sql").unlink()
    steps = {
        "mariadb-dump > file": plain,
        "mariadb-dump | zstd -1 > file": compressed,
        "sealbox backup system (database only)": sealbox_db,
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for n in range(args.rounds):
        for name in order[n % 3 :] + order[: n % 3]:
            times[name].append(steps[name]())
    dump_size = dump_file.stat().st_size
    zst_size = zst_file.stat().st_size
    dump_file.unlink()
    zst_file.unlink()
    if args.dataset.exists():
        settle()
        full = timed([*sealbox, str(config([args.dataset], "full"))], stdout=subprocess.DEVNULL)
        times["sealbox backup system (1 GiB dataset + database)"] = [full]
    print(
        f"\nSystem backup benchmark: MariaDB data {data_size / 2**20:,.0f} MiB, dump"
        f" {dump_size / 2**20:,.0f} MiB ({zst_size / 2**20:,.0f} MiB with zstd -1), median of"
        f" {args.rounds} rounds (min-max), order rotated, buffer pool warmed before"
    )
    for name, samples in times.items():
        median = statistics.median(samples)
        print(
            f"{name:<50} {median:7.2f} s ({min(samples):.2f}-{max(samples):.2f})"
            f"  {dump_size / 2**20 / median:7.1f} MiB/s of dump"
        )
    db_only = statistics.median(times["sealbox backup system (database only)"])
    ratio = db_only / statistics.median(times["mariadb-dump > file"])
    print(
        f"ratio sealbox / plain dump: {ratio:.2f} (goal <= 1.3) {'ok' if ratio <= 1.3 else 'MISSED'}"
    )
    ratio_zst = db_only / statistics.median(times["mariadb-dump | zstd -1 > file"])
    print(f"ratio sealbox / dump piped to zstd -1: {ratio_zst:.2f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
