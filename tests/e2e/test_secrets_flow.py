"""The break-the-glass story, driven through the CLI as operators and custodians would."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from pykeepass import PyKeePass

from tests.conftest import make_appliance


def _backup(sealbox, appliance):
    result = sealbox("backup", "secrets", "--config", appliance.config, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_backup_then_open_with_a_quorum(appliance, sealbox):
    summary = _backup(sealbox, appliance)
    assert summary["total"] == 90 and summary["counts"]["certificate"] == 15
    assert "NOT off the appliance" in summary["warnings"][0]
    backup = appliance.backups()[0]
    assert backup.name == summary["file"]
    listed = sealbox("breakglass", "open", backup, *appliance.share_args(1, 2, 3), "list", "--json")
    assert listed.code == 0, listed.err
    items = json.loads(listed.out)
    assert len(items) == 90 and "secret" not in items[0]

    found = sealbox(
        "breakglass", "open", backup, *appliance.share_args(5, 3, 1), "search", "admin", "--json"
    )
    hits = json.loads(found.out)
    assert hits and all("admin" in h["name"] for h in hits)

    item_id = hits[0]["id"]
    masked = sealbox("breakglass", "open", backup, *appliance.share_args(2, 3, 4), "show", item_id)
    assert masked.code == 0 and "********" in masked.out and "--reveal" in masked.out
    shown = sealbox(
        "breakglass",
        "open",
        backup,
        *appliance.share_args(2, 3, 4),
        "show",
        item_id,
        "--reveal",
        "--json",
    )
    item = json.loads(shown.out)
    assert item["id"] == item_id and len(item["secret"]["password"]) == 20 and item["history"]


def test_exports_json_csv_kdbx(appliance, sealbox, tmp_path):
    _backup(sealbox, appliance)
    backup = appliance.backups()[0]
    shares = appliance.share_args(1, 2, 3)
    for fmt in ("json", "csv"):
        out = tmp_path / f"export.{fmt}"
        result = sealbox(
            "breakglass", "open", backup, *shares, "export", "--format", fmt, "--out", out
        )
        assert result.code == 0, result.err
        assert (out.stat().st_mode & 0o777) == 0o600
    assert len(json.loads((tmp_path / "export.json").read_text())["items"]) == 90
    rows = list(csv.DictReader((tmp_path / "export.csv").open()))
    assert len(rows) == 90 and rows[0]["password"]
    again = sealbox(
        "breakglass",
        "open",
        backup,
        *shares,
        "export",
        "--format",
        "json",
        "--out",
        tmp_path / "export.json",
    )
    assert again.code == 10 and "exists already" in again.err

    pw = tmp_path / "kdbx.pw"
    pw.write_text("correct horse\n")
    out = tmp_path / "vault.kdbx"
    result = sealbox(
        "breakglass",
        "open",
        backup,
        *shares,
        "export",
        "--format",
        "kdbx",
        "--out",
        out,
        "--password-file",
        pw,
    )
    assert result.code == 0, result.err
    assert (out.stat().st_mode & 0o777) == 0o600
    kp = PyKeePass(str(out), password="correct horse")
    assert kp.version[0] == 4
    assert len(kp.entries) == 90
    entry = kp.find_entries(title="cred-00000", first=True) or kp.entries[0]
    assert entry.get_custom_property("sealbox_id")
    with_history = [e for e in kp.entries if e.history]
    assert with_history, "older versions become KeePass history"


def test_verify_without_any_key(appliance, sealbox):
    _backup(sealbox, appliance)
    backup = appliance.backups()[0]
    result = sealbox("breakglass", "verify", backup, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["ok"] and report["counts"]["credential"] == 15 and not report["signer_checked"]
    signer = (appliance.root / "appliance" / "state" / "keystore" / "signing_key.pub").read_text()
    pinned = sealbox("breakglass", "verify", backup, "--signer", signer.strip())
    assert pinned.code == 0 and "expected appliance key" in pinned.out


def test_keys_drill_and_list(appliance, sealbox):
    _backup(sealbox, appliance)
    drill = sealbox("keys", "drill", *appliance.share_args(1, 4, 5), "--config", appliance.config)
    assert drill.code == 0 and "OK" in drill.out
    listed = json.loads(sealbox("keys", "list", "--config", appliance.config, "--json").out)
    assert len(listed) == 1 and listed[0]["current"] and listed[0]["last_drill"]
    assert listed[0]["backups"] == [appliance.backups()[0].name]


def test_new_ceremony_keeps_old_backups_openable_with_old_shares(appliance, sealbox, tmp_path):
    _backup(sealbox, appliance)
    old_backup = appliance.backups()[0]
    result = sealbox(
        "keys",
        "ceremony",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--out",
        tmp_path / "new",
        "--config",
        appliance.config,
    )
    assert result.code == 0, result.err
    _backup(sealbox, appliance)
    new_backup = next(b for b in appliance.backups() if b != old_backup)
    new_shares = [
        "--share",
        str(tmp_path / "new" / "share-01.txt"),
        "--share",
        str(tmp_path / "new" / "share-03.txt"),
    ]

    assert (
        sealbox("breakglass", "open", old_backup, *appliance.share_args(1, 2, 3), "list").code == 0
    )
    assert sealbox("breakglass", "open", new_backup, *new_shares, "list").code == 0
    wrong = sealbox("breakglass", "open", old_backup, *new_shares, "list")
    assert wrong.code == 4 and "was made for key" in wrong.err

    keys = json.loads(sealbox("keys", "list", "--config", appliance.config, "--json").out)
    assert [k["current"] for k in keys] == [False, True]
    assert keys[0]["backups"] == [old_backup.name] and keys[1]["backups"] == [new_backup.name]
    # The drill proves the *current* key only.
    stale = sealbox("keys", "drill", *appliance.share_args(1, 2, 3), "--config", appliance.config)
    assert stale.code == 4 and "older key" in stale.err


def test_passphrase_protected_shares(tmp_path, sealbox):
    appliance = make_appliance(tmp_path, sealbox)
    pw = tmp_path / "pass"
    pw.write_text("river stone lamp\n")
    result = sealbox(
        "keys",
        "ceremony",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--out",
        tmp_path / "pp",
        "--passphrase-file",
        pw,
        "--config",
        appliance.config,
    )
    assert result.code == 0, result.err
    _backup(sealbox, appliance)
    backup = appliance.backups()[0]
    shares = [
        "--share",
        str(tmp_path / "pp" / "share-01.txt"),
        "--share",
        str(tmp_path / "pp" / "share-02.txt"),
    ]
    ok = sealbox("breakglass", "open", backup, *shares, "--passphrase-file", pw, "list")
    assert ok.code == 0, ok.err
    missing = sealbox("breakglass", "open", backup, *shares, "list")
    assert missing.code == 4 and "--passphrase" in missing.err
    pw.write_text("river stone lump\n")
    wrong = sealbox("breakglass", "open", backup, *shares, "--passphrase-file", pw, "list")
    assert wrong.code == 4 and "wrong passphrase" in wrong.err


def test_retention_keeps_last_n(appliance, sealbox):
    text = appliance.config.read_text().replace("keep_last = 10", "keep_last = 2")
    appliance.config.write_text(text)
    for _ in range(4):
        _backup(sealbox, appliance)
    assert len(appliance.backups()) == 2
    assert len(list(appliance.remote.iterdir())) == 9  # 2 x 4 files, and the browser opener


def test_console_script_entry_point_runs(appliance):
    done = subprocess.run(
        [sys.executable, "-m", "sealbox", "config", "check", "--config", str(appliance.config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout


def test_no_secret_reaches_disk_or_output(appliance, sealbox):
    """Plaintext never touches disk (outside the vault itself) and never appears in output."""
    import sqlite3

    with sqlite3.connect(appliance.root / "appliance" / "vault.db") as db:
        secrets = [
            r[0] for r in db.execute("SELECT password FROM items WHERE password IS NOT NULL")
        ]
        secrets += [
            r[0] for r in db.execute("SELECT api_secret FROM items WHERE api_secret IS NOT NULL")
        ]
    assert len(secrets) > 20
    outputs = []
    for args in (["backup", "secrets", "--json"], ["backup", "secrets"], ["keys", "list"]):
        result = sealbox(*args, "--config", appliance.config)
        assert result.code == 0
        outputs.append(result.out + result.err)
    backup = appliance.backups()[-1]
    result = sealbox("breakglass", "open", backup, *appliance.share_args(1, 2, 3), "list")
    outputs.append(result.out + result.err)
    blob = "\n".join(outputs)
    assert not [s for s in secrets if s in blob]
    for path in appliance.root.rglob("*"):
        if path.is_file() and path.name != "vault.db":
            data = path.read_bytes()
            leaked = [s for s in secrets if s.encode() in data]
            assert not leaked, f"{path} holds a plaintext secret"


def test_side_files_left_by_an_interrupted_run_are_removed_by_the_next(appliance, sealbox):
    """A run that died between writing the .sig/.manifest.json and the .age leaves side files
    with no backup; the next run's retention step removes those, and only those."""
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    (kept,) = appliance.backups()
    orphan = appliance.remote / "secrets-demo-pam-20200101T000000Z.age"
    for suffix in (".sig", ".manifest.json"):
        orphan.with_name(orphan.name + suffix).write_text("left by an interrupted run")
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    names = sorted(p.name for p in appliance.remote.glob("secrets-*"))
    assert not [n for n in names if n.startswith(orphan.name)]
    for backup in appliance.backups():  # every complete backup keeps its side files
        assert {backup.name + ".sig", backup.name + ".manifest.json"} <= set(names)
    assert kept in appliance.backups() and len(appliance.backups()) == 2


def test_side_files_are_cleaned_even_without_a_retention_rule(tmp_path):
    """apply_retention with no rule (keep_last and keep_within unset) keeps every backup but
    still removes side files whose backup never landed."""
    from datetime import UTC, datetime

    from sealbox.backends import open_backend
    from sealbox.usecases.secrets_backup import apply_retention

    backend = open_backend(f"file://{tmp_path}")
    for name in ("secrets-pam-20260101T000000Z.age", "secrets-pam-20260102T000000Z.age"):
        for suffix in ("", ".sig", ".manifest.json"):
            backend.put(name + suffix, b"x")
    backend.put("secrets-pam-20200101T000000Z.age.sig", b"left by an interrupted run")
    deleted = apply_retention(
        backend, "pam", None, None, datetime.now(UTC), "secrets-pam-20260102T000000Z.age"
    )
    names = sorted(info.name for info in backend.list(""))
    assert deleted == [] and len(names) == 6
    assert "secrets-pam-20200101T000000Z.age.sig" not in names
