"""Parity heals rot: a seeded fault campaign over every kind of object, and no false repairs.

Seed: ``SEED`` below; a failure message names the trial, the object and the offset, so a failing
trial can be replayed alone.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from sealbox.backends import open_backend
from sealbox.errors import SealboxError
from sealbox.repo import parity as par
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.heal import assess, parity_names, scrub
from sealbox.repo.restore import plan_restore, run_restore
from tests.conftest import make_tree

SEED = 20261201
FLIPS = 200
REGIONS = 20
KINDS = ("config", "keys", "datakeys", "data", "index", "snapshots", "refs")


def _files(root: Path) -> dict[str, bytes]:
    """Every stored object but locks, by name."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not str(p.relative_to(root)).startswith("locks/")
    }


def _kind(name: str) -> str:
    return name.removeprefix("parity/").split("/", 1)[0].split(".", 1)[0]


@pytest.fixture
def stored(env, tmp_path):
    src = make_tree(tmp_path / "src", big=3_000_000)
    run_backup(env.writer(), [src], state_dir=env.state)
    (src / "etc" / "second.conf").write_text("a second run, a second data key\n" * 100)
    run_backup(env.writer(), [src], state_dir=env.state)
    root = Path(env.url.removeprefix("file://"))
    return env, src, root, _files(root)


def test_every_object_of_every_kind_has_verifiable_parity(stored):
    env, _src, _root, pristine = stored
    objects = [n for n in pristine if not n.startswith("parity/")]
    assert {_kind(n) for n in objects} == set(KINDS)
    for name in objects:
        copies = 2 if _kind(name) in ("config", "keys", "datakeys") else 1
        for parity_name in parity_names(name, copies):
            parity = par.decode_parity(pristine[parity_name], parity_name)
            assert parity.name == name and not parity.damaged_parity_shares()
            assert parity.object_digest == par.digest(pristine[name])
    report = scrub(open_backend(env.url))
    assert report.ok and not report.verdicts, report.to_dict()


def _damage(root: Path, name: str, data: bytes, rng: random.Random, region: bool) -> int:
    damaged = bytearray(data)
    offset = rng.randrange(len(damaged))
    if region:  # any 4 KiB, aligned or not (clipped at the end of the object)
        damaged[offset : offset + par.SHARE_SIZE] = bytes(len(damaged[offset : offset + 4096]))
    else:
        damaged[offset] ^= 1 << rng.randrange(8)
    (root / name).write_bytes(bytes(damaged))
    return offset


def test_fault_campaign_detects_and_repairs_every_single_fault(stored, tmp_path):
    env, src, root, pristine = stored
    backend = open_backend(env.url)
    rng = random.Random(SEED)
    names = sorted(pristine)
    by_kind = {
        k: [n for n in names if _kind(n) == k and not n.startswith("parity/")] for k in KINDS
    }
    parity_of = {k: [n for n in names if _kind(n) == k and n.startswith("parity/")] for k in KINDS}
    faults = [False] * FLIPS + [True] * REGIONS
    outcomes = {"object": 0, "parity": 0}
    for trial, region in enumerate(faults):
        # every kind gets faults, round-robin; one in four lands in the kind's parity objects
        kind = KINDS[trial % len(KINDS)]
        name = rng.choice(parity_of[kind] if rng.random() < 0.25 else by_kind[kind])
        if pristine[name] == bytes(len(pristine[name])) and region:
            continue
        offset = _damage(root, name, pristine[name], rng, region)
        if (root / name).read_bytes() == pristine[name]:
            continue  # zeroing zeros changes nothing
        what = (
            f"trial {trial} (seed {SEED}): {'region' if region else 'flip'} at {offset} of {name}"
        )
        target = name.removeprefix("parity/").removesuffix(".1")
        before = assess(backend, target)
        found = scrub(backend).verdicts  # the whole scan finds it, and nothing else
        assert [(v.name, v.state) for v in found] == [(target, before.state)], what
        if name.startswith("parity/"):
            assert before.state == "intact" and before.parity == "damaged", what
            outcomes["parity"] += 1
        else:
            assert before.state == "repairable", (what, before)
            outcomes["object"] += 1
        after = assess(backend, target, repair=True)
        assert after.state in ("repaired", "intact"), (what, after)
        assert _files(root) == pristine, f"{what}: not restored byte for byte"
        if trial % 40 == 0:  # the check command sees the same damage (and none after repair)
            _damage(root, name, pristine[name], random.Random(trial), region)
            assert scrub(backend).verdicts, what
            if not name.startswith("parity/") and name != "config":
                assert not _check_ok(env), what
            assert scrub(backend, repair=True).ok, what
            assert run_check(env.writer()).ok, what
    assert outcomes["object"] > 140 and outcomes["parity"] > 30, outcomes
    repo, reader = env.reader()
    assert run_check(repo, reader=reader, read_data=True).ok
    out = tmp_path / "out"
    snapshot = repo.snapshots()[-1]
    result = run_restore(
        repo, reader.index, reader, plan_restore(repo, reader.index, reader, snapshot, out), out
    )
    assert not result.failed
    copy = out / str(src).lstrip("/")
    assert (copy / "var" / "rec.bin").read_bytes() == (src / "var" / "rec.bin").read_bytes()
    assert (copy / "etc" / "second.conf").read_text() == (src / "etc" / "second.conf").read_text()


