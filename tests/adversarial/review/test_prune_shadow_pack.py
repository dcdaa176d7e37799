"""Review finding: a compromised appliance plants, through the append-only token, an object at
``data/zz/<name of a real pack>``. ``list_packs`` keys packs by their last name component, so the
real pack gets the planted object's size (the last listed wins; S3 lists in key order); its header read at that size fails, prune "keeps" it
but leaves it out of the new index and deletes every old index file. The snapshot made before
the compromise then no longer restores (its blobs are "not in the index")."""

from __future__ import annotations

import os
from pathlib import Path

from sealbox.backends import open_backend
from sealbox.repo.backup import run_backup
from sealbox.repo.forget import prune
from sealbox.repo.repository import Repository
from sealbox.repo.restore import plan_restore, run_restore


def _tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    for n in range(5):
        (root / "etc" / f"conf-{n}").write_bytes(os.urandom(2000 + n))
    return root


def test_a_shadow_object_under_another_data_dir_does_not_hide_a_real_pack(env, tmp_path):
    src = _tree(tmp_path / "src")
    before = run_backup(env.writer(), [src], state_dir=env.state).snapshot
    root = Path(env.url.removeprefix("file://"))
    real = [p for p in (root / "data").rglob("*") if p.is_file()]
    assert real

    attacker = env.writer()
    for pack in real:  # same last component, another directory, other bytes (another size)
        attacker.backend.put(f"data/zz/{pack.name}", b"x" * 100)

    storage = Repository.open_writer(open_backend(env.url), env.state)
    # S3 lists keys in lexicographic order, so "data/zz/..." always comes after the real pack;
    # a file:// or agent listing is in directory order, which may be the same.
    listing = storage.backend.list
    storage.backend.list = lambda prefix="": iter(sorted(listing(prefix), key=lambda i: i.name))
    result = prune(storage)
    assert all(p.exists() for p in real)  # not deleted ...
    # ... but still reachable: the old snapshot restores.
    repo, reader = env.reader()
    index = repo.load_index()
    snap = repo.find_snapshot(before.id)
    out = tmp_path / "out"
    res = run_restore(repo, index, reader, plan_restore(repo, index, reader, snap, out), out)
    assert not res.failed, (res.failed, result.errors)
    assert all(p.name in index.packs for p in real)
