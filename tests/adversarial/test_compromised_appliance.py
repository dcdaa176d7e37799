"""A compromised appliance (its writer key, index key and signing key; append-only storage) tries
to make a later storage-side prune destroy the history made before the compromise. It can add
objects, never alter or delete stored ones; every trick below must leave the old snapshots
restorable and `check` must name the lies."""

from __future__ import annotations

import os
from pathlib import Path

from sealbox.backends import open_backend
from sealbox.repo import format as fmt
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.forget import prune
from sealbox.repo.repository import Repository, pack_path
from sealbox.repo.restore import plan_restore, run_restore


def _tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    for n in range(20):
        (root / "etc" / f"conf-{n}").write_bytes(os.urandom(2000 + n))
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    return root


def _restored_equal(env, snapshot_id: str, src: Path, out: Path) -> None:
    repo, reader = env.reader()
    index = repo.load_index()
    snap = repo.find_snapshot(snapshot_id)
    plan = plan_restore(repo, index, reader, snap, out)
    result = run_restore(repo, index, reader, plan, out)
    assert not result.failed, result.failed
    copy = out / str(src).lstrip("/")
    for path in src.rglob("*"):
        if path.is_file():
            assert (copy / path.relative_to(src)).read_bytes() == path.read_bytes(), path


def test_lying_index_and_fake_pack_headers_do_not_make_prune_delete_history(env, tmp_path):
    src = _tree(tmp_path / "src")
    before = run_backup(env.writer(), [src], state_dir=env.state).snapshot  # before compromise
    root = Path(env.url.removeprefix("file://"))
    real_packs = {p.name for p in (root / "data").rglob("*") if p.is_file()}
    real_keys = {p.name for p in (root / "datakeys").iterdir()}

    attacker = env.writer()  # holds the writer secrets: index key, id key
    index = attacker.load_index()
    entries = [e for pack in index.packs.values() for e in pack]
    # 1. Index files saying every real pack is empty and the blobs live in a pack that does
    #    not exist (Index.add_pack used to let a later index replace a pack's entries).
    ghost = "ab" * 32
    attacker.save_index({**{p: [] for p in index.packs}, ghost: entries})
    # 2. A fake pack, properly content-named, whose sealed header claims every real blob (under
    #    the real data keys) at offsets holding garbage: an old prune kept the first copy it met
    #    and dropped the real pack's entries as duplicates.
    fake = [fmt.PackEntry(e.blob_type, e.blob_id, 0, 64, e.raw_length, e.key_id) for e in entries]
    body = os.urandom(64) + fmt.encode_pack_header(fake, attacker.keys.index_key)
    name = fmt.content_name(body)
    attacker.backend.put(pack_path(name), body)

    # check names the lies: index files that disagree, an index naming a missing pack.
    repo, reader = env.reader()
    text = "\n".join(run_check(repo).errors)
    assert f"{pack_path(ghost)}: missing (the index names it)" in text
    assert f"{pack_path(next(iter(index.packs)))}: index files disagree" in text

    # The storage host prunes (with a repository key of its own; here the same secrets).
    storage = Repository.open_writer(open_backend(env.url), env.state)
    result = prune(storage)
    assert result.packs_deleted == 0 and result.packs_repacked == 0, result
    left = {p.name for p in (root / "data").rglob("*") if p.is_file()}
    assert real_packs <= left
    assert real_keys <= {p.name for p in (root / "datakeys").iterdir()}
    _restored_equal(env, before.id, src, tmp_path / "out")
    # After prune the index is rebuilt from pack headers; the fake pack is named by its data.
    repo, reader = env.reader()
    report = run_check(repo, reader=reader, read_data=True)
    assert any(pack_path(name) in e and "failed authentication" in e for e in report.errors)


def test_prune_after_forget_still_reclaims_space(env, tmp_path):
    """The conservative rules must not make prune useless: a forgotten snapshot's data goes."""
    from datetime import UTC, datetime

    from sealbox.config.models import Retention
    from sealbox.repo.forget import apply_policy, forget_snapshots

    src = _tree(tmp_path / "src")
    run_backup(env.writer(), [src], state_dir=env.state)
    (src / "big.bin").write_bytes(os.urandom(3 << 20))  # replaced: the old one becomes garbage
    last = run_backup(env.writer(), [src], state_dir=env.state).snapshot
    repo = env.writer()
    keep, drop = apply_policy(repo.snapshots(), Retention(keep_last=1), datetime.now(UTC))
    assert [s.id for s in keep] == [last.id]
    forget_snapshots(repo, drop)
    result = prune(env.writer())
    assert result.bytes_freed >= 3 << 20, result
    _restored_equal(env, last.id, src, tmp_path / "out")


def test_a_lock_dated_in_the_future_does_not_block_prune_forever(env):
    import socket
    import time

    import orjson

    backend = open_backend(env.url)
    backend.put(
        "locks/forever",
        orjson.dumps(
            {
                "host": "elsewhere-" + socket.gethostname(),
                "pid": 1,
                "exclusive": True,
                "purpose": "backup",
                "refreshed": time.time() + 10 * 365 * 86400,
            }
        ),
    )
    backend.put("locks/junk", b"\x00not json")
    prune(env.writer())  # takes the exclusive lock: neither object holds it back