def _check_ok(env) -> bool:
    """Whether ``check`` passes (a damaged writer key stops it before it starts)."""
    try:
        return run_check(env.writer()).ok
    except SealboxError:
        return False


def _pack(pristine: dict[str, bytes]) -> str:
    return max((n for n in pristine if n.startswith("data/")), key=lambda n: len(pristine[n]))


def test_damaged_parity_never_repairs_a_good_object_into_a_bad_one(stored):
    env, _src, root, pristine = stored
    name = _pack(pristine)
    parity_name = parity_names(name)[0]
    blob = bytearray(pristine[parity_name])
    blob[-1] ^= 0x01  # the last parity share
    (root / parity_name).write_bytes(bytes(blob))
    verdict = assess(open_backend(env.url), name, repair=True)
    assert verdict.state == "intact" and verdict.parity == "rewritten"
    assert _files(root) == pristine


def test_object_and_the_parity_share_it_needs_both_damaged_is_lost_and_left_alone(stored):
    env, _src, root, pristine = stored
    name = _pack(pristine)
    parity = par.decode_parity(pristine[parity_names(name)[0]], "p")
    damaged = bytearray(pristine[name])
    damaged[10] ^= 0x01  # share 0, group 0
    (root / name).write_bytes(bytes(damaged))
    blob = bytearray(pristine[parity_names(name)[0]])
    first_share = len(blob) - len(parity.parity_shares) * parity.share_size
    blob[first_share + 5] ^= 0x01  # group 0's parity share
    (root / parity_names(name)[0]).write_bytes(bytes(blob))
    verdict = assess(open_backend(env.url), name, repair=True)
    assert verdict.state == "lost" and "more than" in verdict.reason
    assert (root / name).read_bytes() == bytes(damaged), "a lost object is never rewritten"


def test_parity_of_other_content_under_the_right_name_cannot_repair(stored):
    """A forged (or stale) parity object that decodes cleanly but protects other bytes: the
    rebuilt object must match the object's name, so nothing is written."""
    env, _src, root, pristine = stored
    name = _pack(pristine)
    other = bytearray(pristine[name])
    other[100] ^= 0xFF
    (root / parity_names(name)[0]).write_bytes(par.encode_parity(name, bytes(other)))
    damaged = bytearray(pristine[name])
    damaged[5000] ^= 0x01
    (root / name).write_bytes(bytes(damaged))
    verdict = assess(open_backend(env.url), name, repair=True)
    assert verdict.state == "lost"
    assert (root / name).read_bytes() == bytes(damaged)


def test_a_vanished_data_key_is_rebuilt_from_its_parity(stored):
    env, _src, root, pristine = stored
    key = next(n for n in pristine if n.startswith("datakeys/"))
    (root / key).unlink()
    (root / parity_names(key)[0]).unlink()  # and one of its two parity objects
    report = scrub(open_backend(env.url), repair=True)
    assert [v.name for v in report.of("repaired")] == [key]
    assert _files(root) == pristine


def test_a_vanished_pack_is_named_lost_and_never_rebuilt_whole(stored):
    """Parity without its object may be what a forget or prune left (it deletes the parity
    first, but a scrub writing missing parity can race it): rebuilding could bring back what
    was deleted, so only data keys, writer keys and the config are rebuilt whole."""
    env, _src, root, pristine = stored
    name = _pack(pristine)
    (root / name).unlink()
    check = run_check(env.writer())
    assert f"{name}: lost (missing; only its parity is left" in "\n".join(check.errors)
    report = scrub(open_backend(env.url), repair=True)
    assert [v.name for v in report.of("orphan")] == [name] and not report.of("repaired")
    assert not (root / "parity" / name).exists() and not (root / name).exists()


def test_forget_and_prune_delete_parity_with_its_object(stored, tmp_path):
    env, _src, root, _pristine = stored
    from sealbox.repo.forget import forget_snapshots, prune

    repo = env.writer()
    first = repo.snapshots()[0]
    forget_snapshots(repo, [first])
    prune(repo)
    after = _files(root)
    for name in after:
        if name.startswith("parity/"):
            target = name.removeprefix("parity/").removesuffix(".1")
            assert target in after, f"{name} outlived its object"
    shutil.rmtree(tmp_path / "src")


