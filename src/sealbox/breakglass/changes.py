"""The change list beside a secrets backup (``NAME.changes.json``, format.md §6a): each item's id
and when it last changed, signed by the appliance, readable without any private key.

After a system restore from last night, every credential rotated since then is stale on the
restored appliance; the newest secrets backup's change list says which ones, to a machine that
holds no key. It holds item ids and change times only: no name, host, user, type or secret. What
it tells whoever reads the destination: how many items exist, how often they rotate, and the ids
(which the sources choose: opaque numbers for a vault, but the operator can set ``id_prefix``);
the secrets backup's own manifest already says how many items of each type exist.

Pure code: bytes in, typed documents out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.crypto import sshsig
from sealbox.crypto.trust import Endorsement, Trust
from sealbox.errors import CorruptFileError

__all__ = [
    "FORMAT",
    "MAX_CHANGES",
    "NS_CHANGES",
    "SUFFIX",
    "ChangeList",
    "parse",
    "parse_time",
    "seal",
]

FORMAT = "sealbox-secrets-changes"
VERSION = 1
NS_CHANGES = "sealbox-changes"
SUFFIX = ".changes.json"
MAX_CHANGES = 64 << 20  # 1,000,000 items of ~60 bytes


@dataclass(frozen=True)
class ChangeList:
    file: str  # the secrets backup it belongs to
    appliance: str
    created: str
    items: tuple[tuple[str, str | None], ...]  # (id, updated or None), in the backup's order
    pinned: bool  # signed by a key the reader pins

    def changed_since(self, when: datetime) -> list[tuple[str, str]]:
        """Items whose last change is at or after ``when``'s second, newest first. Sources
        keep whole seconds: a change in the snapshot's own second may have come after it, and
        listing one credential too many is better than missing one."""
        since = when.replace(microsecond=0)
        found = [(t, i, u) for i, u in self.items if u and (t := parse_time(u)) and t >= since]
        return [(i, u) for _, i, u in sorted(found, reverse=True)]

    @property
    def undated(self) -> list[str]:
        """Items whose source gives no (readable) change time: they may have changed at any
        moment."""
        return [i for i, u in self.items if parse_time(u) is None]


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time (naive ones taken as UTC), or None when it is none or not a time."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _body(doc: dict[str, object]) -> bytes:
    return orjson.dumps(
        {k: v for k, v in doc.items() if k != "signature"}, option=orjson.OPT_SORT_KEYS
    )


def seal(
    *,
    file: str,
    appliance: str,
    created: str,
    items: Iterable[tuple[str, str | None]],
    signer: Ed25519PrivateKey,
    endorsements: list[Endorsement],
) -> bytes:
    doc: dict[str, object] = {
        "format": FORMAT,
        "version": VERSION,
        "file": file,
        "appliance": appliance,
        "created": created,
        "items": [[i, u] for i, u in items],
        "signer": sshsig.public_key_line(signer.public_key()),
        "endorsements": [e.to_dict() for e in endorsements],
    }
    doc["signature"] = sshsig.sign(signer, _body(doc), NS_CHANGES)
    return orjson.dumps(doc)


def parse(data: bytes, trust: Trust, where: str) -> ChangeList:
    """Verify and decode; SignatureError (unsigned, forged, not pinned unless ``trust``
    accepts unverified sources), CorruptFileError (anything malformed)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptFileError(f"{where}: not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CorruptFileError(f"{where}: not a secrets change list")
    if doc.get("version") != VERSION:
        raise CorruptFileError(f"{where}: change list version {doc.get('version')!r} unknown")
    signer = sshsig.verify(str(doc.get("signature", "")), _body(doc), NS_CHANGES)
    named = sshsig.parse_public_key_line(str(doc.get("signer", "")))
    if not sshsig.same_key(signer, named):
        raise CorruptFileError(f"{where}: signed by another key than it names")
    chain = Endorsement.parse_list(doc.get("endorsements"))
    pinned = trust.following(chain).judge(signer, where)
    raw = doc.get("items")
    if not isinstance(raw, list):
        raise CorruptFileError(f"{where}: malformed items")
    items: list[tuple[str, str | None]] = []
    for entry in raw:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not (entry[1] is None or isinstance(entry[1], str))
        ):
            raise CorruptFileError(f"{where}: malformed item entry")
        items.append((entry[0], entry[1]))
    text = [doc.get(k) for k in ("file", "appliance", "created")]
    if not all(isinstance(v, str) for v in text):
        raise CorruptFileError(f"{where}: malformed change list")
    return ChangeList(str(text[0]), str(text[1]), str(text[2]), tuple(items), pinned)
