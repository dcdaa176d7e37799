"""`sealbox repo check [--repair]` as a user drives it on a repository with rot in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_tree
from tests.e2e.test_repo_cli import cli_repo  # noqa: F401 (fixture)


def _root(url: str) -> Path:
    return Path(url.removeprefix("file://"))


def _one(root: Path, prefix: str) -> Path:
    return sorted(p for p in (root / prefix).rglob("*") if p.is_file())[0]


def _zero(path: Path, offset: int, length: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + length] = bytes(len(data[offset : offset + length]))
    path.write_bytes(bytes(data))


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x04
    path.write_bytes(bytes(data))


@pytest.fixture
def backed_up(cli_repo, sealbox, tmp_path):  # noqa: F811
    src = make_tree(tmp_path / "src")
    assert sealbox("repo", "backup", cli_repo, src).code == 0
    return cli_repo, src


def test_check_names_rot_repairable_then_repair_heals_it(backed_up, appliance, sealbox, tmp_path):
    url, src = backed_up
    root = _root(url)
    pack = max(
        (p for p in (root / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    _zero(pack, 10_000)  # a 4 KiB region, not aligned
    datakey, index = _one(root, "datakeys"), _one(root, "index")
    _flip(datakey, 77)
    _flip(index, 5)
    plain = sealbox("repo", "check", url)
    assert plain.code == 5
    for damaged in (pack, datakey, index):
        name = str(damaged.relative_to(root))
        assert f"{name}: repairable from its parity" in plain.out, plain.out
    report = json.loads(sealbox("repo", "check", url, "--json").out)
    assert set(report["damaged_objects"].values()) == {"repairable"}
    repaired = sealbox("repo", "check", url, "--repair")
    assert repaired.code == 0, repaired.out + repaired.err
    for damaged in (pack, datakey, index):
        assert f"repaired {damaged.relative_to(root)}" in repaired.out
    assert "3 repaired" in repaired.out and "0 lost" in repaired.out
    assert "no errors" in repaired.out
    out = tmp_path / "out"
    restore = sealbox("repo", "restore", url, "latest", out, *appliance.share_args(1, 2, 3))
    assert restore.code == 0, restore.err
    copy = out / str(src).lstrip("/")
    assert (copy / "var" / "rec.bin").read_bytes() == (src / "var" / "rec.bin").read_bytes()


def test_a_damaged_writer_key_is_repaired_before_the_repository_is_opened(backed_up, sealbox):
    url, _src = backed_up
    root = _root(url)
    key = _one(root, "keys")
    _flip(key, 40)
    plain = sealbox("repo", "check", url)
    assert plain.code == 5 and "repairable from its parity" in plain.err, plain.err
    repaired = sealbox("repo", "check", url, "--repair")
    assert repaired.code == 0, repaired.out + repaired.err
    assert f"repaired {key.relative_to(root)}" in repaired.out


def test_rot_in_an_object_and_its_parity_is_named_lost(backed_up, sealbox):
    url, _src = backed_up
    root = _root(url)
    pack = max(
        (p for p in (root / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    name = str(pack.relative_to(root))
    _flip(pack, 100)
    parity = root / "parity" / name
    _zero(parity, parity.stat().st_size - 4096)  # the parity shares, all groups' last ones
    _zero(parity, 60)  # and the digest table
    plain = sealbox("repo", "check", url)
    assert plain.code == 5 and f"{name}: lost, parity cannot repair it" in plain.out
    repaired = sealbox("repo", "check", url, "--repair", "--json")
    assert repaired.code == 5
    doc = json.loads(repaired.out)
    assert [lost["name"] for lost in doc["repair"]["lost"]] == [name]
    assert not doc["ok"]


def test_parity_option_is_checked_and_off_writes_none(cli_repo, sealbox, tmp_path):  # noqa: F811
    src = make_tree(tmp_path / "src", big=100_000)
    bad = sealbox("repo", "backup", cli_repo, src, "--parity", "90%")
    assert bad.code == 2 and "between 1% and 50%" in bad.err
    assert sealbox("repo", "backup", cli_repo, src, "--parity", "off").code == 0
    root = _root(cli_repo)
    assert not list((root / "parity" / "snapshots").glob("*"))
    check = json.loads(sealbox("repo", "check", cli_repo, "--json").out)
    assert check["ok"] and any("without parity" in note for note in check["notes"])
    assert sealbox("repo", "check", cli_repo, "--repair").code == 0
    assert len(list((root / "parity" / "snapshots").glob("*"))) == 1


def test_check_repair_heals_the_products_repository_config_included(appliance, sealbox, tmp_path):
    from sealbox.demo import appliance as demo_appliance

    demo_appliance.create_system(appliance.root)
    backup = sealbox("backup", "system", "--config", appliance.config, "--json")
    assert backup.code == 0, backup.err
    root = appliance.remote / "repo"
    pack = max(
        (p for p in (root / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    _zero(pack, 5000)
    _flip(root / "config", 30)  # not named by its content: checked by its parity's digest
    damaged = sealbox("check", "--config", appliance.config)
    assert damaged.code == 5 and "config: damaged, repairable" in damaged.err, damaged.err
    repaired = sealbox("check", "--repair", "--config", appliance.config, "--json")
    assert repaired.code == 0, repaired.out + repaired.err
    doc = json.loads(repaired.out)["remote"]
    assert doc["ok"] and sorted(doc["repair"]["repaired"]) == sorted(
        ["config", str(pack.relative_to(root))]
    )
    deep = sealbox(
        "check", "--read-data", *appliance.share_args(1, 2, 3), "--config", appliance.config
    )
    assert deep.code == 0, deep.out


def test_the_products_parity_follows_the_repository_section(appliance, sealbox):
    from sealbox.demo import appliance as demo_appliance
    from sealbox.repo import parity as par

    demo_appliance.create_system(appliance.root)
    text = appliance.config.read_text()
    appliance.config.write_text(text + '\n[repository]\nparity = "32+2"\n')
    assert sealbox("backup", "system", "--config", appliance.config).code == 0
    root = appliance.remote / "repo"
    pack = max(
        (p for p in (root / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    name = str(pack.relative_to(root))
    parity = par.decode_parity((root / "parity" / name).read_bytes(), name)
    assert (parity.k, parity.m) == (32, 2)
    appliance.config.write_text(text + '\n[repository]\nparity = "90%"\n')
    refused = sealbox("backup", "system", "--config", appliance.config)
    assert refused.code == 3 and "repository.parity" in refused.err