def test_the_policy_is_the_writers_and_each_parity_object_records_it(env, tmp_path):
    from sealbox.repo.heal import ParityBackend

    src = make_tree(tmp_path / "src", big=600_000)
    repo = env.writer()
    assert isinstance(repo.backend, ParityBackend)
    repo.backend.policy = par.ParityPolicy(k=32, m=2)
    run_backup(repo, [src], state_dir=env.state)
    root = Path(env.url.removeprefix("file://"))
    pack = next(p for p in (root / "data").rglob("*") if p.is_file())
    name = str(pack.relative_to(root))
    parity = par.decode_parity((root / "parity" / name).read_bytes(), name)
    assert (parity.k, parity.m) == (32, 2)
    repo = env.writer()
    repo.backend.policy = None  # "off"
    (src / "etc" / "new.conf").write_text("after parity was turned off\n")
    run_backup(repo, [src], state_dir=env.state)
    snapshots = sorted((root / "snapshots").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    assert not (root / "parity" / "snapshots" / snapshots[-1].name).exists()
    report = scrub(open_backend(env.url))
    assert f"snapshots/{snapshots[-1].name}" in [v.name for v in report.parity("missing")]


def _other_config(config: bytes) -> bytes:
    import orjson

    doc = orjson.loads(config)
    doc["id"] = "f" * 32  # another repository (its signature no longer holds)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"  # the same layout


def test_planted_parity_never_replaces_an_intact_config(stored):
    """The config is not named by its content: a parity object planted for another config (an
    old repository upgraded, an append-only store) must not rewrite it. An intact config
    verifies under its own signer key-free, so it is never rot."""
    env, _src, root, pristine = stored
    planted = par.encode_parity("config", _other_config(pristine["config"]))
    for parity_name in parity_names("config"):
        (root / parity_name).write_bytes(planted)
    verdict = assess(open_backend(env.url), "config", repair=True)
    assert verdict.state == "intact" and verdict.parity == "rewritten"
    assert _files(root) == pristine


def test_parity_of_other_content_does_not_rebuild_a_damaged_config(stored):
    env, _src, root, pristine = stored
    planted = par.encode_parity("config", _other_config(pristine["config"]))
    for parity_name in parity_names("config"):
        (root / parity_name).write_bytes(planted)
    damaged = bytearray(pristine["config"])
    damaged[3] ^= 0x01
    (root / "config").write_bytes(bytes(damaged))
    verdict = assess(open_backend(env.url), "config", repair=True)
    assert verdict.state == "lost" and "does not verify" in verdict.reason
    assert (root / "config").read_bytes() == bytes(damaged)
    compact = par.encode_parity("config", _other_config(pristine["config"]).replace(b"\n", b""))
    (root / "parity" / "config").write_bytes(compact)
    (root / "parity" / "config.1").unlink()
    verdict = assess(open_backend(env.url), "config", repair=True)
    assert verdict.state == "lost" and "other content" in verdict.reason


def test_an_object_the_destination_fails_to_hand_over_is_not_judged(stored):
    """A dropped link is neither damage nor loss: the scrub stops, and no parity is removed."""
    from sealbox.errors import DestinationError
    from sealbox.repo.heal import ParityBackend

    env, _src, root, pristine = stored
    name = _pack(pristine)

    class Flaky(ParityBackend):
        def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
            if key == name:
                raise DestinationError("connection reset")
            return super().get(key, offset, length)

    with pytest.raises(DestinationError):
        scrub(Flaky(open_backend(env.url)), repair=True)
    assert _files(root) == pristine


def test_critical_objects_keep_two_parity_shares_in_two_objects(stored):
    _env, _src, _root, pristine = stored
    for name in (n for n in pristine if _kind(n) in ("config", "keys", "datakeys")):
        if name.startswith("parity/"):
            continue
        for parity_name in parity_names(name):
            parity = par.decode_parity(pristine[parity_name], parity_name)
            assert parity.m == 2 and parity.k == par.DEFAULT_POLICY.k, parity_name


def test_objects_not_named_by_content_are_rebuilt_only_from_rot_like_damage(tmp_path):
    """A recordings batch is named by its sequence number: its parity could describe other
    content, so a rebuild must differ from what is stored the way rot does."""
    from sealbox.repo.heal import ParityBackend

    backend = ParityBackend(open_backend(f"file://{tmp_path}/repo"))
    name = "recordings/batch-000000000001"
    batch = bytes((i * 31) % 253 for i in range(5 * 4096 + 123))
    backend.put(name, batch)
    path = tmp_path / "repo" / name
    for start, end in ((0, 1), (4000, 8000), (len(batch) - 5000, len(batch) - 905)):
        damaged = bytearray(batch)
        damaged[start:end] = bytes(b ^ 0xFF for b in damaged[start:end])
        path.write_bytes(bytes(damaged))
        assert assess(backend, name, repair=True).state == "repaired", (start, end)
        assert path.read_bytes() == batch
    path.write_bytes(batch[:-3000])  # cut short (two shares gone, one per group)
    assert assess(backend, name, repair=True).state == "repaired"
    other = bytearray(batch)
    other[10] ^= 0xFF
    other[3 * 4096] ^= 0xFF  # two changes 12 KiB apart: other content, not one region of rot
    (tmp_path / "repo" / "parity" / name).write_bytes(par.encode_parity(name, bytes(other)))
    damaged = bytearray(batch)
    damaged[10] ^= 0x01
    path.write_bytes(bytes(damaged))
    verdict = assess(backend, name, repair=True)
    assert verdict.state == "lost" and "other content" in verdict.reason
    assert path.read_bytes() == bytes(damaged)
