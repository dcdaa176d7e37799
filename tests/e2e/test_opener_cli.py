"""The browser opener as the CLI ships it, and receipts from the command-line opener to the
rotation tasks on the appliance (`receipt import | list | done`, status, the alert)."""

from __future__ import annotations

import hashlib
import json

from sealbox.breakglass import opener_html
from tests.receivers import SyslogReceiver, parse_rfc5424


def _backup(sealbox, appliance):
    result = sealbox("backup", "secrets", "--config", appliance.config, "--json")
    assert result.code == 0, result.err
    return appliance.backups()[-1]


def test_opener_out_writes_the_shipped_file_and_verify_checks_a_copy(sealbox, tmp_path):
    out = tmp_path / "opener.html"
    written = sealbox("breakglass", "opener", "--out", out)
    assert written.code == 0, written.err
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest == opener_html.opener_sha256() and digest in written.out
    assert sealbox("breakglass", "opener", "--out", out).code == 10  # never over a file
    ok = sealbox("breakglass", "opener", "--verify", out)
    assert ok.code == 0 and "OK" in ok.out
    out.write_bytes(out.read_bytes().replace(b"connect-src 'none'", b"connect-src *   "))
    bad = sealbox("breakglass", "opener", "--verify", out)
    assert bad.code == 5 and "is not this Sealbox's opener" in bad.err
    assert "Traceback" not in bad.err
    missing = sealbox("breakglass", "opener", "--verify", tmp_path / "nope.html")
    assert missing.code == 5 and "no such file" in missing.err


def test_the_sheets_print_the_opener_digest_and_backups_get_the_opener_beside_them(
    appliance, sealbox
):
    assert f"Opener SHA-256: {opener_html.opener_sha256()}" in appliance.shares[0].read_text()
    _backup(sealbox, appliance)
    _backup(sealbox, appliance)
    copies = list(appliance.remote.glob("sealbox-opener-*.html"))
    assert [c.name for c in copies] == [opener_html.destination_name()]  # one copy, not one a run
    assert copies[0].read_bytes() == opener_html.opener_bytes()


def test_show_reveal_and_export_write_receipts_without_share_words(appliance, sealbox, tmp_path):
    backup = _backup(sealbox, appliance)
    shares = appliance.share_args(1, 3, 4)
    masked = sealbox("breakglass", "open", backup, *shares, "show", "cred-00001")
    assert masked.code == 0 and not list(tmp_path.glob("sealbox-receipt-*"))  # nothing revealed
    receipt_path = tmp_path / "r1.json"
    shown = sealbox(
        "breakglass",
        "open",
        backup,
        *shares,
        "--receipt",
        receipt_path,
        "show",
        "cred-00001",
        "--reveal",
    )
    assert shown.code == 0, shown.err
    assert "receipt" in shown.err and str(receipt_path) in shown.err
    receipt = json.loads(receipt_path.read_text())
    assert receipt["opener"] == "cli" and receipt["verified"] is True
    assert receipt["backup"]["file"] == backup.name
    assert [s["index"] for s in receipt["shares"]] == [1, 3, 4]
    assert [(e["action"], [i["id"] for i in e["items"]]) for e in receipt["events"]] == [
        ("reveal", ["cred-00001"])
    ]
    words = appliance.shares[0].read_text().split("BEGIN SHARE")[1].split()[:5]
    assert not any(w in receipt_path.read_text() for w in words if len(w) > 4)

    exported = sealbox(
        "breakglass",
        "open",
        backup,
        *shares,
        "export",
        "--format",
        "csv",
        "--out",
        tmp_path / "all.csv",
    )
    assert exported.code == 0, exported.err
    (auto,) = tmp_path.glob("sealbox-receipt-*.json")  # the default name, in $SEALBOX_RECEIPT_DIR
    event = json.loads(auto.read_text())["events"][0]
    assert event["action"] == "export" and event["format"] == "csv" and len(event["items"]) == 90


def test_a_reveal_is_refused_when_its_receipt_cannot_be_written(appliance, sealbox, tmp_path):
    backup = _backup(sealbox, appliance)
    blocked = tmp_path / "no" / "such" / "dir.json"
    shown = sealbox(
        "breakglass",
        "open",
        backup,
        *appliance.share_args(1, 2, 3),
        "--receipt",
        blocked,
        "show",
        "cred-00001",
        "--reveal",
    )
    assert shown.code == 10 and "cannot write the receipt" in shown.err
    assert "password" not in shown.out  # nothing revealed without a receipt


def test_receipt_import_alerts_lists_rotations_in_status_until_done(appliance, sealbox, tmp_path):
    server = SyslogReceiver("tcp").start()
    try:
        with appliance.config.open("a") as handle:
            handle.write(
                f'\n[alerts]\nsyslog = {{ host = "127.0.0.1", port = {server.port},'
                ' transport = "tcp", format = "leef" }\n'
            )
        backup = _backup(sealbox, appliance)
        receipt_path = tmp_path / "r.json"
        for item in ("cred-00001", "ssh-00002"):
            path = tmp_path / f"{item}.json"
            shown = sealbox(
                "breakglass",
                "open",
                backup,
                *appliance.share_args(1, 2, 3),
                "--receipt",
                path,
                "show",
                item,
                "--reveal",
            )
            assert shown.code == 0, shown.err
        receipt_path = tmp_path / "cred-00001.json"
        imported = sealbox(
            "breakglass", "receipt", "import", receipt_path, "--config", appliance.config, "--json"
        )
        assert imported.code == 0, imported.err
        doc = json.loads(imported.out)
        assert doc["new"] and [t["id"] for t in doc["to_rotate"]] == ["cred-00001"]
        used = [
            line for line in server.wait(2) if parse_rfc5424(line)["msgid"] == "breakglass.used"
        ]
        assert len(used) == 1 and "cred-00001" in used[0]  # after the backup's own event
        again = sealbox(
            "breakglass", "receipt", "import", receipt_path, "--config", appliance.config
        )
        assert again.code == 0 and "already imported" in again.err
        assert len(server.wait(3, seconds=1)) == 2  # no second alert for the same receipt
        second = sealbox(
            "breakglass",
            "receipt",
            "import",
            tmp_path / "ssh-00002.json",
            "--config",
            appliance.config,
        )
        assert second.code == 0 and "2 credential(s) to rotate" in second.out

        status = json.loads(sealbox("status", "--config", appliance.config, "--json").out)
        assert [t["id"] for t in status["rotations"]] == ["cred-00001", "ssh-00002"]
        assert any("wait for rotation" in w for w in status["warnings"])
        done = sealbox("breakglass", "receipt", "done", "cred-00001", "--config", appliance.config)
        assert done.code == 0 and "1 credential(s) still to rotate" in done.err
        listed = json.loads(
            sealbox("breakglass", "receipt", "list", "--config", appliance.config, "--json").out
        )
        assert [t["id"] for t in listed] == ["ssh-00002"]
        status = json.loads(sealbox("status", "--config", appliance.config, "--json").out)
        assert [t["id"] for t in status["rotations"]] == ["ssh-00002"]
    finally:
        server.stop()


def test_receipt_import_refuses_a_bad_file_in_one_line(appliance, sealbox, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "sealbox-breakglass-receipt", "version": 1}')
    result = sealbox("breakglass", "receipt", "import", bad, "--config", appliance.config)
    assert result.code == 5 and "bad.json: receipt: opened" in result.err
    assert len(result.err.strip().splitlines()) == 1
    missing = sealbox(
        "breakglass", "receipt", "import", tmp_path / "x", "--config", appliance.config
    )
    assert missing.code == 8
