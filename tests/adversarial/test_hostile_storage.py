"""Whoever controls the storage attacks the product's repositories, playing it for real: a second
Sealbox install that substitutes the repository, planted key objects, forged and junk snapshot
objects, objects too large to read. Each attack must fail with one clear line and nothing
restored (docs/design/threat-model.md, "Holding the storage")."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.backends import open_backend
from sealbox.config import load_config
from sealbox.crypto import agekeys
from sealbox.crypto.trust import Trust
from sealbox.demo import appliance as demo_appliance
from sealbox.destinations.repos import open_product_repo_to_read
from sealbox.keys.material import from_share_files
from sealbox.repo import format as fmt
from sealbox.repo.keys import WriterSecrets
from sealbox.repo.repository import Repository, Snapshot


@pytest.fixture
def system(appliance, sealbox):
    demo_appliance.create_system(appliance.root)
    result = sealbox("backup", "system", "--config", appliance.config, "--json")
    assert result.code == 0, result.err
    appliance.snapshot = json.loads(result.out)["snapshot"]
    return appliance


def _sheet_field(sheet: Path, name: str) -> str:
    for line in sheet.read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} on the sheet")


def _one_line(result, code: int, *texts: str) -> str:
    assert result.code == code, (result.code, result.out, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("sealbox: error:")]
    assert len(errors) == 1, result.err
    assert "Traceback" not in result.err
    for text in texts:
        assert text in errors[0], errors[0]
    return errors[0]


def _restore(sealbox, system, target: Path, *extra: str):
    return sealbox(
        "restore",
        "system",
        "latest",
        "--target",
        target,
        *system.share_args(1, 2, 3),
        "--config",
        system.config,
        *extra,
    )


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_substituted_repository_is_refused_by_the_custodians(system, sealbox, tmp_path):
    """The storage admin deletes the real repository and lets a second Sealbox install, sealed to
    the master key's public recipient (printed on every sheet), back up a fake /etc/shadow."""
    repo_dir = system.remote / "repo"
    shutil.rmtree(repo_dir)
    recipient = _sheet_field(system.shares[0], "Recipient")
    fake = tmp_path / "fake" / "etc"
    fake.mkdir(parents=True)
    (fake / "shadow").write_text("root:$6$attacker$known:19000:0:99999:7:::\n")
    attacker = tmp_path / "attacker-state"
    made = sealbox("repo", "--state-dir", attacker, "init", repo_dir, "--recipient", recipient)
    assert made.code == 0, made.err
    assert sealbox("repo", "--state-dir", attacker, "backup", repo_dir, fake).code == 0

    out = tmp_path / "out"
    line = _one_line(_restore(sealbox, system, out), 5, "config", "not by a key pinned by")
    assert "the custodian sheets" in line
    assert _files(out) == []
    # Loading its "database dumps" is refused just the same, before anything runs.
    _one_line(_restore(sealbox, system, out, "--databases"), 5, "not by a key pinned by")
    assert _files(out) == []
    # Plumbing with an identity made from the sheets (keys combine keeps their signers).
    identity = tmp_path / "id.txt"
    assert sealbox("keys", "combine", *system.share_args(1, 2, 3), "--out", identity).code == 0
    _one_line(
        sealbox("repo", "restore", repo_dir, "latest", out, "--identity", identity),
        5,
        "not by a key pinned by the identity file",
    )
    assert _files(out) == []


