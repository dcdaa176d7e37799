"""Check a repository: structure without any key, and with a key every byte of data.

Without a key (what the appliance can always do): every content-named object matches its name
(BLAKE3), the index and the pack headers agree, every blob a snapshot needs is indexed. With
``--read-data`` and a key: every blob is decrypted and checked against its keyed id, and every
snapshot's trees are walked so a damaged blob is reported with the snapshots and files it breaks.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sealbox.backends.base import read_bounded
from sealbox.errors import CorruptFileError, NotFoundError, SealboxError
from sealbox.repo import format as fmt
from sealbox.repo.blobs import BlobReader
from sealbox.repo.heal import HealReport, survey
from sealbox.repo.repository import Index, Repository, Snapshot, pack_path
from sealbox.repo.tree import decode_tree, node_name

__all__ = ["CheckReport", "run_check"]


@dataclass
class CheckReport:
    snapshots: int = 0
    packs: int = 0
    blobs_checked: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damaged_packs: set[str] = field(default_factory=set)
    damaged_blobs: set[bytes] = field(default_factory=set)
    affected_snapshots: dict[str, list[str]] = field(default_factory=dict)  # snapshot -> files
    damaged_objects: set[str] = field(default_factory=set)  # full names, missing ones too
    parity: HealReport = field(default_factory=HealReport)  # repairable or lost, parity health
    repair: HealReport | None = None  # what --repair did before the check, when asked

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "snapshots": self.snapshots,
            "packs": self.packs,
            "blobs_checked": self.blobs_checked,
            "notes": self.notes,
            "errors": self.errors,
            "damaged_packs": sorted(self.damaged_packs),
            "affected_snapshots": {k: v for k, v in sorted(self.affected_snapshots.items())},
            "damaged_objects": {
                v.name: v.state for v in self.parity.verdicts if v.state != "intact"
            },
            "parity": self.parity.to_dict(),
        } | ({"repair": self.repair.to_dict()} if self.repair is not None else {})


def _check_named(repo: Repository, prefix: str, report: CheckReport) -> None:
    for info in repo.backend.list(prefix):
        name = info.name.rsplit("/", 1)[-1]
        try:
            data = read_bounded(repo.backend, info.name, fmt.MAX_SIZE[prefix.rstrip("/")])
        except SealboxError as exc:
            report.errors.append(f"{info.name}: unreadable: {exc}")
            continue
        if fmt.content_name(data) != name:
            report.errors.append(f"{info.name}: damaged (content does not match its name)")
            report.damaged_objects.add(info.name)
            if prefix == "data/":
                report.damaged_packs.add(name)


def _check_packs(repo: Repository, index: Index, report: CheckReport, subset: float | None) -> None:
    present = dict(repo.list_packs())
    for pack in index.packs:
        if pack not in present:
            report.errors.append(f"{pack_path(pack)}: missing (the index names it)")
            report.damaged_packs.add(pack)
            report.damaged_objects.add(pack_path(pack))
    names = sorted(present)
    if subset is not None:
        names = random.sample(names, max(1, round(len(names) * subset))) if names else []
    for pack in names:
        report.packs += 1
        where = pack_path(pack)
        try:
            data = repo.read_pack(pack)
        except SealboxError as exc:
            report.errors.append(f"{where}: unreadable: {exc}")
            report.damaged_packs.add(pack)
            report.damaged_objects.add(where)
            continue
        if fmt.content_name(data) != pack:
            report.errors.append(f"{where}: damaged (content does not match its name)")
            report.damaged_packs.add(pack)
            report.damaged_objects.add(where)
            continue
        if pack not in index.packs:
            report.notes.append(
                f"{where}: not in any index yet (left by an interrupted run; the next backup reuses it)"
            )
            continue
        try:
            header = fmt.decode_pack_header(data, repo.keys.index_key, where)
        except CorruptFileError as exc:
            report.errors.append(str(exc))
            report.damaged_packs.add(pack)
            continue
        if sorted(header, key=lambda e: e.offset) != sorted(
            index.packs[pack], key=lambda e: e.offset
        ):
            report.errors.append(f"{where}: its header and the index disagree")
            report.damaged_packs.add(pack)


def _read_data(
    repo: Repository,
    index: Index,
    reader: BlobReader,
    report: CheckReport,
    subset: float | None,
    progress: Callable[[int], None] | None,
) -> None:
    packs = sorted(index.packs)
    if subset is not None:
        packs = random.sample(packs, max(1, round(len(packs) * subset))) if packs else []
    for pack in packs:
        where = pack_path(pack)
        try:
            data = repo.read_pack(pack)
        except (SealboxError, OSError) as exc:
            report.errors.append(f"{where}: unreadable: {exc}")
            report.damaged_blobs.update(e.blob_id for e in index.packs[pack])
            continue
        view = memoryview(data)
        for entry in index.packs[pack]:
            report.blobs_checked += 1
            try:
                reader.decode(entry, view[entry.offset : entry.offset + entry.length], where)
            except CorruptFileError as exc:
                report.errors.append(str(exc))
                report.damaged_blobs.add(entry.blob_id)
                report.damaged_packs.add(pack)
            if progress:
                progress(entry.length)


def _affected(
    reader: BlobReader | None, snapshot: Snapshot, bad: set[bytes], report: CheckReport
) -> list[str]:
    """Files of a snapshot that need a damaged blob (or '(unknown files: no key)' without a key)."""
    if reader is None:
        return ["(files unknown without a key: run check --read-data with --identity or --share)"]
    files: list[str] = []

    def walk(tree_id: str, prefix: str) -> None:
        blob = bytes.fromhex(tree_id)
        if blob in bad:
            files.append(f"{prefix or '/'}/ (directory listing damaged)")
            return
        try:
            nodes = decode_tree(reader.read(blob), prefix or "/")
        except (CorruptFileError, NotFoundError) as exc:
            files.append(f"{prefix or '/'}/ ({exc})")
            return
        for node in nodes:
            path = f"{prefix}/{node_name(node)}"
            if node.get("type") == "dir" and node.get("subtree"):
                walk(node["subtree"], path)
            elif any(bytes.fromhex(b) in bad for b in node.get("content", ())):
                files.append(path)

    walk(snapshot.tree, "")
    return files


def run_check(
    repo: Repository,
    *,
    reader: BlobReader | None = None,
    read_data: bool = False,
    subset: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> CheckReport:
    report = CheckReport()
    report.errors += [f"{note} (tampering?)" for note in repo.notes]
    for prefix in ("index/", "snapshots/", "refs/", "datakeys/", "keys/"):
        _check_named(repo, prefix, report)
    index = Index()
    for info in repo.backend.list("index/"):
        try:
            data = read_bounded(repo.backend, info.name, fmt.MAX_SIZE["index"])
            for pack, entries in fmt.decode_index(data, repo.keys.index_key, info.name).items():
                index.add_pack(pack, entries)
        except SealboxError as exc:
            report.errors.append(f"{info.name}: {exc}")
    for pack in sorted(index.conflicts):
        report.errors.append(
            f"{pack_path(pack)}: index files disagree about its contents (one was forged or damaged)"
        )
    _check_packs(repo, index, report, None if read_data else subset)
    if read_data and reader is not None:
        reader.index = index
        _read_data(repo, index, reader, report, subset, progress)
    bad_blobs = set(report.damaged_blobs)
    for pack in report.damaged_packs:
        bad_blobs.update(e.blob_id for e in index.packs.get(pack, []))
    snapshots = []
    for info in repo.backend.list("snapshots/"):
        try:
            snapshots.append(repo.load_snapshot(info.name.rsplit("/", 1)[-1]))
        except SealboxError as exc:
            report.errors.append(str(exc))
    report.snapshots = len(snapshots)
    for snapshot in snapshots:
        try:
            refs = repo.load_refs(snapshot.refs)
        except SealboxError as exc:
            report.errors.append(f"snapshot {snapshot.id[:12]}: reference list: {exc}")
            report.affected_snapshots[snapshot.id] = ["(reference list damaged)"]
            continue
        missing = [r for r in refs if r not in index]
        if missing:
            report.errors.append(
                f"snapshot {snapshot.id[:12]}: {len(missing)} blob(s) it needs are missing"
            )
        hit = bad_blobs.intersection(refs) | set(missing)
        if hit:
            report.affected_snapshots[snapshot.id] = _affected(
                reader if read_data else None, snapshot, hit, report
            )
    _check_parity(repo, report)
    return report


def _check_parity(repo: Repository, report: CheckReport) -> None:
    """Each damaged object named repairable or lost; damaged parity is an error (rot at the
    destination, though nothing is lost yet), missing parity a note (--repair writes both)."""
    report.parity = survey(repo.backend, report.damaged_objects)
    for verdict in report.parity.verdicts:
        if verdict.state == "repairable":
            report.errors.append(f"{verdict.name}: repairable from its parity (check --repair)")
        elif verdict.state == "lost":
            report.errors.append(
                f"{verdict.name}: lost, parity cannot repair it ({verdict.reason})"
            )
        elif verdict.parity == "damaged":
            report.errors.append(
                f"parity/{verdict.name}: damaged (the object is intact; check --repair rewrites it)"
            )
        elif verdict.state == "orphan" and verdict.name in report.damaged_objects:
            report.errors.append(
                f"{verdict.name}: lost (missing; only its parity is left, and parity does not"
                " rebuild a whole missing object of this kind, which forget or prune may remove)"
            )
        elif verdict.state == "orphan":
            report.notes.append(
                f"parity/{verdict.name}: left without its object (a removal or a loss; check"
                " --repair removes it)"
            )
    missing = [v.name for v in report.parity.parity("missing") if v.state == "intact"]
    if missing:  # one note: a repository made before parity has it for every object
        shown = ", ".join(missing[:5]) + (
            f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        )
        report.notes.append(
            f"{len(missing)} object(s) without parity, written by an older Sealbox, with"
            f" parity off, or by an interrupted run (check --repair writes it): {shown}"
        )
