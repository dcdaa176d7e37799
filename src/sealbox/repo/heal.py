"""Parity at a destination: written beside every object, and the key-free scrub that repairs.

:class:`ParityBackend` wraps a repository's backend so that every object worth healing gets its
parity object(s) under ``parity/<name>`` (format.md §9a) as it is stored, and loses them first
when it is deleted. :func:`scrub` checks every object against its name (or, for the few objects
not named by their content, against the digest its parity recorded), rebuilds what parity allows,
verifies the rebuilt bytes before writing them back, and rewrites damaged or missing parity from
verified objects. Nothing here needs a key: the appliance and the storage host can both run it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from sealbox.backends.base import Backend, Capacity, ObjectInfo, read_bounded
from sealbox.crypto import sshsig
from sealbox.errors import CorruptFileError, IntegrityError, NotFoundError, SealboxError
from sealbox.repo import format as fmt
from sealbox.repo import parity as par

__all__ = [
    "HealReport",
    "ParityBackend",
    "Verdict",
    "assess",
    "covered",
    "parity_names",
    "parity_target",
    "refuse_if_damaged_root",
    "scrub",
    "survey",
]

PARITY_PREFIX = "parity/"
# What is healed: everything a restore or a check depends on. Locks (rewritten every 5 minutes)
# and probe canaries are not; nor is anything outside the repository.
_COVERED = ("keys/", "datakeys/", "data/", "index/", "snapshots/", "refs/", "recordings/", "holds/")
_CRITICAL = ("config", "keys/", "datakeys/")  # small, and each loses a whole repository or run
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


def covered(name: str) -> bool:
    return name == "config" or name.startswith(_COVERED)


def policy_for(name: str, base: par.ParityPolicy) -> par.ParityPolicy:
    """The config, writer secrets and data keys keep two parity objects of two parity shares
    each: an object of one share then has four copies besides itself, in two files."""
    if critical(name):
        return par.ParityPolicy(k=base.k, m=max(base.m, 2), copies=2)
    return base


def critical(name: str) -> bool:
    return name == "config" or name.startswith(_CRITICAL[1:])


def parity_target(parity_object: str) -> str:
    """The object a parity object (``parity/NAME`` or ``parity/NAME.N``) is the parity of."""
    return re.sub(r"\.[0-9]+\Z", "", parity_object.removeprefix(PARITY_PREFIX))


def parity_names(name: str, copies: int = 2) -> list[str]:
    """``parity/NAME`` and, for critical objects, ``parity/NAME.1``."""
    return [f"{PARITY_PREFIX}{name}"] + [f"{PARITY_PREFIX}{name}.{i}" for i in range(1, copies)]


def cap(name: str) -> int:
    kind = "pack" if name.startswith("data/") else name.split("/", 1)[0]
    return fmt.MAX_SIZE.get(kind, fmt.MAX_SIZE["recordings"])


def content_named(name: str) -> bool:
    """Objects whose name is the BLAKE3 of their bytes (all but ``config`` and recordings
    batches, which are written once, exclusively, and checked against their parity's digest)."""
    return bool(_HEX64.match(name.rsplit("/", 1)[-1])) and not name.startswith("recordings/")


class ParityBackend:
    """A backend that stores parity beside every covered object (after the object: a crash in
    between leaves an object without parity, which ``check`` notes and ``--repair`` writes) and
    deletes it first (a crash then never leaves parity that would rebuild a deleted object)."""

    def __init__(
        self, inner: Backend, policy: par.ParityPolicy | None = par.DEFAULT_POLICY
    ) -> None:
        self.inner = inner
        self.policy = policy  # None: no parity (``parity = "off"``)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)  # append_only, round_trips, retries ... pass through

    @property
    def display(self) -> str:
        return self.inner.display

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(name, offset, length)

    def put(
        self, name: str, data: bytes | bytearray | memoryview, *, exclusive: bool = False
    ) -> None:
        self.inner.put(name, data, exclusive=exclusive)
        if covered(name) and self.policy is not None:
            write_parity(self.inner, name, data, self.policy, named=True)

    def flush(self) -> None:
        self.inner.flush()

    def delete(self, name: str) -> None:
        if covered(name):
            for parity_name in parity_names(name):
                self.inner.delete(parity_name)
        self.inner.delete(name)

    def capacity(self) -> Capacity:
        return self.inner.capacity()

    def close(self) -> None:
        self.inner.close()


def write_parity(
    backend: Backend,
    name: str,
    data: bytes | bytearray | memoryview,
    base: par.ParityPolicy,
    named: bool = False,
) -> None:
    """The parity object(s) of ``data``, stored as ``name``. ``named``: the writer made the name
    from these very bytes (its BLAKE3 need not be computed again; were it wrong, a rebuild
    would fail its check, never pass)."""
    policy = policy_for(name, base)
    known = bytes.fromhex(name.rsplit("/", 1)[-1]) if named and content_named(name) else None
    blob = par.encode_parity(name, memoryview(data), policy, known)
    for parity_name in parity_names(name, policy.copies):
        backend.put(parity_name, blob, exclusive=False)


@dataclass
class Verdict:
    """What became of one object: ``state`` is ``intact``, ``repairable``, ``repaired``,
    ``lost`` or ``orphan`` (gone, its parity left); ``parity`` is ``ok``, ``missing``,
    ``damaged``, ``rewritten`` or ``removed``."""

    name: str
    state: str
    parity: str = "ok"
    reason: str = ""


@dataclass
class HealReport:
    checked: int = 0
    verdicts: list[Verdict] = field(default_factory=list)

    def of(self, *states: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.state in states]

    def parity(self, *states: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.parity in states]

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing left damaged (repairable, or parity damaged)."""
        return not self.of("lost", "repairable") and not self.parity("damaged")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "repaired": [v.name for v in self.of("repaired")],
            "repairable": [v.name for v in self.of("repairable")],
            "lost": [{"name": v.name, "reason": v.reason} for v in self.of("lost")],
            "parity_damaged": [v.name for v in self.parity("damaged")],
            "parity_rewritten": [v.name for v in self.parity("rewritten")],
            "parity_missing": [v.name for v in self.parity("missing")],
            "orphan_parity": [v.name for v in self.of("orphan")],
        }


def _read(backend: Backend, name: str, limit: int) -> bytes | None:
    """An object's bytes; None when it is missing; empty when it is larger than such an object
    can be (there, but nothing of it is usable). A destination error is raised: an object the
    destination failed to hand over is neither damaged nor missing, and nothing is decided."""
    try:
        return read_bounded(backend, name, limit)
    except NotFoundError:
        return None
    except CorruptFileError:
        return b""


def _parities(backend: Backend, name: str) -> tuple[list[par.Parity], list[str], int]:
    """The decodable parity objects of ``name``, the reasons of those that are not, and how many
    parity objects exist."""
    found: list[par.Parity] = []
    problems: list[str] = []
    present = 0
    for parity_name in parity_names(name):
        blob = _read(backend, parity_name, 2 * cap(name) + (1 << 20))
        if blob is None:
            continue
        present += 1
        try:
            parity = par.decode_parity(blob, parity_name)
        except CorruptFileError as exc:
            problems.append(str(exc))
            continue
        if parity.name != name:
            problems.append(f"{parity_name}: protects {parity.name!r}, not {name!r}")
            continue
        found.append(parity)
    return found, problems, present


def _expected(name: str, policy: par.ParityPolicy) -> int:
    return policy_for(name, policy).copies


def _self_signed_config(data: bytes) -> bool:
    """Whether ``data`` is a config whose signature verifies under the key it names (no trust
    decision: whether that key is pinned is the opening's business). A config that passes is not
    rot, whatever a parity object says: parity planted for it must not replace it."""
    try:
        doc = orjson.loads(data)
        body = orjson.dumps(
            {k: v for k, v in doc.items() if k != "signature"}, option=orjson.OPT_SORT_KEYS
        )
        signer = sshsig.verify(doc["signature"], body, sshsig.NS_REPO)
        return sshsig.same_key(signer, sshsig.parse_public_key_line(doc["signer"]))
    except (SealboxError, ValueError, TypeError, KeyError, AttributeError):
        return False


def _like_rot(data: bytes | None, rebuilt: bytes) -> bool:
    """For objects not named by their content: whether ``data`` differs from ``rebuilt`` the way
    rot does (missing, cut short, or different only within one 4 KiB window), not the way other
    content does. Parity that describes other content is not used to rewrite such an object."""
    if data is None or (len(data) < len(rebuilt) and rebuilt.startswith(data)):
        return True
    if len(data) != len(rebuilt):
        return False
    step = par.SHARE_SIZE
    blocks = [i for i in range(0, len(data), step) if data[i : i + step] != rebuilt[i : i + step]]
    if not blocks:
        return True
    if blocks[-1] - blocks[0] > step:
        return False
    first = next(i for i in range(blocks[0], blocks[0] + step) if data[i] != rebuilt[i])
    last = next(
        i
        for i in reversed(range(blocks[-1], blocks[-1] + step))
        if i < len(data) and data[i] != rebuilt[i]
    )
    return last - first < step


def _intact(name: str, data: bytes | None, parities: list[par.Parity]) -> bool:
    if data is None:
        return False
    if content_named(name):
        return fmt.content_name(data) == name.rsplit("/", 1)[-1]
    if name == "config" and _self_signed_config(data):
        return True
    if not parities:
        return True  # nothing to compare with: a not content-named object without parity
    return any(par.digest(data) == p.object_digest for p in parities)


def assess(
    backend: Backend,
    name: str,
    *,
    repair: bool = False,
    policy: par.ParityPolicy = par.DEFAULT_POLICY,
    data: bytes | None = None,
) -> Verdict:
    """Check one object and its parity; with ``repair``, rebuild the object (verified against its
    name, else its parity's digest, before it is written back) and rewrite damaged parity."""
    if data is None:
        data = _read(backend, name, cap(name))
    parities, problems, present = _parities(backend, name)
    usable = [p for p in parities if not p.damaged_parity_shares()]
    if _intact(name, data, parities):
        assert data is not None
        verdict = Verdict(name, "intact")
        own = bytes.fromhex(name.rsplit("/", 1)[-1]) if content_named(name) else par.digest(data)
        if any(p.object_digest != own for p in parities):
            problems.append("a parity object describes other content")
        if not present:
            verdict.parity = "missing"
        elif problems or len(usable) < len(parities) or present < _expected(name, policy):
            verdict.parity = "damaged"
        if repair and verdict.parity != "ok":
            try:
                write_parity(backend, name, data, policy)
                verdict.parity = "rewritten"
            except SealboxError as exc:
                verdict.reason = f"parity not rewritten: {exc}"
        return verdict
    if data is None and present and not critical(name):
        # Parity without its object: deletions remove the parity first, so this is an object
        # lost whole, or a deletion (forget, prune) that raced a scrub writing missing parity.
        # Rebuilding it could bring back a forgotten snapshot: only the parity goes.
        verdict = Verdict(name, "orphan", reason="the object is gone, its parity is left")
        if repair:
            with contextlib.suppress(SealboxError):
                for parity_name in parity_names(name):
                    backend.delete(parity_name)
                verdict.parity = "removed"
        return verdict
    if not parities:
        why = "; ".join(problems) or "it has no parity"
        return Verdict(name, "lost", "damaged" if problems else "missing", why)
    if content_named(name):  # the name is the authority: a forged or stale digest cannot win
        want = name.rsplit("/", 1)[-1]
        parities = [p for p in parities if p.object_digest.hex() == want]
    reasons = list(problems)
    for parity in parities:
        try:
            rebuilt = par.rebuild(parity, data)
        except CorruptFileError as exc:
            reasons.append(str(exc))
            continue
        if not content_named(name) and not _like_rot(data, rebuilt):
            reasons.append(f"{parity.name}: its parity describes other content (planted?)")
            continue
        if name == "config" and not _self_signed_config(rebuilt):
            reasons.append("the rebuilt config's signature does not verify (planted parity?)")
            continue
        if not repair:
            return Verdict(name, "repairable", "ok" if len(usable) == len(parities) else "damaged")
        try:
            backend.put(name, rebuilt, exclusive=False)
        except SealboxError as exc:  # an append-only agent, read-only credentials, a lost link
            return Verdict(
                name,
                "repairable",
                reason=f"the destination refused the repaired object ({exc}); on an append-only"
                " agent run `sealbox agent scrub` on the storage host",
            )
        check = _read(backend, name, cap(name))
        if check != rebuilt:
            return Verdict(name, "lost", reason="the repaired object did not read back intact")
        verdict = Verdict(name, "repaired")
        if problems or len(usable) < len(parities) or present < _expected(name, policy):
            write_parity(backend, name, rebuilt, policy)
            verdict.parity = "rewritten"
        return verdict
    return Verdict(name, "lost", reason="; ".join(reasons) or "its parity names other content")


def _listing(backend: Backend) -> tuple[set[str], set[str]]:
    """(covered objects present, objects named by a parity object)."""
    present = {info.name for prefix in _COVERED for info in backend.list(prefix)}
    try:
        backend.stat("config")
        present.add("config")
    except NotFoundError:
        pass
    protected = set()
    for info in backend.list(PARITY_PREFIX):
        target = parity_target(info.name)
        if covered(target):
            protected.add(target)
    return present, protected


def objects(backend: Backend) -> list[str]:
    """Every covered object, and every object whose parity is there without it."""
    present, protected = _listing(backend)
    return sorted(present | protected)


def refuse_if_damaged_root(backend: Backend) -> None:
    """Before a repository is opened to be checked: the config and the writer key objects, which
    the opening needs, checked against their parity (a few small reads). A damaged one raises
    IntegrityError naming it repairable or lost, instead of the opening's confusing failure (a
    flipped bit in the config's id reads as another repository). One damaged key object among
    intact ones does not stop the opening: the check then names it with everything else."""
    names = ["config", *(info.name for info in backend.list("keys/"))]
    verdicts = [assess(backend, n) for n in names]
    bad = [v for v in verdicts if v.state != "intact"]
    keys_left = any(v.state == "intact" for v in verdicts[1:])
    if bad and (bad[0].name == "config" or not keys_left):  # else check itself names the rest
        raise IntegrityError(
            "; ".join(
                f"{v.name}: damaged, repairable from its parity (run check --repair)"
                if v.state == "repairable"
                else f"{v.name}: damaged and lost ({v.reason})"
                for v in bad
            )
        )


def survey(backend: Backend, damaged: Iterable[str]) -> HealReport:
    """What ``check`` adds: for each object it found damaged (or missing), whether parity can
    repair it; for every other covered object, whether its parity is there and intact (the
    parity objects are read, the objects themselves not again)."""
    report = HealReport()
    present, protected = _listing(backend)
    bad = set(damaged) | (protected - present)
    for name in sorted(present | protected):
        report.checked += 1
        if name in bad:
            report.verdicts.append(assess(backend, name))
            continue
        parities, problems, count = _parities(backend, name)
        if not count:
            report.verdicts.append(Verdict(name, "intact", "missing"))
        elif problems or any(p.damaged_parity_shares() for p in parities):
            report.verdicts.append(Verdict(name, "intact", "damaged", "; ".join(problems)))
    return report


def scrub(
    backend: Backend,
    *,
    repair: bool = False,
    policy: par.ParityPolicy = par.DEFAULT_POLICY,
    names: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> HealReport:
    """Check (and with ``repair`` heal) every covered object of the repository at ``backend``."""
    report = HealReport()
    for name in sorted(names) if names is not None else objects(backend):
        report.checked += 1
        verdict = assess(backend, name, repair=repair, policy=policy)
        if verdict.state != "intact" or verdict.parity != "ok":
            report.verdicts.append(verdict)
        if progress:
            progress(name)
    return report