def test_identity_without_pinned_signer_is_refused_unless_unverified(system, sealbox, tmp_path):
    """A bare age identity (no `# signer:` line) on a machine with no keystore pins nothing."""
    identity = tmp_path / "id.txt"
    assert sealbox("keys", "combine", *system.share_args(1, 2, 3), "--out", identity).code == 0
    bare = tmp_path / "bare.txt"
    bare.write_text("".join(x for x in identity.read_text().splitlines(True) if "signer" not in x))
    repo_dir = system.remote / "repo"
    out = tmp_path / "out"
    empty_state = ["--state-dir", tmp_path / "fresh"]
    _one_line(
        sealbox("repo", *empty_state, "restore", repo_dir, "latest", out, "--identity", bare),
        5,
        "nothing pins the appliance's signing key",
    )
    assert _files(out) == []
    # The explicit override works, and says so.
    ok = sealbox(
        "repo", *empty_state, "restore", repo_dir, "latest", out, "--identity", bare, "--unverified"
    )
    assert ok.code == 0, ok.err
    assert "UNVERIFIED" in ok.err and _files(out)
    # --signer with the key from a sheet pins it: verified, no warning.
    signed = sealbox(
        "repo",
        *empty_state,
        "restore",
        repo_dir,
        "latest",
        tmp_path / "out2",
        "--identity",
        bare,
        *system.signer_args(),
    )
    assert signed.code == 0, signed.err
    assert "UNVERIFIED" not in signed.err


def test_planted_key_object_is_ignored_not_fatal(system, sealbox, tmp_path):
    """An extra keys/ object sealed to the public recipient used to be "the first that opens"
    and made the custodians' restore fail while every appliance command still worked."""
    config = load_config(system.config)
    repo_dir = system.remote / "repo"
    repo_id = json.loads((repo_dir / "config").read_bytes())["id"]
    recipient = _sheet_field(system.shares[0], "Recipient")
    planted = WriterSecrets.generate(repo_id).seal([recipient])
    backend = open_backend(str(repo_dir))
    for _ in range(3):  # several, so that one is surely listed before the real key
        planted = WriterSecrets.generate(repo_id).seal([recipient])
        backend.put(f"keys/{fmt.content_name(planted)}", planted)
    out = tmp_path / "out"
    result = _restore(sealbox, system, out)
    assert result.code == 0, result.err
    assert "is not this repository's key (planted?)" in result.err
    assert any(p.name == "policy-003.yaml" for p in _files(out))
    # check (no key) and check --read-data both name the planted objects as errors.
    checked = sealbox(
        "check", "--read-data", *system.share_args(1, 2, 3), "--config", system.config
    )
    assert checked.code == 5 and "planted" in checked.out
    unlocked = from_share_files(system.shares[:3], None)
    repo = open_product_repo_to_read(
        config, "remote", unlocked.identities, Trust.of(unlocked.signers, "the sheets")
    )
    assert len(repo.notes) == 3


def _forge_snapshot(repo: Repository, signer: Ed25519PrivateKey, like: Snapshot) -> str:
    """A snapshot sealed with the real index key (what a holder of a repository key could make)
    but signed by a key nobody pinned, pointing at the real tree, dated in the future."""
    forged = Snapshot(
        id="",
        time="2099-01-01T00:00:00.000000Z",
        hostname=like.hostname,
        paths=like.paths,
        tree=like.tree,
        refs=like.refs,
        kind="system",
        data_keys=like.data_keys,
        extra=like.extra,
        repo=repo.config.id,
    )
    forged.sign(signer, [])
    data = fmt.seal_json(repo.keys.index_key, b"snapshot", forged.to_dict())
    name = fmt.content_name(data)
    repo.backend.put(f"snapshots/{name}", data)
    return name


