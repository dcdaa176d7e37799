"""Drill receipts: what a restore drill on a recovery host proved, kept at the destination for the
appliance to read without any private key (format.md §19b).

A receipt is ``drills/NAME``: sealed with the index key (kind ``drill``: the storage side can
neither read nor forge one; the appliance, which holds the index key, reads it), named by its
content, and signed by the drill host's own signing key (SSHSIG namespace ``sealbox-drill``)
over every field but the signature, so a receipt names the machine that ran the drill. A receipt
that does not open, does not match its name, belongs to another repository or whose signature
does not verify counts for nothing; with ``[drills] signers`` set on the appliance, neither does
one signed by another key (whoever holds a repository key could otherwise vouch for a drill).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sealbox.backends.base import read_bounded
from sealbox.crypto import sshsig
from sealbox.errors import CorruptFileError, IntegrityError, SealboxError
from sealbox.repo import format as fmt
from sealbox.repo.repository import Repository

__all__ = ["FORMAT", "MAX_RECEIPT", "NS_DRILL", "DrillCheck", "DrillReceipt", "receipts", "store"]

FORMAT = "sealbox-drill-receipt-1"
NS_DRILL = "sealbox-drill"
MAX_RECEIPT = 1 << 20
KIND = b"drill"
PREFIX = "drills/"
FUTURE_SKEW = timedelta(days=1)


@dataclass(frozen=True)
class DrillCheck:
    """One thing a drill checked: ``files``, a database dump, a sample of recordings."""

    name: str
    result: str  # "passed" or "failed"
    detail: str = ""
    figures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DrillReceipt:
    repo: str  # the repository id: a receipt of another repository is ignored
    kind: str  # "system" or "recordings"
    snapshot: str  # the snapshot drilled (full id)
    snapshot_time: str
    time: str  # when the drill ended (UTC, ISO 8601)
    host: str  # the drill host's name
    result: str  # "passed" or "failed"
    checks: tuple[DrillCheck, ...]
    seconds: float
    error: str = ""
    format: str = FORMAT
    signer: str = ""
    signature: str = ""

    def body(self) -> bytes:
        doc = self.to_dict()
        doc.pop("signature")
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def when(self) -> datetime:
        return _time(self.time)

    @classmethod
    def decode(cls, doc: object, where: str) -> DrillReceipt:
        """Every field checked for its type, times for their form: a receipt sealed by any
        holder of the index key is still untrusted input (CorruptFileError)."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CorruptFileError(f"{where}: not a drill receipt of this version")
        bad = CorruptFileError(f"{where}: malformed drill receipt")
        texts = _TEXT_FIELDS
        if set(doc) != {*texts, "checks", "seconds", "format"} or not all(
            isinstance(doc[k], str) for k in texts
        ):
            raise bad
        if doc["kind"] not in ("system", "recordings") or doc["result"] not in ("passed", "failed"):
            raise bad
        seconds, raw = doc["seconds"], doc["checks"]
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not isinstance(raw, list)
        ):
            raise bad
        checks = []
        for c in raw:
            if not isinstance(c, dict) or set(c) - {"name", "result", "detail", "figures"}:
                raise bad
            figures = c.get("figures", {})
            if not all(isinstance(c.get(k, ""), str) for k in ("name", "result", "detail")):
                raise bad
            if not isinstance(figures, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                for k, v in figures.items()
            ):
                raise bad
            checks.append(
                DrillCheck(c.get("name", ""), c.get("result", ""), c.get("detail", ""), figures)
            )
        try:
            _time(doc["time"])
            _time(doc["snapshot_time"])
        except ValueError:
            raise bad from None
        return cls(**{**doc, "checks": tuple(checks), "seconds": float(seconds)})


_TEXT_FIELDS = (
    "repo",
    "kind",
    "snapshot",
    "snapshot_time",
    "time",
    "host",
    "result",
    "error",
    "signer",
    "signature",
)


def _time(text: str) -> datetime:
    """UTC ISO 8601 with a Z (what drills write); ValueError otherwise."""
    if not text.endswith("Z"):
        raise ValueError(text)
    when = datetime.fromisoformat(text[:-1] + "+00:00")
    return when


def store(
    repo: Repository, receipt: DrillReceipt, key: Ed25519PrivateKey
) -> tuple[str, DrillReceipt]:
    """Sign, seal and write a receipt (exclusively: a name is never overwritten); its name and
    the signed receipt."""
    receipt = replace(receipt, signer=sshsig.public_key_line(key.public_key()))
    receipt = replace(receipt, signature=sshsig.sign(key, receipt.body(), NS_DRILL))
    data = fmt.seal_json(repo.keys.index_key, KIND, receipt.to_dict())
    name = fmt.content_name(data)
    repo.backend.put(f"{PREFIX}{name}", data, exclusive=True)
    repo.backend.flush()
    return name, receipt


def receipts(
    repo: Repository,
    kind: str | None = None,
    signers: list[Ed25519PublicKey] | None = None,
    problems: list[str] | None = None,
    now: datetime | None = None,
) -> list[DrillReceipt]:
    """The repository's authentic receipts (of ``kind``; signed by one of ``signers`` when
    given), oldest first. Junk and forgeries are skipped; receipts that cannot be read, or are
    dated in the future (beyond a day of clock skew), are skipped and named in ``problems``."""
    limit = (now or datetime.now(UTC)) + FUTURE_SKEW
    found = []
    for info in repo.backend.list(PREFIX):
        name = info.name.removeprefix(PREFIX)
        where = f"drill receipt {name[:12]}"
        try:
            data = read_bounded(repo.backend, info.name, MAX_RECEIPT, where)
        except SealboxError as exc:
            if problems is not None:
                problems.append(f"{where} cannot be read: {exc}")
            continue
        try:
            if fmt.content_name(data) != name:
                raise CorruptFileError(f"{where}: does not match its name")
            receipt = DrillReceipt.decode(
                fmt.open_json(repo.keys.index_key, KIND, data, where), where
            )
            signer = sshsig.verify(receipt.signature, receipt.body(), NS_DRILL)
            if not sshsig.same_key(signer, sshsig.parse_public_key_line(receipt.signer)):
                continue
            if signers is not None and not any(sshsig.same_key(signer, k) for k in signers):
                continue
        except IntegrityError:  # junk, or forged: proves nothing
            continue
        if receipt.repo != repo.config.id or (kind is not None and receipt.kind != kind):
            continue
        if receipt.when > limit:
            if problems is not None:
                problems.append(f"{where} is dated {receipt.time}, in the future: ignored")
            continue
        found.append(receipt)
    return sorted(found, key=lambda r: r.when)
