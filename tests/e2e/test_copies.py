"""Second copies (`sealbox copy`): what is new goes verbatim to the second destination, checked
and resumable; restore and break-glass work from the copy alone; an empty source never wipes or
passes for the copy; what fails verification at the source is never copied."""

from __future__ import annotations

import filecmp
import json
import shutil

import pytest

from sealbox.demo import appliance as demo_appliance


@pytest.fixture
def copied(appliance, sealbox):
    demo_appliance.create_system(appliance.root)
    second = appliance.root / "second"
    second.mkdir()
    text = appliance.config.read_text() + (
        f'\n[destinations.second]\nurl = "file://{second}"\nallow_on_appliance = true\n'
        '\n[[copies]]\nfrom = "remote"\nto = "second"\n'
    )
    appliance.config.write_text(text)
    for kind in ("secrets", "system"):
        result = sealbox("backup", kind, "--config", appliance.config)
        assert result.code == 0, result.err
    appliance.second = second
    return appliance


def _copy(sealbox, appliance, *args):
    result = sealbox("copy", "--config", appliance.config, "--json", *args)
    return result, (json.loads(result.out) if result.out.strip() else None)


def test_a_copy_restores_and_opens_on_its_own(copied, sealbox, tmp_path):
    result, report = _copy(sealbox, copied)
    assert result.code == 0, result.err
    assert report[0]["objects"] > 10 and report[0]["skipped"] == []
    again, report = _copy(sealbox, copied)
    assert again.code == 0 and report[0]["objects"] == 0 and report[0]["present"] >= 6
    # The first destination is gone: everything comes from the copy.
    shutil.rmtree(copied.remote)
    snaps = sealbox("snapshots", "--destination", "second", "--config", copied.config, "--json")
    assert snaps.code == 0, snaps.err
    assert len(json.loads(snaps.out)) == 1
    restored = sealbox(
        "restore",
        "system",
        "latest",
        "--target",
        tmp_path / "out",
        "--destination",
        "second",
        *copied.share_args(1, 2, 3),
        "--config",
        copied.config,
    )
    assert restored.code == 0, restored.err
    policies = next((tmp_path / "out").rglob("policies"))
    original = next(p for p in (copied.root / "appliance").rglob("policies") if p.is_dir())
    assert not filecmp.dircmp(policies, original).diff_files
    backup = sorted(copied.second.glob("secrets-*.age"))[-1]
    opened = sealbox("breakglass", "open", backup, *copied.share_args(1, 2, 3), "list")
    assert opened.code == 0, opened.err
    assert list(copied.second.glob("sealbox-opener-*.html")), "the opener goes along"


