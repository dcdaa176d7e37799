"""`sealbox status`: last success, next run, size, health, sizing and warnings for every kind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sealbox.config import load_config
from sealbox.demo import appliance as demo_appliance
from sealbox.usecases.status import collect
from tests.conftest import small_tmpfs


def test_status_after_backups(appliance, sealbox):
    demo_appliance.create_system(appliance.root)
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    assert sealbox("backup", "system", "--config", appliance.config).code == 0
    result = sealbox("status", "--config", appliance.config, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    kinds = {k["kind"]: k for k in report["kinds"]}
    assert kinds["secrets"]["state"] == "ok" and kinds["system"]["state"] == "ok"
    assert kinds["recordings"]["state"] == "never run"
    assert kinds["system"]["size"] > 0 and kinds["system"]["next_run"].endswith("T05:00:00Z")
    assert report["sizing"][0]["ok"] is True and report["sizing"][0]["var_bytes"] > 0
    assert any("allow_on_appliance" in w for w in report["warnings"])
    later = collect(load_config(appliance.config), now=datetime.now(UTC) + timedelta(days=3))
    assert {k["kind"]: k["state"] for k in later["kinds"]}["system"] == "overdue"
    assert any("system backup is overdue" in w for w in later["warnings"])
    human = sealbox("status", "--config", appliance.config)
    assert human.code == 0 and "sizing remote" in human.out


def test_sizing_warns_when_the_destination_is_too_small(appliance, sealbox, tmp_path):
    with small_tmpfs(tmp_path / "small", "8m") as small:
        (appliance.root / "appliance" / "big.bin").write_bytes(b"\1" * 20_000_000)
        text = appliance.config.read_text().replace(f"file://{appliance.remote}", f"file://{small}")
        appliance.config.write_text(text)
        assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
        report = json.loads(sealbox("status", "--config", appliance.config, "--json").out)
        assert report["sizing"][0]["ok"] is False
        assert any("sizing rule" in w for w in report["warnings"])


def test_an_unreachable_destination_is_unknown_never_never_run(appliance, sealbox):
    """Tried as a new user would: with the destination unreachable, `status` said `never run`
    with `last_success: null` while the last run here had succeeded minutes ago."""
    from tests.receivers import closed_port

    demo_appliance.create_system(appliance.root)
    for kind in ("secrets", "system"):
        assert sealbox("backup", kind, "--config", appliance.config).code == 0
    assert sealbox("probe", "--config", appliance.config).code == 0
    text = appliance.config.read_text()
    gone = f'url = "agent+https://127.0.0.1:{closed_port()}/ns"'
    appliance.config.write_text(text.replace(f'url = "file://{appliance.root / "remote"}"', gone))
    assert sealbox("probe", "--config", appliance.config).code == 7
    report = json.loads(sealbox("status", "--config", appliance.config, "--json").out)
    kinds = {k["kind"]: k for k in report["kinds"]}
    for kind in ("secrets", "system"):
        entry = kinds[kind]
        assert entry["state"] == "unknown" and "error" in entry
        assert entry["last_success"] is not None and entry["last_success_from"] == "history"
        assert entry["unreachable_since"] is not None
    assert kinds["recordings"]["state"] == "unknown"
    assert kinds["recordings"]["last_success"] is None  # never ran here, and unknown there
    assert any(
        w.startswith("system: unknown: destination 'remote' unreachable since")
        and "last run here succeeded at 20" in w
        for w in report["warnings"]
    )
    assert not any("never run" in w for w in report["warnings"])
