"""Review finding: a compromised appliance (writer key + signing key, append-only token) adds a
signed snapshot dated long ago whose ``refs`` names the reference list of a real snapshot made
before the compromise. A storage-side ``forget --keep-within`` forgets the forged snapshot and
deletes ``refs/<the real snapshot's list>`` with it; from then on every prune stops ("reference
list cannot be read") and ``check`` reports the real snapshot as damaged."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from sealbox.config.models import Retention
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.forget import apply_policy, forget_snapshots, prune
from sealbox.repo.repository import Snapshot


def test_forgetting_a_forged_snapshot_does_not_delete_a_real_snapshots_reference_list(
    env, tmp_path
):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(5000))
    real = run_backup(env.writer(), [src], state_dir=env.state).snapshot

    attacker = env.writer()
    forged = Snapshot(
        id="",
        time="2001-01-01T00:00:00.000000Z",
        hostname=real.hostname,
        paths=real.paths,
        tree=real.tree,
        refs=real.refs,
        kind=real.kind,
        data_keys=list(real.data_keys),
    )
    attacker.save_snapshot(forged)

    storage = env.writer()  # the storage host's forget and prune
    _keep, drop = apply_policy(storage.snapshots(), Retention(keep_within="30d"), datetime.now(UTC))
    assert [s.id for s in drop] == [forged.id]
    forget_snapshots(storage, drop)

    repo, _ = env.reader()
    assert run_check(repo).ok, run_check(repo).errors
    prune(env.writer())


def test_a_forged_snapshot_naming_a_missing_reference_list_does_not_block_prune(env, tmp_path):
    """Signed by a key the prune host does not pin, it is not authentic: it cannot hold prune
    back forever; a verified snapshot with an unreadable list still stops prune (nothing lost)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sealbox.errors import IntegrityError
    from sealbox.repo import format as fmt

    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(5000))
    real = run_backup(env.writer(), [src], state_dir=env.state).snapshot
    repo = env.writer()
    forged = Snapshot(
        id="", time="2001-01-01T00:00:00.000000Z", hostname="x", paths=["/x"],
        tree=real.tree, refs="ee" * 32, repo=repo.config.id,
    )  # fmt: skip
    forged.sign(Ed25519PrivateKey.generate(), [])
    data = fmt.seal_json(repo.keys.index_key, b"snapshot", forged.to_dict())
    repo.backend.put(f"snapshots/{fmt.content_name(data)}", data)
    result = prune(env.writer())
    assert any("not verified" in e and "reference list unreadable" in e for e in result.errors)
    root = env.url.removeprefix("file://")
    os.unlink(f"{root}/refs/{real.refs}")
    with pytest.raises(IntegrityError, match="prune stopped, nothing deleted"):
        prune(env.writer())