def test_forged_snapshot_is_listed_as_rejected_and_never_latest(system, sealbox, tmp_path):
    config = load_config(system.config)
    unlocked = from_share_files(system.shares[:3], None)
    repo = open_product_repo_to_read(
        config, "remote", unlocked.identities, Trust.of(unlocked.signers, "the sheets")
    )
    real = repo.find_snapshot("latest", kind="system")
    forged = _forge_snapshot(repo, Ed25519PrivateKey.generate(), real)

    listing = json.loads(sealbox("snapshots", "--config", system.config, "--json").out)
    status = {row["id"]: row["status"] for row in listing}
    assert status[real.id] == "verified" and status[forged] == "rejected"
    text = sealbox("snapshots", "--config", system.config).out
    assert f"{forged[:12]}  REJECTED" in text and "1 rejected" in text

    result = _restore(sealbox, system, tmp_path / "out", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["snapshot"] == real.id  # latest skipped the newer forgery
    named = sealbox(
        "restore",
        "system",
        forged[:12],
        "--target",
        tmp_path / "out2",
        *system.share_args(1, 2, 3),
        "--config",
        system.config,
    )
    _one_line(named, 5, "is refused", "not by a key pinned")
    assert _files(tmp_path / "out2") == []
    assert sealbox("check", "--config", system.config).code == 5
    # Even accepting unverified sources, `latest` is the newest *authentic* snapshot.
    loose = _restore(sealbox, system, tmp_path / "out3", "--json", "--unverified")
    assert loose.code == 0, loose.err
    assert json.loads(loose.out)["snapshot"] == real.id


def test_junk_and_huge_snapshot_objects_never_block_listing_or_restore(system, sealbox, tmp_path):
    snapshots = system.remote / "repo" / "snapshots"
    (snapshots / ("0" * 64)).write_bytes(b"junk!")  # 5 bytes
    (snapshots / "not-a-snapshot").write_bytes(b"x")
    huge = snapshots / ("f" * 64)
    with huge.open("wb") as handle:  # 64 GB, sparse: reading it whole exhausts memory
        handle.truncate(64 << 30)
    listing = sealbox("snapshots", "--config", system.config, "--json")
    assert listing.code == 0, listing.err
    rows = json.loads(listing.out)
    rejected = {row["id"]: row["reason"] for row in rows if row["status"] == "rejected"}
    assert set(rejected) == {"0" * 64, "not-a-snapshot", "f" * 64}
    assert "larger than" in rejected["f" * 64]
    assert [row["id"] for row in rows if row["status"] == "verified"] == [system.snapshot]
    result = _restore(sealbox, system, tmp_path / "out")
    assert result.code == 0, result.err
    assert _files(tmp_path / "out")


def test_pack_header_length_is_bounded_before_it_is_read(env, tmp_path):
    """A pack whose tail claims a 4 GiB header: refused from the 4-byte length alone."""
    from sealbox.errors import CorruptFileError
    from sealbox.repo.backup import run_backup

    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(1000))
    run_backup(env.writer(), [src], state_dir=env.state)
    body = os.urandom(100) + b"\xff\xff\xff\xf0"
    name = fmt.content_name(body)
    backend = open_backend(env.url)
    backend.put(f"data/{name[:2]}/{name}", body)
    repo = env.writer()
    with pytest.raises(CorruptFileError, match="out of range"):
        repo.read_pack_header(name, len(body))
    # A backup (which adopts packs no index names) and a prune both carry on.
    again = run_backup(env.writer(), [src], state_dir=env.state)
    assert again.snapshot.verified
    from sealbox.repo.forget import prune

    result = prune(env.writer())
    assert any(name in e and "unreadable" in e for e in result.errors)
    assert (Path(env.url.removeprefix("file://")) / "data" / name[:2] / name).exists()


def test_oversized_key_and_config_objects_are_refused(env):
    from sealbox.errors import CorruptFileError

    root = Path(env.url.removeprefix("file://"))
    config = root / "config"
    with config.open("ab") as handle:
        handle.truncate(10 << 20)
    with pytest.raises(CorruptFileError, match="larger than"):
        Repository.open_writer(open_backend(env.url), env.state)


def test_old_repository_version_is_refused_clearly(env):
    from sealbox.errors import CorruptFileError

    root = Path(env.url.removeprefix("file://"))
    doc = json.loads((root / "config").read_bytes())
    doc["version"] = 1
    (root / "config").write_text(json.dumps(doc))
    with pytest.raises(CorruptFileError, match=r"version 1 is not supported .*reads 2"):
        Repository.open_writer(open_backend(env.url), env.state)


def test_tampered_config_fails_its_signature(env):
    from sealbox.errors import SignatureError

    root = Path(env.url.removeprefix("file://"))
    doc = json.loads((root / "config").read_bytes())
    doc["recipients"].append(
        agekeys.recipient_of(agekeys.identity_from_secret(agekeys.new_secret()))
    )
    (root / "config").write_text(json.dumps(doc))
    with pytest.raises(SignatureError, match="does not match"):
        Repository.open_writer(open_backend(env.url), env.state)
