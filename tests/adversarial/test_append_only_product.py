"""The recommended deployment: every backup of the product through an `--append-only` agent, day
after day. A compromised appliance cannot destroy history there, so nothing the appliance does
on its own may need to delete (index compaction, secrets retention, forget): those are skipped,
never failing a backup; locks and probe canaries come and go (threat-model.md)."""

from __future__ import annotations

import json
import re
import secrets

from sealbox.backends import open_backend
from sealbox.crypto import agekeys
from sealbox.demo import appliance as demo_appliance
from sealbox.repo import backup as backup_module
from sealbox.repo.backup import run_backup
from sealbox.repo.repository import Repository
from tests.e2e.test_recordings import _record


def _through_agent(appliance, agent, tmp_path) -> str:
    namespace = f"pam-{secrets.token_hex(3)}"
    token = tmp_path / "agent.token"
    token.write_text(agent.token(namespace) + "\n")
    text = re.sub(
        r'(?m)^url = "file://.*"$',
        f'url = "{agent.base}/{namespace}"\ntoken_file = "{token}"\nca_file = "{agent.cert}"',
        appliance.config.read_text(),
    )
    text = re.sub(r"(?m)^keep_last = \d+$", "keep_last = 1", text)  # retention would delete
    appliance.config.write_text(text)
    return namespace


def test_every_backup_runs_day_after_day_through_an_append_only_agent(
    appliance, sealbox, append_only_agent, tmp_path
):
    namespace = _through_agent(appliance, append_only_agent, tmp_path)
    demo_appliance.create_system(appliance.root)
    recordings = appliance.root / "appliance" / "recordings"
    config = ["--config", appliance.config]
    for day in range(3):
        _record(recordings / "2026" / "11" / f"{day + 10:02d}", day)
        for kind in ("secrets", "system", "recordings"):
            result = sealbox("backup", kind, *config)
            assert result.code == 0, (day, kind, result.err)
        probe = sealbox("probe", *config, "--json")
        assert probe.code == 0, probe.err
    stored = append_only_agent.root / namespace
    assert len(list(stored.glob("secrets-*.age"))) == 3  # retention left them to the storage side
    assert not list((stored / "repo" / "locks").iterdir())  # every run's lock went away
    assert not list((stored / "probes").glob("*")) if (stored / "probes").exists() else True

    forgot = sealbox("forget", *config, "--json")
    assert forgot.code == 0, forgot.err
    report = json.loads(forgot.out)
    assert report["system"]["skipped"] == "append-only"
    assert report["secrets"]["skipped"] == "append-only"
    assert len(list(stored.glob("secrets-*.age"))) == 3

    restored = sealbox(
        "restore", "system", "latest", "--target", tmp_path / "out",
        *appliance.share_args(1, 2, 3), *config,
    )  # fmt: skip
    assert restored.code == 0, restored.err
    verified = sealbox("recordings", "verify", *config)
    assert verified.code == 0, (verified.out, verified.err)
    snaps = json.loads(sealbox("snapshots", *config, "--json").out)
    assert sum(1 for s in snaps if s["kind"] == "system" and s["status"] == "verified") == 3


def test_index_compaction_is_skipped_on_an_append_only_agent(
    append_only_agent, monkeypatch, tmp_path
):
    """A run merges the index files once there are many, deleting the old ones: through an
    append-only agent that delete is refused, so the merge must not be attempted at all."""
    namespace = f"ns-{secrets.token_hex(3)}"
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", append_only_agent.token(namespace))
    monkeypatch.setenv("SEALBOX_AGENT_CA", str(append_only_agent.cert))
    monkeypatch.setattr(backup_module, "COMPACT_AFTER", 3)
    url = f"{append_only_agent.base}/{namespace}/repo"
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    Repository.init(open_backend(url), [agekeys.recipient_of(identity)], tmp_path / "state")
    src = tmp_path / "src"
    src.mkdir()
    for n in range(5):
        (src / f"f{n}").write_bytes(secrets.token_bytes(5000))
        run_backup(
            Repository.open_writer(open_backend(url), tmp_path / "state"),
            [src],
            state_dir=tmp_path / "state",
        )
    assert len(list((append_only_agent.root / namespace / "repo" / "index").iterdir())) == 5
