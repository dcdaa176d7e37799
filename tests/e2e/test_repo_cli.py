"""`sealbox repo ...` as a user drives it: init, backup, snapshots, restore (identity or shares),
check, forget --prune, and the errors."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import make_tree


@pytest.fixture
def cli_repo(appliance, sealbox, tmp_path, monkeypatch):
    """A repository sealed to the demo appliance's master key (so custodian shares open it)."""
    monkeypatch.setenv("SEALBOX_STATE_DIR", str(tmp_path / "state"))
    keys = json.loads(sealbox("keys", "list", "--config", appliance.config, "--json").out)
    url = f"file://{tmp_path}/repo"
    result = sealbox("repo", "init", url, "--recipient", keys[0]["recipient"], "--json")
    assert result.code == 0, result.err
    return url


def test_backup_snapshots_restore_with_shares(cli_repo, appliance, sealbox, tmp_path):
    src = make_tree(tmp_path / "src")
    first = sealbox("repo", "backup", cli_repo, src, "--tag", "nightly", "--json")
    assert first.code == 0, first.err
    summary = json.loads(first.out)
    assert summary["files"] == 7 and summary["files_new"] == 7
    second = json.loads(sealbox("repo", "backup", cli_repo, src, "--json").out)
    assert second["files_unchanged"] == 7 and second["bytes_added"] == 0
    snaps = json.loads(sealbox("repo", "snapshots", cli_repo, "--json").out)
    assert len(snaps) == 2 and {"id", "time", "kind", "paths", "size"} <= set(snaps[0])
    assert snaps[0]["tags"] == ["nightly"] and snaps[0]["paths"] == [str(src)]

    dry = sealbox(
        "repo",
        "restore",
        cli_repo,
        "latest",
        tmp_path / "out",
        *appliance.share_args(1, 2, 3),
        "--dry-run",
        "--json",
    )
    assert dry.code == 0 and json.loads(dry.out)["files"] == 7 and not (tmp_path / "out").exists()
    done = sealbox(
        "repo",
        "restore",
        cli_repo,
        snaps[0]["id"][:10],
        tmp_path / "out",
        *appliance.share_args(2, 4, 5),
        "--json",
    )
    assert done.code == 0, done.err
    assert json.loads(done.out)["restored_files"] == 7
    copy = tmp_path / "out" / str(src).lstrip("/")
    assert (copy / "var" / "rec.bin").read_bytes() == (src / "var" / "rec.bin").read_bytes()


def test_check_and_forget_prune(cli_repo, appliance, sealbox, tmp_path):
    src = make_tree(tmp_path / "src")
    for n in range(3):
        (src / "var" / "rec.bin").write_bytes(os.urandom(1_000_000 + n))
        assert sealbox("repo", "backup", cli_repo, src).code == 0
    plain = sealbox("repo", "check", cli_repo, "--json")
    assert plain.code == 0 and json.loads(plain.out)["ok"]
    deep = sealbox(
        "repo", "check", cli_repo, "--read-data", *appliance.share_args(1, 3, 5), "--json"
    )
    assert deep.code == 0 and json.loads(deep.out)["blobs_checked"] > 0
    subset = sealbox(
        "repo", "check", cli_repo, "--read-data-subset", "50%", *appliance.share_args(1, 3, 5)
    )
    assert subset.code == 0, subset.err
    forget = sealbox("repo", "forget", cli_repo, "--keep-last", "1", "--prune", "--json")
    assert forget.code == 0, forget.err
    report = json.loads(forget.out)
    assert len(report["forget"]) == 2 and report["prune"]["bytes_freed"] > 1_000_000
    assert len(json.loads(sealbox("repo", "snapshots", cli_repo, "--json").out)) == 1


def test_repo_errors_are_one_line(cli_repo, appliance, sealbox, tmp_path):
    src = make_tree(tmp_path / "src")
    assert sealbox("repo", "backup", cli_repo, src).code == 0
    missing = sealbox("repo", "backup", cli_repo, tmp_path / "nope")
    assert missing.code == 8 and "no such file" in missing.err
    nokey = sealbox("repo", "restore", cli_repo, "latest", tmp_path / "out")
    assert nokey.code == 4 and "--identity" in nokey.err
    wrong = tmp_path / "wrong.txt"
    from sealbox.crypto import agekeys

    wrong.write_text(agekeys.identity_from_secret(agekeys.new_secret()) + "\n")
    bad = sealbox("repo", "restore", cli_repo, "latest", tmp_path / "out", "--identity", wrong)
    assert bad.code == 4 and "Traceback" not in bad.err
    again = sealbox("repo", "init", cli_repo, "--recipient", "age1" + "q" * 58)
    assert again.code != 0 and "Traceback" not in again.err
    norepo = sealbox("repo", "snapshots", f"file://{tmp_path}/empty")
    assert norepo.code == 8 and "no repository here" in norepo.err
    unknown = sealbox(
        "repo", "restore", cli_repo, "deadbeef", tmp_path / "out", *appliance.share_args(1, 2, 3)
    )
    assert unknown.code == 8 and "no snapshot" in unknown.err
