"""Legal holds: signed records at the destination that keep snapshots from being forgotten,
whatever retention says (format.md §19a).

A hold names a snapshot (by id) or a recordings session (by id: every snapshot holding one of
its recordings). Records are ``holds/NAME``: sealed with the index key (kind ``hold``, so the
storage side cannot read the reasons), named by their content, and signed by the appliance's
signing key (SSHSIG namespace ``sealbox-hold``) over every field but the signature. A hold is
released by a second record (``action`` ``release``, ``hold`` = the hold's name), never by
deleting the first: that works on append-only destinations and leaves a trail.

What counts: any hold that decodes keeps its snapshots, signed by a pinned key or not (a forged
hold can only keep more); a release counts only when its signature is by a pinned signer (a
forged release could otherwise lift a legal hold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import orjson

from sealbox.backends.base import read_bounded
from sealbox.crypto import sshsig
from sealbox.errors import CorruptFileError, NotFoundError, SealboxError
from sealbox.repo import format as fmt
from sealbox.repo.heal import PARITY_PREFIX, parity_target
from sealbox.repo.index import Index
from sealbox.repo.repository import Repository, Snapshot, pack_path

__all__ = [
    "MAX_HOLD",
    "NS_HOLD",
    "Hold",
    "HoldRecord",
    "active_holds",
    "add_hold",
    "held_snapshots",
    "objects_needed",
    "release_hold",
]

NS_HOLD = "sealbox-hold"
MAX_HOLD = 64 << 10
KIND = b"hold"


@dataclass(frozen=True)
class HoldRecord:
    action: str  # "hold" or "release"
    repo: str  # the repository id: a record of another repository is ignored
    time: str
    reason: str
    snapshot: str = ""  # what a hold names: a snapshot id...
    session: str = ""  # ...or a recordings session id
    hold: str = ""  # what a release names: the hold record's name
    signer: str = ""
    signature: str = ""

    def body(self) -> bytes:
        doc = asdict(self)
        doc.pop("signature")
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def decode(cls, doc: object, where: str) -> HoldRecord:
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            raise CorruptFileError(f"{where}: malformed hold record")
        try:
            record = cls(**doc)
        except TypeError as exc:
            raise CorruptFileError(f"{where}: unexpected hold record fields") from exc
        if record.action not in ("hold", "release"):
            raise CorruptFileError(f"{where}: unknown hold action {record.action[:20]!r}")
        return record


@dataclass(frozen=True)
class Hold:
    """An active hold, as ``hold list`` shows it."""

    id: str  # the record's name
    snapshot: str
    session: str
    reason: str
    time: str
    verified: bool  # signed by a pinned key


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _store(repo: Repository, record: HoldRecord) -> str:
    key, _ = repo.signing_key()
    record = replace(record, signer=sshsig.public_key_line(key.public_key()))
    record = replace(record, signature=sshsig.sign(key, record.body(), NS_HOLD))
    data = fmt.seal_json(repo.keys.index_key, KIND, asdict(record))
    name = fmt.content_name(data)
    repo.backend.put(f"holds/{name}", data, exclusive=True)
    repo.backend.flush()
    return name


def add_hold(
    repo: Repository, reason: str, *, snapshot: str = "", session: str = "", now: str = ""
) -> str:
    """Hold a snapshot (a full id) or a session; returns the hold's id."""
    if bool(snapshot) == bool(session):
        raise ValueError("a hold names one snapshot or one session")
    record = HoldRecord("hold", repo.config.id, now or _now(), reason, snapshot, session)
    return _store(repo, record)


def release_hold(repo: Repository, hold_id: str, reason: str, now: str = "") -> str:
    if not any(h.id == hold_id for h in active_holds(repo)):
        raise NotFoundError(f"no active hold {hold_id[:16]!r}")
    return _store(repo, HoldRecord("release", repo.config.id, now or _now(), reason, hold=hold_id))


def _records(repo: Repository) -> list[tuple[str, HoldRecord, bool]]:
    found = []
    for info in repo.backend.list("holds/"):
        name = info.name.removeprefix("holds/")
        where = f"hold {name[:12]}"
        try:
            data = read_bounded(repo.backend, info.name, MAX_HOLD, where)
            if fmt.content_name(data) != name:
                raise CorruptFileError(f"{where}: does not match its name")
            record = HoldRecord.decode(fmt.open_json(repo.keys.index_key, KIND, data, where), where)
        except SealboxError:
            continue  # junk under holds/: neither holds nor releases anything
        if record.repo != repo.config.id:
            continue
        try:
            signer = sshsig.verify(record.signature, record.body(), NS_HOLD)
            verified = sshsig.same_key(
                signer, sshsig.parse_public_key_line(record.signer)
            ) and repo.trust.pins(signer)
        except SealboxError:
            verified = False
        found.append((name, record, verified))
    return found


def active_holds(repo: Repository) -> list[Hold]:
    """Holds not released by a verified release, oldest first."""
    records = _records(repo)
    released = {r.hold for _, r, ok in records if r.action == "release" and ok}
    holds = [
        Hold(name, r.snapshot, r.session, r.reason, r.time, ok)
        for name, r, ok in records
        if r.action == "hold" and name not in released
    ]
    return sorted(holds, key=lambda h: (h.time, h.id))


def objects_needed(repo: Repository, index: Index, snapshots: list[Snapshot]) -> set[str]:
    """Every object the snapshots need to be restored: their headers, reference lists, data
    keys and packs, with the repository's config, keys and index files."""
    names = {"config"}
    names |= {info.name for prefix in ("keys/", "index/") for info in repo.backend.list(prefix)}
    for snap in snapshots:
        names |= {f"snapshots/{snap.id}", f"refs/{snap.refs}"}
        names |= {f"datakeys/{key}" for key in snap.data_keys}
        for blob in repo.load_refs(snap.refs):  # every pack the index names for it, not the first
            names |= {pack_path(pack) for pack, _ in index.locations(blob)}
    # And their parity (format.md §9a): what repairs them is held with them.
    names |= {
        info.name for info in repo.backend.list(PARITY_PREFIX) if parity_target(info.name) in names
    }
    return names


def held_snapshots(repo: Repository, session_snapshots: dict[str, set[str]]) -> dict[str, str]:
    """Snapshot id -> why it is held. ``session_snapshots``: session id -> the snapshots that
    hold its recordings (from the recordings manifest)."""
    held: dict[str, str] = {}
    for hold in active_holds(repo):
        targets = {hold.snapshot} if hold.snapshot else session_snapshots.get(hold.session, set())
        what = f"held ({hold.reason})" if hold.reason else "held"
        for snapshot in targets:
            held.setdefault(snapshot, what + f", hold {hold.id[:12]}")
    return held
