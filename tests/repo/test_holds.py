"""Legal holds (repo/holds.py): a held snapshot survives every retention rule; a release lifts
a hold only when a pinned key signed it; junk and other repositories' records are ignored."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.config.models import Retention
from sealbox.crypto import sshsig
from sealbox.repo import format as fmt
from sealbox.repo.backup import run_backup
from sealbox.repo.forget import decide, forget_snapshots
from sealbox.repo.holds import (
    NS_HOLD,
    HoldRecord,
    active_holds,
    add_hold,
    held_snapshots,
    release_hold,
)
from tests.conftest import make_tree


def _three_snapshots(env, tmp_path):
    src = make_tree(tmp_path / "src", big=10_000)
    for n in range(3):
        (src / "changing.txt").write_text(f"run {n}\n")
        run_backup(env.writer(), [src], state_dir=env.state)
    return sorted(env.writer().snapshots(), key=lambda s: s.time)


def _forged(repo, record: HoldRecord) -> str:
    """A record signed by a key nobody pinned (whoever holds the repository key could)."""
    key = Ed25519PrivateKey.generate()
    record = replace(record, signer=sshsig.public_key_line(key.public_key()))
    record = replace(record, signature=sshsig.sign(key, record.body(), NS_HOLD))
    data = fmt.seal_json(repo.keys.index_key, b"hold", asdict(record))
    repo.backend.put(f"holds/{fmt.content_name(data)}", data)
    return fmt.content_name(data)


def test_a_held_snapshot_survives_retention_and_says_why(env, tmp_path):
    oldest, _middle, newest = _three_snapshots(env, tmp_path)
    repo = env.writer()
    hold_id = add_hold(repo, "case 42", snapshot=oldest.id)
    held = held_snapshots(repo, {})
    decision = decide(repo.snapshots(), Retention(keep_last=1), datetime.now(UTC), held)
    assert {s.id for s in decision.keep} == {oldest.id, newest.id}
    assert decision.why[oldest.id].startswith("held (case 42), hold ")
    # Past delete_after too: kept, and both reasons are given.
    decision = decide(
        repo.snapshots(), Retention(delete_after="1m"), datetime(2099, 1, 1, tzinfo=UTC), held
    )
    assert [s.id for s in decision.keep] == [oldest.id]
    assert "though older than delete_after (1m)" in decision.why[oldest.id]
    forget_snapshots(repo, decision.forget)
    assert [s.id for s in env.writer().snapshots()] == [oldest.id]
    assert [h.id for h in active_holds(repo)] == [hold_id]


def test_a_release_lifts_a_hold_only_when_a_pinned_key_signed_it(env, tmp_path):
    oldest, *_ = _three_snapshots(env, tmp_path)
    repo = env.writer()
    hold_id = add_hold(repo, "case 42", snapshot=oldest.id)
    _forged(repo, HoldRecord("release", repo.config.id, "2026-01-01T00:00:00Z", "", hold=hold_id))
    assert [h.id for h in active_holds(repo)] == [hold_id], "a forged release lifts nothing"
    release_hold(repo, hold_id, "case closed")
    assert active_holds(repo) == []
    assert held_snapshots(repo, {}) == {}


def test_a_forged_hold_still_holds_and_junk_holds_nothing(env, tmp_path):
    oldest, *_ = _three_snapshots(env, tmp_path)
    repo = env.writer()
    forged = _forged(
        repo, HoldRecord("hold", repo.config.id, "2026-01-01T00:00:00Z", "x", snapshot=oldest.id)
    )
    _forged(
        repo, HoldRecord("hold", "another-repo", "2026-01-01T00:00:00Z", "x", snapshot="ab" * 32)
    )
    repo.backend.put("holds/" + "00" * 32, b"junk")
    holds = active_holds(repo)
    assert [(h.id, h.verified) for h in holds] == [(forged, False)]
    assert set(held_snapshots(repo, {})) == {oldest.id}


def test_a_session_hold_keeps_every_snapshot_with_its_recordings(env, tmp_path):
    oldest, middle, _newest = _three_snapshots(env, tmp_path)
    repo = env.writer()
    add_hold(repo, "incident 7", session="s-123")
    held = held_snapshots(repo, {"s-123": {oldest.id, middle.id}, "s-999": {"ff" * 32}})
    assert set(held) == {oldest.id, middle.id}
