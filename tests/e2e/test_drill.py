"""`sealbox drill system|recordings` on a recovery host, against real database servers: the newest
system backup restores into throwaway databases holding exactly the rows its dumps declare; a
dump that does not load fails the drill and alerts; the appliance reads the signed receipt in
`status` without any private key, and ignores receipts the storage side made up."""

from __future__ import annotations

import json
import secrets

import pytest

from sealbox.demo import appliance as demo_appliance
from tests.integration.test_database_dumps import _mysql, _psql
from tests.receivers import SyslogReceiver, parse_rfc5424

pytestmark = [pytest.mark.postgres, pytest.mark.mariadb]


@pytest.fixture
def databases():
    """A PostgreSQL and a MariaDB database of the appliance, with tables and rows."""
    name = f"sbx_drill_{secrets.token_hex(4)}"
    _psql(f"CREATE DATABASE {name}")
    _psql(
        "CREATE TABLE accounts (id int PRIMARY KEY, note text);"
        " INSERT INTO accounts SELECT g, E'multi\\nline ' || g FROM generate_series(1, 2500) g;"
        ' CREATE TABLE "Audit Log" (at timestamptz DEFAULT now());'
        ' INSERT INTO "Audit Log" SELECT FROM generate_series(1, 7);'
        " CREATE TABLE empty_one (x int);",
        name,
    )
    _mysql(
        f"CREATE DATABASE {name}; USE {name};"
        " CREATE TABLE targets (id INT PRIMARY KEY, host TEXT, blob_col BLOB);"
        " INSERT INTO targets SELECT seq, CONCAT('h(', seq, '),''x'''), UNHEX('00FF')"
        " FROM seq_1_to_1800;"
        " CREATE TABLE `we``ird` (v INT); INSERT INTO `we``ird` VALUES (1),(2),(3);"
    )
    yield name
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _mysql(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def system(appliance, databases):
    demo_appliance.create_system(appliance.root)
    with appliance.config.open("a") as handle:
        handle.write(
            '\n[[system.databases]]\ntype = "postgresql"\n'
            f'url = "postgresql://postgres@127.0.0.1:5432/{databases}"\n'
            '\n[[system.databases]]\ntype = "mariadb"\n'
            f'url = "mysql://root@127.0.0.1:3306/{databases}"\n'
        )
    return appliance


def _backup(sealbox, system) -> dict:
    result = sealbox("backup", "system", "--config", system.config, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _drill(sealbox, system, *extra: str):
    return sealbox(
        "drill", "system", *system.share_args(1, 2, 4), "--config", system.config, "--json", *extra
    )


def _proven(sealbox, system) -> dict | None:
    status = sealbox("status", "--config", system.config, "--json")
    assert status.code == 0, status.err
    kind = next(k for k in json.loads(status.out)["kinds"] if k["kind"] == "system")
    return kind["proven"]


def _leftovers() -> tuple[str, str]:
    pg = _psql("SELECT datname FROM pg_database WHERE datname LIKE 'sealbox_drill_%'")
    my = _mysql("SHOW DATABASES LIKE 'sealbox_drill_%'")
    return pg.strip(), my.strip()


def test_drill_proves_the_newest_system_backup_and_status_shows_it(system, sealbox, databases):
    assert _proven(sealbox, system) is None  # never drilled
    summary = _backup(sealbox, system)

    result = _drill(sealbox, system)  # no --scratch: temporary servers started for the drill
    assert result.code == 0, result.err + result.out
    receipt = json.loads(result.out)
    assert receipt["result"] == "passed" and receipt["snapshot"] == summary["snapshot"]
    checks = {
        c["name"].split(" ")[1] if " " in c["name"] else c["name"]: c for c in receipt["checks"]
    }
    assert checks["files"]["result"] == "passed"
    assert (
        checks["files"]["figures"]["checked"] == summary["files"] - 0
        or checks["files"]["figures"]["checked"] > 160
    )
    by_type = {
        c["name"].split(" ")[1]: c for c in receipt["checks"] if c["name"].startswith("database")
    }
    assert by_type["postgresql"]["figures"] == {
        "tables": 3,
        "rows": 2507,
        "bytes": by_type["postgresql"]["figures"]["bytes"],
    }
    assert (
        by_type["mariadb"]["figures"]["tables"] == 2
        and by_type["mariadb"]["figures"]["rows"] == 1803
    )
    assert by_type["sqlite"]["result"] == "passed"

    proven = _proven(sealbox, system)  # the appliance reads it without any private key
    assert proven["result"] == "passed" and proven["snapshot"] == summary["snapshot"]
    assert proven["last_passed"] == proven["time"]
    assert {c["name"] for c in proven["checks"]} == {c["name"] for c in receipt["checks"]}

    # On a named scratch server: throwaway databases only, dropped afterwards.
    on_server = _drill(
        sealbox,
        system,
        "--scratch",
        "postgresql://postgres@127.0.0.1:5432",
        "--scratch",
        "mysql://root@127.0.0.1:3306",
    )
    assert on_server.code == 0, on_server.err + on_server.out
    details = " ".join(c["detail"] for c in json.loads(on_server.out)["checks"])
    assert "127.0.0.1:5432" in details and "127.0.0.1:3306" in details
    assert _leftovers() == ("", "")


def test_a_dump_that_does_not_load_fails_the_drill_and_alerts(system, sealbox, databases):
    siem = SyslogReceiver("tcp").start()
    try:
        _backup(sealbox, system)
        assert _drill(sealbox, system).code == 0
        passed = _proven(sealbox, system)
        # A real way for pg_dump output not to load: a CHECK constraint whose function reads
        # another table, which is still empty when the checked table's rows are copied in.
        _psql(
            "CREATE TABLE z_allowed (id int); INSERT INTO z_allowed VALUES (1);"
            " CREATE FUNCTION allowed(int) RETURNS bool LANGUAGE sql"
            " AS 'SELECT EXISTS (SELECT 1 FROM public.z_allowed WHERE id = $1)';"
            " CREATE TABLE a_checked (id int CHECK (allowed(id))); INSERT INTO a_checked VALUES (1);",
            databases,
        )
        with system.config.open("a") as handle:
            handle.write(
                f'\n[alerts]\nsyslog = {{ host = "127.0.0.1", port = {siem.port},'
                ' transport = "tcp" }\n'
            )
        broken = _backup(sealbox, system)
        failed = _drill(sealbox, system)
        assert failed.code == 5, failed.err
        receipt = json.loads(failed.out)
        assert receipt["result"] == "failed" and receipt["snapshot"] == broken["snapshot"]
        pg = next(c for c in receipt["checks"] if c["name"].startswith("database postgresql"))
        assert pg["result"] == "failed" and "did not load (psql:<stdin>:" in pg["detail"]
        # The server's own words stay on the drill host: a dump could fill them with what the
        # drill host can read, and the receipt goes back to the appliance.
        assert "a_checked" not in pg["detail"]
        assert any("a_checked" in w for w in receipt["warnings"])
        others = [c for c in receipt["checks"] if c is not pg]
        assert all(c["result"] == "passed" for c in others)

        events = [parse_rfc5424(m) for m in siem.wait(2)]  # the backup's, the drill's
        drills = [e for e in events if e["msgid"].startswith("drill.")]
        assert [e["msgid"] for e in drills] == ["drill.failed"]
        assert "database postgresql" in drills[0]["msg"] and "a_checked" not in drills[0]["msg"]

        proven = _proven(sealbox, system)
        assert proven["result"] == "failed" and proven["last_passed"] == passed["time"]
        assert _leftovers() == ("", "")
    finally:
        siem.stop()


def test_status_ignores_receipts_the_storage_side_made_or_changed(system, sealbox):
    _backup(sealbox, system)
    assert _drill(sealbox, system).code == 0
    drills = system.remote / "repo" / "drills"
    (real,) = list(drills.iterdir())
    data = bytearray(real.read_bytes())
    # The storage side cannot seal a receipt (no index key): junk, a flipped byte, a copy
    # under another name all prove nothing.
    (drills / ("0" * 64)).write_bytes(b"junk")
    data[len(data) // 2] ^= 1
    (drills / ("1" * 64)).write_bytes(bytes(data))
    real.unlink()
    assert _proven(sealbox, system) is None


def test_recordings_drill_samples_and_catches_a_damaged_pack(appliance, sealbox):
    demo_appliance.create_recordings(appliance.root, count=12)
    stored = sealbox("backup", "recordings", "--config", appliance.config, "--json")
    assert stored.code == 0, stored.err

    def drill(*extra: str):
        return sealbox(
            "drill",
            "recordings",
            *appliance.share_args(2, 3, 5),
            "--config",
            appliance.config,
            "--json",
            *extra,
        )

    sampled = drill("--sample", "5")
    assert sampled.code == 0, sampled.err + sampled.out
    (check,) = json.loads(sampled.out)["checks"]
    assert check["result"] == "passed"
    assert check["figures"]["sampled"] == 5 and check["figures"]["restored"] == 5
    assert check["figures"]["total"] == 12

    packs = sorted((appliance.remote / "repo" / "data").rglob("*"))
    pack = max((p for p in packs if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0x10  # bit rot in the biggest pack, inside some recording
    pack.write_bytes(bytes(data))
    everything = drill("--sample", "12")
    assert everything.code == 5, everything.err
    receipt = json.loads(everything.out)
    assert receipt["result"] == "failed"
    status = json.loads(sealbox("status", "--config", appliance.config, "--json").out)
    proven = next(k for k in status["kinds"] if k["kind"] == "recordings")["proven"]
    assert proven["result"] == "failed" and proven["last_passed"] is not None


def test_not_proven_for_too_long_alerts_once_and_a_passed_drill_ends_it(system, sealbox):
    from datetime import UTC, datetime, timedelta

    from sealbox.alerts.report import check_proven
    from sealbox.config.load import load_config

    siem = SyslogReceiver("tcp").start()
    try:
        with system.config.open("a") as handle:
            handle.write(
                f'\n[drills]\nalert_after_days = 7\n\n[alerts]\nsyslog = {{ host = "127.0.0.1",'
                f' port = {siem.port}, transport = "tcp" }}\n'
            )
        config = load_config(system.config)
        now = datetime.now(UTC)
        assert check_proven(config, "system", "remote", None, now)  # the clock starts now
        later = now + timedelta(days=8)
        assert not check_proven(config, "system", "remote", None, later)
        assert not check_proven(config, "system", "remote", None, later)  # no second alert
        (event,) = [parse_rfc5424(m) for m in siem.wait(1)]
        assert event["msgid"] == "drill.not_proven" and "never" in event["msg"]
        recent = (later - timedelta(days=1)).isoformat().replace("+00:00", "Z")
        assert check_proven(config, "system", "remote", recent, later)
        stale = (later - timedelta(days=9)).isoformat().replace("+00:00", "Z")
        assert not check_proven(config, "system", "remote", stale, later)
        assert len(siem.wait(2)) == 2  # a new condition: alerted again
    finally:
        siem.stop()


def test_with_pinned_drill_signers_only_their_receipts_count(system, sealbox):
    _backup(sealbox, system)
    drilled = _drill(sealbox, system)
    assert drilled.code == 0
    signer = json.loads(drilled.out)["signer"]
    assert signer.startswith("ssh-ed25519 ")
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIeD7Bz5Sae7gQ1OQJm6sLZbqVsLq0HkJ4yKkS0kDfkQ"
    text = system.config.read_text()
    system.config.write_text(text + f'\n[drills]\nsigners = ["{other}"]\n')
    assert _proven(sealbox, system) is None  # a repository key holder's receipt: not pinned
    system.config.write_text(text + f'\n[drills]\nsigners = ["{signer}"]\n')
    assert _proven(sealbox, system)["signer"] == signer
    system.config.write_text(text + '\n[drills]\nsigners = ["ssh-ed25519 nope"]\n')
    bad = sealbox("status", "--config", system.config)
    assert bad.code == 3 and "drills.signers" in bad.err


def test_a_recovery_host_daemon_runs_drills_and_the_appliance_sees_them(system, sealbox, tmp_path):
    import httpx

    from tests.daemons import DaemonProcess, appliance_toml
    from tests.servers import free_port

    summary = _backup(sealbox, system)
    identity = tmp_path / "recovery" / "drill.key"
    identity.parent.mkdir()
    combined = sealbox("keys", "combine", *system.share_args(1, 3, 5), "--out", identity)
    assert combined.code == 0, combined.err
    # The recovery host: its own state, the appliance's destination, nothing to back up.
    port = free_port()
    token = tmp_path / "recovery" / "token"
    token.write_text("recovery-t0ken\n")
    config = tmp_path / "recovery" / "sealbox.toml"
    config.write_text(
        appliance_toml(tmp_path / "recovery", tmp_path / "recovery" / "var")
        + f"""
[destinations.offsite]
url = "file://{system.remote}"
allow_on_appliance = true
[drills]
destination = "offsite"
schedule = "0 3 * * 0"
kinds = ["system"]
identity_file = "{identity}"
[daemon]
listen = "127.0.0.1:{port}"
token_file = "{token}"
"""
    )
    daemon = DaemonProcess(config, port)
    try:
        auth = {"Authorization": "Bearer recovery-t0ken"}
        started = httpx.post(f"{daemon.base}/api/run/drill-system", headers=auth, timeout=10)
        assert started.status_code == 202, started.text
        run = daemon.wait_for(
            lambda: next(
                (r for r in daemon.history(kind="drill-system") if r["result"] != "running"),
                None,
            ),
            120,
            "the drill",
        )
        assert run["result"] == "success", run
        assert run["snapshot"] == summary["snapshot"]
    finally:
        daemon.stop()
    proven = _proven(sealbox, system)
    assert proven["result"] == "passed" and proven["snapshot"] == summary["snapshot"]

    # The appliance's /metrics: last proven restorable, from the same status document.
    from sealbox.config.load import load_config
    from sealbox.daemon.api import collect_metrics
    from sealbox.state.history import History
    from sealbox.usecases.status import collect

    appliance_config = load_config(system.config)
    History(appliance_config.appliance.state_dir).close()  # as the appliance's daemon made it
    text = collect_metrics(appliance_config, {"jobs": {}, "started": 0}, collect(appliance_config))
    assert 'sealbox_drill_success{kind="system"} 1' in text
    assert 'sealbox_last_proven_timestamp_seconds{kind="system"}' in text
    assert 'kind="recordings"' not in text.split("sealbox_drill_timestamp_seconds")[-1]


def test_a_restored_file_that_does_not_read_back_fails_the_files_check(
    system, sealbox, monkeypatch
):
    """A scratch disk that loses or changes what was written (injected after the real restore
    wrote it): the read-back against the snapshot's digests names both files."""
    from sealbox.usecases import drill

    real = drill.run_restore
    hurt: list[str] = []

    def faulty_disk(repo, index, reader, plan, target, **kw):
        result = real(repo, index, reader, plan, target, **kw)
        files = sorted(p for p in target.rglob("*.yaml") if p.is_file())
        changed, lost = files[0], files[1]
        data = bytearray(changed.read_bytes())
        data[0] ^= 1
        changed.write_bytes(bytes(data))
        lost.unlink()
        hurt.extend(f"/{p.relative_to(target)}" for p in (changed, lost))
        return result

    monkeypatch.setattr(drill, "run_restore", faulty_disk)
    _backup(sealbox, system)
    result = _drill(sealbox, system)
    assert result.code == 5
    files = next(c for c in json.loads(result.out)["checks"] if c["name"] == "files")
    assert files["result"] == "failed"
    assert f"{hurt[0]}: differs from the snapshot" in files["detail"]
    assert f"{hurt[1]}: missing after the restore" in files["detail"]


def test_receipts_a_repository_key_holder_seals_cannot_crash_or_freeze_status(system, sealbox):
    """Whoever holds the index key can seal a receipt: a malformed one is ignored, one dated in
    the future is ignored and named, and neither hides the real drill."""
    from dataclasses import replace

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sealbox.config.load import load_config
    from sealbox.destinations.repos import open_product_repo
    from sealbox.repo import drills
    from sealbox.repo import format as fmt

    _backup(sealbox, system)
    assert _drill(sealbox, system).code == 0
    real = _proven(sealbox, system)
    repo, _ = open_product_repo(load_config(system.config), "remote", [], create=False)
    (genuine,) = drills.receipts(repo, "system")
    for doc in (
        {**genuine.to_dict(), "signature": 1},
        {**genuine.to_dict(), "seconds": "x"},
        {**genuine.to_dict(), "time": "not a time"},
        {**genuine.to_dict(), "checks": [{"name": 5}]},
    ):
        data = fmt.seal_json(repo.keys.index_key, b"drill", doc)
        repo.backend.put(f"drills/{fmt.content_name(data)}", data)
    future = replace(genuine, time="2999-01-01T00:00:00.000Z", result="passed")
    drills.store(repo, future, Ed25519PrivateKey.generate())
    result = sealbox("status", "--config", system.config, "--json")
    assert result.code == 0, result.err
    kind = next(k for k in json.loads(result.out)["kinds"] if k["kind"] == "system")
    proven = kind["proven"]
    assert proven["time"] == real["time"]
    assert len(proven["problems"]) == 1 and "in the future" in proven["problems"][0]
    assert proven["proven_through"] and proven["newer_snapshots"] == 0