def test_an_interrupted_copy_resumes_with_only_what_is_missing(copied, sealbox):
    assert _copy(sealbox, copied)[0].code == 0
    packs = sorted((copied.second / "repo" / "data").rglob("*"))
    packs = [p for p in packs if p.is_file()]
    lost = packs[: max(1, len(packs) // 2)]
    for pack in lost:
        pack.unlink()  # as if the copy had stopped before them
    result, report = _copy(sealbox, copied)
    assert result.code == 0 and report[0]["objects"] == len(lost)
    check = sealbox("check", "--destination", "second", "--config", copied.config)
    assert check.code == 0, check.out + check.err


def test_an_empty_source_is_refused_and_the_copy_left_alone(copied, sealbox):
    assert _copy(sealbox, copied)[0].code == 0
    before = sorted(p.name for p in copied.second.rglob("*"))
    shutil.rmtree(copied.remote)
    copied.remote.mkdir()  # the share is not mounted: an empty directory in its place
    result, _ = _copy(sealbox, copied)
    assert result.code == 7 and "source holds no" in result.err and "Traceback" not in result.err
    assert sorted(p.name for p in copied.second.rglob("*")) == before


def test_what_fails_verification_at_the_source_is_not_copied(copied, sealbox):
    snapshots = copied.remote / "repo" / "snapshots"
    (snapshots / ("ab" * 32)).write_bytes(b"a planted snapshot")
    pack = next(p for p in (copied.remote / "repo" / "data").rglob("*") if p.is_file())
    damaged = bytearray(pack.read_bytes())
    damaged[100] ^= 1
    pack.write_bytes(bytes(damaged))
    backup = sorted(copied.remote.glob("secrets-*.age"))[-1]
    forged = bytearray(backup.read_bytes())
    forged[-1] ^= 1
    backup.write_bytes(bytes(forged))
    result, report = _copy(sealbox, copied)
    assert result.code == 5, result.err
    skipped = " ".join(report[0]["skipped"]) if report else result.err
    assert ("ab" * 6) in skipped and pack.name[:12] in skipped and backup.name in skipped
    second_repo = copied.second / "repo"
    assert not (second_repo / "snapshots" / ("ab" * 32)).exists()
    assert not list(second_repo.rglob(pack.name))
    assert not (copied.second / backup.name).exists()


def test_status_says_how_far_each_copy_is_behind(copied, sealbox):
    def copies():
        doc = json.loads(sealbox("status", "--config", copied.config, "--json").out)
        return {k["kind"]: k.get("copies") for k in doc["kinds"]}

    before = copies()
    assert before["system"][0]["to"] == "second" and before["system"][0]["lag_snapshots"] == 1
    assert before["system"][0]["lag_bytes"] > 0 and before["system"][0]["last_copy"] is None
    assert before["secrets"][0]["lag_snapshots"] == 1
    assert _copy(sealbox, copied)[0].code == 0
    after = copies()
    assert after["system"][0]["lag_snapshots"] == after["secrets"][0]["lag_snapshots"] == 0
    assert after["system"][0]["last_copy"] is not None
    text = sealbox("status", "--config", copied.config).out
    assert "copy to second: 0 behind" in text


def test_an_object_damaged_at_the_copy_is_named_not_taken_for_present(copied, sealbox):
    assert _copy(sealbox, copied)[0].code == 0
    pack = next(p for p in (copied.second / "repo" / "data").rglob("*") if p.is_file())
    pack.write_bytes(pack.read_bytes()[:-10])  # the copy's storage lost its tail
    result, report = _copy(sealbox, copied)
    assert result.code == 5
    assert any(pack.name in s and "damaged copy" in s for s in report[0]["skipped"])


def test_forget_applies_retention_at_the_copy_too_and_its_holds_count(copied, sealbox):
    text = copied.config.read_text()
    assert "retention = { keep_last = 7 }" in text and "keep_last = 10" in text
    snaps = json.loads(sealbox("snapshots", "--config", copied.config, "--json").out)
    oldest = snaps[0]["id"]
    assert sealbox("hold", "add", oldest, "--reason", "case 9", "--config", copied.config).code == 0
    assert _copy(sealbox, copied)[0].code == 0
    for _ in range(2):
        for kind in ("system", "secrets"):
            assert sealbox("backup", kind, "--config", copied.config).code == 0
        assert _copy(sealbox, copied)[0].code == 0
    at_copy = json.loads(
        sealbox("snapshots", "--destination", "second", "--config", copied.config, "--json").out
    )
    assert len(at_copy) == 3
    assert len(list(copied.second.glob("secrets-*.age"))) == 3

    copied.config.write_text(
        text.replace("retention = { keep_last = 7 }", "retention = { keep_last = 1 }").replace(
            "keep_last = 10", "keep_last = 1"
        )
    )
    done = sealbox("forget", "--config", copied.config, "--json")
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert len(report["system@second"]["forgotten"]) == 1  # the held one stays, and says why
    assert oldest in report["system@second"]["kept"]
    assert "case 9" in report["system@second"]["why"][oldest]
    assert len(report["secrets@second"]["forgotten"]) == 2
    assert "prune:second" in report
    at_copy = json.loads(
        sealbox("snapshots", "--destination", "second", "--config", copied.config, "--json").out
    )
    here = json.loads(sealbox("snapshots", "--config", copied.config, "--json").out)
    assert sorted(s["id"] for s in at_copy) == sorted(s["id"] for s in here)
    assert len(list(copied.second.glob("secrets-*.age"))) == 1
    check = sealbox("check", "--destination", "second", "--config", copied.config)
    assert check.code == 0, check.out + check.err
