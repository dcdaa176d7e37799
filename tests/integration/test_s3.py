"""The repository, the secrets backup and the system backup on S3 (SeaweedFS on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime

import pytest

from sealbox.backends import open_backend
from sealbox.crypto import agekeys
from sealbox.errors import DestinationError, SealboxError
from sealbox.keys.store import Keystore
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.repository import Repository
from sealbox.repo.restore import plan_restore, run_restore
from tests.conftest import make_tree


def test_repository_roundtrip_on_s3(s3_env, tmp_path):
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    identities = agekeys.load_identities(identity, "t")
    Repository.init(open_backend(s3_env), [agekeys.recipient_of(identity)], tmp_path / "state")
    src = make_tree(tmp_path / "src", big=20_000_000)  # packs large enough for multipart uploads
    writer = Repository.open_writer(open_backend(s3_env), tmp_path / "state")
    first = run_backup(writer, [src], state_dir=tmp_path / "state")
    again = run_backup(
        Repository.open_writer(open_backend(s3_env), tmp_path / "state"),
        [src],
        state_dir=tmp_path / "state",
    )
    assert again.blobs_added == 0
    repo = Repository.open(open_backend(s3_env), identities, Keystore(tmp_path / "state").trust())
    from sealbox.repo.blobs import BlobReader

    reader = BlobReader(repo, repo.load_index(), identities)
    assert run_check(repo, reader=reader, read_data=True).ok
    plan = plan_restore(
        repo, reader.index, reader, repo.find_snapshot(first.snapshot.id), tmp_path / "out"
    )
    assert not run_restore(repo, reader.index, reader, plan, tmp_path / "out").failed
    copy = tmp_path / "out" / str(src).lstrip("/")
    assert (copy / "var" / "rec.bin").read_bytes() == (src / "var" / "rec.bin").read_bytes()


def test_wrong_credentials_are_refused_without_leaking_them(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "definitely-wrong-secret")
    backend = open_backend(s3_env)
    try:
        list(backend.list(""))
    except DestinationError as exc:
        assert "SignatureDoesNotMatch" in str(exc) or "AccessDenied" in str(exc)
        assert "definitely-wrong-secret" not in str(exc)
    else:
        raise AssertionError("wrong credentials were accepted")


def test_product_backups_to_s3(appliance, sealbox, s3_env, monkeypatch):
    from sealbox.demo import appliance as demo_appliance

    demo_appliance.create_system(appliance.root)
    text = appliance.config.read_text().replace(
        f'url = "file://{appliance.remote}"', f'url = "{s3_env}"'
    )
    appliance.config.write_text(text)
    secrets = sealbox("backup", "secrets", "--config", appliance.config, "--json")
    assert secrets.code == 0, secrets.err
    system = sealbox("backup", "system", "--config", appliance.config, "--json")
    assert system.code == 0, system.err
    snaps = json.loads(sealbox("snapshots", "--config", appliance.config, "--json").out)
    assert len(snaps) == 1
    restore = sealbox(
        "restore",
        "system",
        "latest",
        "--target",
        appliance.root / "rebuild",
        "--include",
        "*/pam.conf",
        *appliance.share_args(1, 2, 3),
        "--config",
        appliance.config,
    )
    assert restore.code == 0, restore.err
    # The break-glass file opens from a download, as a custodian would get it.
    backend = open_backend(s3_env)
    name = next(o.name for o in backend.list("secrets-") if o.name.endswith(".age"))
    local = appliance.root / "download"
    local.mkdir()
    for suffix in ("", ".sig", ".manifest.json"):
        (local / (name + suffix)).write_bytes(backend.get(name + suffix))
    opened = sealbox(
        "breakglass", "open", local / name, *appliance.share_args(1, 2, 3), "list", "--json"
    )
    assert opened.code == 0 and len(json.loads(opened.out)) == 90


def test_destination_lost_mid_backup_then_the_next_run_completes(s3_server, s3_env, tmp_path):
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    Repository.init(open_backend(s3_env), [agekeys.recipient_of(identity)], tmp_path / "state")
    src = tmp_path / "src"
    src.mkdir()
    for n in range(30):
        (src / f"rec{n}.bin").write_bytes(os.urandom(8_000_000))
    outcome: dict[str, object] = {}

    def backup() -> None:
        try:
            outcome["result"] = run_backup(
                Repository.open_writer(open_backend(s3_env), tmp_path / "state"),
                [src],
                state_dir=tmp_path / "state",
            )
        except SealboxError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=backup)
    thread.start()
    watcher = open_backend(s3_env)
    deadline = time.monotonic() + 60
    while not any(True for _ in watcher.list("data/")) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the first pack is stored, however busy the machine is
    s3_server.stop()  # the storage server goes away in the middle of the run
    thread.join(timeout=300)
    s3_server.start()
    assert "error" in outcome, "the run must fail when its destination disappears"
    assert "cannot" in str(outcome["error"]) and "Traceback" not in str(outcome["error"])
    repo = Repository.open_writer(open_backend(s3_env), tmp_path / "state")
    assert repo.snapshots() == [], "nothing half-published"
    done = run_backup(repo, [src], state_dir=tmp_path / "state")
    assert done.snapshot.files == 30
    assert done.recovered_packs > 0 and done.bytes_added < 240_000_000, (
        "what was uploaded is reused"
    )
    assert run_check(Repository.open_writer(open_backend(s3_env), tmp_path / "state")).ok


def test_object_lock_keeps_history_undeletable(s3_server, monkeypatch, tmp_path):
    import boto3

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.bucket("sealbox-locked", lock=True)
    url = f"s3://{bucket}/repo?endpoint={s3_server.endpoint}&lock_days=1"
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    Repository.init(open_backend(url), [agekeys.recipient_of(identity)], tmp_path / "state")
    src = make_tree(tmp_path / "src", big=1_000_000)
    snap = run_backup(
        Repository.open_writer(open_backend(url), tmp_path / "state"),
        [src],
        state_dir=tmp_path / "state",
    ).snapshot
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    key = f"repo/snapshots/{snap.id}"
    assert client.get_object_retention(Bucket=bucket, Key=key)["Retention"]["Mode"] == "COMPLIANCE"
    version = client.head_object(Bucket=bucket, Key=key)["VersionId"]
    try:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    except Exception as exc:
        assert "AccessDenied" in str(exc)
    else:
        raise AssertionError("a locked version was deleted")
    assert not [
        o for o in client.list_objects_v2(Bucket=bucket, Prefix="repo/locks/").get("Contents", [])
    ]


def test_object_lock_days_from_the_config_reaches_the_bucket(s3_server, monkeypatch, tmp_path):
    """``object_lock_days`` in ``[destinations.*]`` (not only ``?lock_days=`` in the URL) locks
    what the appliance stores, for that many days."""
    import boto3

    from sealbox.config.load import validate
    from sealbox.destinations.repos import destination_backend

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.bucket("sealbox-config-lock", lock=True)
    config, problems = validate(
        {
            "appliance": {"name": "pam-01", "state_dir": str(tmp_path / "state")},
            "destinations": {
                "cloud": {
                    "url": f"s3://{bucket}/d?endpoint={s3_server.endpoint}",
                    "object_lock_days": 3,
                }
            },
        }
    )
    assert config is not None, problems
    backend = destination_backend(config, "cloud")
    backend.put("data/ab/" + "ab" * 32, b"sealed bytes")
    backend.put("locks/" + "0" * 32, b"a lock")
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    retention = client.get_object_retention(Bucket=bucket, Key="d/data/ab/" + "ab" * 32)
    assert retention["Retention"]["Mode"] == "COMPLIANCE"
    days = (retention["Retention"]["RetainUntilDate"] - datetime.now(UTC)).total_seconds() / 86400
    assert 2.9 < days <= 3.0
    backend.delete("locks/" + "0" * 32)  # locks stay deletable
    assert not client.list_objects_v2(Bucket=bucket, Prefix="d/locks/").get("Contents")
    # A cluster lease: the takeover is locked like data, its renewals (replaced every few
    # seconds) are not, so they pile up no undeletable versions.
    from sealbox.destinations import lease

    lease.take(backend, 1, "pam-01a")
    lease.write_beat(backend, lease.Beat(1, "pam-01a"))
    taken = client.get_object_retention(Bucket=bucket, Key="d/cluster/lease-000000000001")
    assert taken["Retention"]["Mode"] == "COMPLIANCE"
    with pytest.raises(client.exceptions.ClientError):
        client.get_object_retention(Bucket=bucket, Key="d/cluster/beat-000000000001")


def test_probe_every_destination(appliance, sealbox, s3_env, tmp_path):
    text = (
        appliance.config.read_text()
        + f'\n[destinations.cloud]\nurl = "{s3_env}"\nallow_on_appliance = true\n'
    )
    appliance.config.write_text(text)
    result = sealbox("probe", "--config", appliance.config, "--json")
    assert result.code == 0, result.err
    probes = {p["destination"]: p for p in json.loads(result.out)}
    assert (
        probes["remote"]["ok"] and probes["remote"]["filesystem"] and probes["remote"]["free"] > 0
    )
    assert probes["cloud"]["ok"] and probes["cloud"]["write_ms"] >= 0
    assert list(open_backend(s3_env).list("probes/")) == []  # the canary is gone
    broken = text.replace(
        s3_env, s3_env.replace("endpoint=http://127.0.0.1:", "endpoint=http://127.0.0.1:1")
    )
    appliance.config.write_text(broken)
    failed = sealbox("probe", "--destination", "cloud", "--config", appliance.config)
    assert failed.code == 7 and "UNREACHABLE" in failed.out


def test_a_legal_hold_puts_the_snapshots_objects_under_an_s3_legal_hold(
    s3_server, monkeypatch, tmp_path, sealbox
):
    """On S3 with Object Lock, `hold add` sets an S3 legal hold on every object the held
    snapshot needs (not even the bucket's credentials delete those versions while it lasts);
    `hold remove` lifts it from what no other hold needs."""
    import boto3

    from tests.daemons import RECIPIENT, appliance_toml

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.bucket("sealbox-legal-hold", lock=True)
    vault2 = s3_server.bucket("sealbox-legal-hold-copy", lock=True)
    src = make_tree(tmp_path / "src", big=300_000)
    config = tmp_path / "sealbox.toml"
    config.write_text(
        appliance_toml(tmp_path, tmp_path / "var")
        + f"""
[keys]
recipients = ["{RECIPIENT}"]
[destinations.cloud]
url = "s3://{bucket}/pam?endpoint={s3_server.endpoint}"
object_lock_days = 1
allow_on_appliance = true
[destinations.vault2]
url = "s3://{vault2}/pam?endpoint={s3_server.endpoint}"
object_lock_days = 1
allow_on_appliance = true
[system]
destination = "cloud"
paths = ["{src}"]
[[copies]]
from = "cloud"
to = "vault2"
"""
    )
    first = sealbox("backup", "system", "--config", config, "--json")
    assert first.code == 0, first.err
    (src / "later.txt").write_text("a second snapshot")
    second = sealbox("backup", "system", "--config", config, "--json")
    assert second.code == 0, second.err
    held_id = json.loads(first.out)["snapshot"]
    other_id = json.loads(second.out)["snapshot"]

    added = sealbox("hold", "add", held_id, "--reason", "case 7", "--config", config, "--json")
    assert added.code == 0, added.err
    hold = json.loads(added.out)
    assert hold["legal_hold_objects"] > 4
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")

    def status(key: str) -> str:
        try:
            answer = client.get_object_legal_hold(Bucket=bucket, Key=key)
        except client.exceptions.ClientError:
            return "none"
        return answer["LegalHold"]["Status"]

    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    header = next(k for k in keys if k.endswith(f"repo/snapshots/{held_id}"))
    packs = [k for k in keys if "/data/" in k and "/parity/" not in k]
    assert status(header) == "ON"
    assert status(f"pam/repo/parity/snapshots/{held_id}") == "ON"  # what repairs it, too
    assert status(next(k for k in keys if k.endswith(f"repo/snapshots/{other_id}"))) != "ON"
    assert any(status(k) == "ON" for k in packs)

    # A copy to a second Object Lock bucket takes the hold along, and holds the objects there.
    copied = sealbox("copy", "--config", config, "--json")
    assert copied.code == 0, copied.err
    assert json.loads(copied.out)[0]["legal_hold_objects"] == hold["legal_hold_objects"]
    at_copy = client.get_object_legal_hold(Bucket=vault2, Key=header)
    assert at_copy["LegalHold"]["Status"] == "ON"

    removed = sealbox("hold", "remove", hold["id"], "--config", config, "--json")
    assert removed.code == 0, removed.err
    assert json.loads(removed.out)["legal_hold_objects"] >= hold["legal_hold_objects"] - 1
    assert status(header) == "OFF" and not any(status(k) == "ON" for k in packs)
