"""Retention (which snapshots a policy keeps) and prune (reclaim the space of the others).

Retention follows restic's rules: snapshots are grouped by (host, kind, paths); within a group,
newest first, ``keep_last`` keeps the N newest, ``keep_hourly``/``daily``/``weekly``/``monthly``/
``yearly`` keep the newest snapshot of each of the last N such periods that have one, and
``keep_within`` keeps everything younger than the duration. A snapshot is kept if any rule keeps it.

Prune runs under the exclusive lock. It reads the pack headers and the reference lists of the
snapshots that remain, deletes packs nobody needs, and repacks packs that are mostly garbage by
copying the still-needed encrypted blobs as they are (no key is needed to move ciphertext).
Order: new packs, then the new
index, then deletion of the old index files, then of the old packs: a crash at any point leaves a
repository where every snapshot is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sealbox.errors import DestinationError, IntegrityError, SealboxError
from sealbox.repo import format as fmt
from sealbox.repo.locks import Lock
from sealbox.repo.repository import Repository, Snapshot, pack_path
from sealbox.schedule import parse_duration

__all__ = ["Decision", "KeepRules", "PruneResult", "apply_policy", "decide", "prune"]

REPACK_WASTE = 0.2  # repack a pack when more than this fraction of its bytes is unused

_BUCKETS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "keep_hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "keep_daily": lambda t: (t.year, t.month, t.day),
    "keep_weekly": lambda t: tuple(t.isocalendar()[:2]),
    "keep_monthly": lambda t: (t.year, t.month),
    "keep_yearly": lambda t: (t.year,),
}


class KeepRules(Protocol):
    """What a retention policy says; unset rules are None (the product's
    ``config.models.Retention`` is one)."""

    @property
    def keep_last(self) -> int | None: ...
    @property
    def keep_hourly(self) -> int | None: ...
    @property
    def keep_daily(self) -> int | None: ...
    @property
    def keep_weekly(self) -> int | None: ...
    @property
    def keep_monthly(self) -> int | None: ...
    @property
    def keep_yearly(self) -> int | None: ...
    @property
    def keep_within(self) -> str | None: ...
    @property
    def keep_at_least(self) -> str | None: ...
    @property
    def delete_after(self) -> str | None: ...


@dataclass
class Decision:
    """What a policy does to a list of snapshots; ``why`` says, for each snapshot that the age
    limits moved, which limit did (``keep_at_least`` keeps, ``delete_after`` forgets)."""

    keep: list[Snapshot]
    forget: list[Snapshot]
    why: dict[str, str] = field(default_factory=dict)


def _group(snapshot: Snapshot) -> tuple[str, str, tuple[str, ...]]:
    return snapshot.hostname, snapshot.kind, tuple(sorted(snapshot.paths))


def apply_policy(
    snapshots: list[Snapshot], policy: KeepRules, now: datetime
) -> tuple[list[Snapshot], list[Snapshot]]:
    """(keep, forget): :func:`decide` without the reasons."""
    decision = decide(snapshots, policy, now)
    return decision.keep, decision.forget


def decide(
    snapshots: list[Snapshot],
    policy: KeepRules,
    now: datetime,
    held: dict[str, str] | None = None,
) -> Decision:
    """Which snapshots the policy keeps. The count and period rules first (a policy with none
    keeps everything); then the age limits, which win over them: ``delete_after`` forgets what
    is older, ``keep_at_least`` keeps what is younger (a config has delete_after >= keep_at_least,
    so the two never disagree); then legal holds (``held``: snapshot id -> why), which win over
    everything: a held snapshot is kept, and said so when a rule would have forgotten it."""
    keep_ids = _kept_by_rules(snapshots, policy, now)
    why: dict[str, str] = {}
    if policy.delete_after:
        limit = now - parse_duration(policy.delete_after)
        for s in snapshots:
            if s.id in keep_ids and s.datetime < limit:
                keep_ids.discard(s.id)
                why[s.id] = f"older than delete_after ({policy.delete_after})"
    if policy.keep_at_least:
        limit = now - parse_duration(policy.keep_at_least)
        for s in snapshots:
            if s.id not in keep_ids and s.datetime >= limit:
                keep_ids.add(s.id)
                why[s.id] = f"younger than keep_at_least ({policy.keep_at_least})"
    for s in snapshots:
        if held and s.id in held and s.id not in keep_ids:
            keep_ids.add(s.id)
            past = why.get(s.id, "")
            why[s.id] = held[s.id] + (f", though {past}" if past else "")
    keep = [s for s in snapshots if s.id in keep_ids]
    return Decision(keep, [s for s in snapshots if s.id not in keep_ids], why)


def _kept_by_rules(snapshots: list[Snapshot], policy: KeepRules, now: datetime) -> set[str]:
    if not any(getattr(policy, k) for k in ("keep_last", "keep_within", *_BUCKETS)):
        return {s.id for s in snapshots}
    keep_ids: set[str] = set()
    groups: dict[tuple[str, str, tuple[str, ...]], list[Snapshot]] = {}
    for snapshot in snapshots:
        groups.setdefault(_group(snapshot), []).append(snapshot)
    for members in groups.values():
        members.sort(key=lambda s: s.time, reverse=True)
        if policy.keep_last:
            keep_ids.update(s.id for s in members[: policy.keep_last])
        if policy.keep_within:
            horizon = now - parse_duration(policy.keep_within)
            keep_ids.update(s.id for s in members if s.datetime >= horizon)
        for rule, bucket in _BUCKETS.items():
            count = getattr(policy, rule)
            if not count:
                continue
            seen: list[tuple[int, ...]] = []
            for s in members:
                key = bucket(s.datetime)
                if key not in seen:
                    if len(seen) == count:
                        break
                    seen.append(key)
                    keep_ids.add(s.id)
    return keep_ids


@dataclass
class PruneResult:
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    bytes_freed: int = 0
    blobs_kept: int = 0
    errors: list[str] = field(default_factory=list)


def forget_snapshots(repo: Repository, snapshots: list[Snapshot]) -> None:
    """Delete snapshots (under a shared lock, so never while a prune is reading them)."""
    if not snapshots:
        return
    with Lock(repo.backend, exclusive=False, purpose="forget"):
        gone = {s.id for s in snapshots}
        others = repo.scan_all("forget")
        # A reference list is content-named: two snapshots may name the same one (a forged
        # snapshot may name a real one's on purpose). It goes only when nobody else names it.
        still_named = {s.refs for s in others if s.id not in gone}
        for snapshot in snapshots:
            repo.backend.delete(f"snapshots/{snapshot.id}")  # the snapshot first: then it is gone
            if snapshot.refs not in still_named:
                repo.backend.delete(f"refs/{snapshot.refs}")


def prune(repo: Repository, dry_run: bool = False, grace: timedelta | None = None) -> PruneResult:
    """Reclaim the space no snapshot needs, deciding only from what cannot be forged by whoever
    holds the writer key after the fact:

    - what is in a pack comes from the pack's own header (sealed, and the pack is named by its
      content), never from index files, which anyone with the writer key can add;
    - what is needed comes from every snapshot that decodes, authentic or not (keeping too much
      costs space; deleting what a real snapshot needs loses it); an entry is needed when its
      blob is in a snapshot's reference list and its data key among the snapshot's signed
      ``data_keys``; a reference list that cannot be read stops the prune (nothing deleted);
    - a pack is deleted only when no entry of its header is needed, however many other copies
      claim to hold the same blobs; a pack whose header cannot be read is kept and reported.
    """
    result = PruneResult()
    with Lock(repo.backend, exclusive=True, purpose="prune"):
        sizes = dict(repo.list_packs())
        headers: dict[str, list[fmt.PackEntry]] = {}
        unreadable: list[str] = []
        for name, size in sizes.items():
            try:
                headers[name] = repo.read_pack_header(name, size)
            except SealboxError as exc:
                unreadable.append(name)
                result.errors.append(f"{pack_path(name)}: kept, its header is unreadable ({exc})")
        decoded = repo.scan_all("prune")
        used: set[bytes] = set()
        used_keys: set[bytes] = set()
        for snapshot in decoded:
            try:
                used.update(repo.load_refs(snapshot.refs))
            except SealboxError as exc:
                if not snapshot.verified and not isinstance(exc, DestinationError):
                    # Not authentic for this prune's pinned signers: it cannot hold prune back
                    # forever (a forged snapshot naming a missing list would); it is reported.
                    result.errors.append(
                        f"snapshot {snapshot.id[:12]} (not verified): reference list unreadable"
                        f" ({exc}); its data is not kept"
                    )
                    continue
                raise IntegrityError(
                    f"prune stopped, nothing deleted: snapshot {snapshot.id[:12]}'s reference list"
                    f" cannot be read ({exc}), so what it needs is unknown (run check)"
                ) from exc
            used_keys.update(bytes.fromhex(k) for k in snapshot.data_keys)
        keep_packs: dict[str, list[fmt.PackEntry]] = {}
        repack: list[tuple[str, list[fmt.PackEntry]]] = []
        delete: list[str] = []
        for pack, entries in headers.items():
            needed = [e for e in entries if e.blob_id in used and e.key_id in used_keys]
            waste = sum(e.length for e in entries) - sum(e.length for e in needed)
            if not needed:
                delete.append(pack)
            elif waste > REPACK_WASTE * sizes.get(pack, 1):
                repack.append((pack, needed))
                delete.append(pack)
            else:
                keep_packs[pack] = entries
        result.blobs_kept = sum(len(e) for e in keep_packs.values()) + sum(
            len(n) for _, n in repack
        )
        result.bytes_freed = sum(sizes.get(p, 0) for p in delete)
        result.packs_deleted = len(delete) - len(repack)
        result.packs_repacked = len(repack)
        if dry_run:
            return result
        new_packs, failed = _repack(repo, repack, result.errors)
        result.packs_written = len(new_packs)
        keep_packs.update(new_packs)
        keep_packs.update({pack: headers[pack] for pack in failed})
        if unreadable:
            # A pack kept unread keeps what the index files said of it (a wrong entry only fails
            # authentication when read): dropping it from the index would hide it as surely as
            # deleting it.
            claimed = repo.load_index().packs
            keep_packs.update({pack: claimed.get(pack, []) for pack in unreadable})
        delete = [pack for pack in delete if pack not in failed]
        old_index = [info.name for info in repo.backend.list("index/")]  # damaged ones too
        new_index = repo.save_index(keep_packs) if keep_packs else []
        repo.backend.flush()  # the new index is durable before anything it replaces goes
        for name in old_index:
            if name not in new_index:
                repo.backend.delete(name)
        for pack in delete:
            repo.backend.delete(pack_path(pack))
        needed_keys = {e.key_id.hex() for entries in keep_packs.values() for e in entries}
        needed_keys |= {k.hex() for k in used_keys}
        if unreadable:  # packs kept unread: their keys are unknown, so every key stays
            return result
        for info in repo.backend.list("datakeys/"):
            if info.name.rsplit("/", 1)[-1] not in needed_keys:
                repo.backend.delete(info.name)
    return result


def _repack(
    repo: Repository, work: list[tuple[str, list[fmt.PackEntry]]], errors: list[str]
) -> tuple[dict[str, list[fmt.PackEntry]], set[str]]:
    """Copy still-needed blobs (ciphertext as is) into new packs; return them and the packs that
    could not be copied (damaged or unreadable: they are kept, and named in ``errors``)."""
    failed: set[str] = set()
    out: dict[str, list[fmt.PackEntry]] = {}
    buffer = bytearray()
    entries: list[fmt.PackEntry] = []

    def flush() -> None:
        nonlocal buffer, entries
        if not entries:
            return
        buffer += fmt.encode_pack_header(entries, repo.keys.index_key)
        name = fmt.content_name(buffer)
        repo.backend.put(pack_path(name), buffer, exclusive=False)
        out[name] = entries
        buffer, entries = bytearray(), []

    for pack, needed in work:
        try:
            data = repo.read_pack(pack)
        except SealboxError as exc:
            data = b""
            errors.append(f"{pack_path(pack)}: kept, cannot be repacked ({exc})")
        if fmt.content_name(data) != pack:
            if data:
                errors.append(f"{pack_path(pack)}: kept, damaged (run check)")
            failed.add(pack)
            continue
        for e in needed:
            entries.append(
                fmt.PackEntry(e.blob_type, e.blob_id, len(buffer), e.length, e.raw_length, e.key_id)
            )
            buffer += data[e.offset : e.offset + e.length]
            if len(buffer) >= repo.config.pack_size:
                flush()
    flush()
    return out, failed
