"""A repository on a backend: its config, keys, index and snapshots (the storage-facing side)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sealbox.backends.base import Backend, read_bounded
from sealbox.crypto import agekeys, sshsig
from sealbox.crypto.trust import Endorsement, Trust
from sealbox.errors import (
    ConfigError,
    CorruptFileError,
    DestinationError,
    IntegrityError,
    KeyMaterialError,
    KeyNotSetError,
    NotFoundError,
    SealboxError,
    SignatureError,
)
from sealbox.keys.store import Keystore
from sealbox.repo import format as fmt
from sealbox.repo.format import FORMAT_VERSION
from sealbox.repo.heal import ParityBackend
from sealbox.repo.index import IdSet, Index
from sealbox.repo.keys import DataKey, WriterSecrets, load_writer_identity, new_writer_identity
from sealbox.repo.parity import DEFAULT_POLICY, ParityPolicy

__all__ = [
    "DEFAULT_CHUNKER",
    "Index",
    "Rejected",
    "RepoConfig",
    "Repository",
    "Snapshot",
    "default_state_dir",
]

_HEX32 = re.compile(r"^[0-9a-f]{32}\Z")  # \Z: "$" would accept a trailing newline
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")

# Chunk sizes: see docs/design/format.md ("Chunking") for the measurement behind them.
DEFAULT_CHUNKER = {"min": 256 * 1024, "avg": 1024 * 1024, "max": 4 * 1024 * 1024}
PACK_SIZE = 8 * 1024 * 1024


def default_state_dir() -> Path:
    env = os.environ.get("SEALBOX_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sealbox"


_CANONICAL = orjson.OPT_SORT_KEYS


def _signed_by(
    signature: str, body: bytes, namespace: str, declared: str, where: str
) -> Ed25519PublicKey:
    """The key that made ``signature`` over ``body``, which must be the one the object names
    (``declared``, an OpenSSH line); SignatureError otherwise."""
    signer = sshsig.verify(signature, body, namespace)
    if not sshsig.same_key(signer, sshsig.parse_public_key_line(declared)):
        raise SignatureError(f"{where}: names another signer than the one that signed it")
    return signer


@dataclass(frozen=True)
class RepoConfig:
    """The repository's root of trust: plain JSON, signed by the appliance that made it.

    ``keys`` is the check value of the writer secrets (:meth:`WriterSecrets.check`), so a key
    object planted next to the real ones is told apart; ``signer`` and ``signature`` (SSHSIG,
    namespace ``sealbox-repo``, over the other fields as sorted compact JSON) let a reader refuse
    a repository made by anyone but an appliance it pinned (a substituted repository).
    """

    id: str
    created: str
    recipients: list[str]
    chunker: dict[str, int]
    pack_size: int
    keys: str
    signer: str
    signature: str = ""
    version: int = FORMAT_VERSION
    format: str = "sealbox-repo"

    def body(self) -> bytes:
        doc = asdict(self)
        del doc["signature"]
        return orjson.dumps(doc, option=_CANONICAL)

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> RepoConfig:
        try:
            doc: Any = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CorruptFileError("repository config is not valid JSON") from exc
        if not isinstance(doc, dict) or doc.get("format") != "sealbox-repo":
            raise CorruptFileError("not a Sealbox repository (its config says otherwise)")
        if doc.get("version") != FORMAT_VERSION:
            raise CorruptFileError(
                f"repository version {doc.get('version')!r} is not supported (this Sealbox reads"
                f" {FORMAT_VERSION}, where snapshots are signed by the appliance): back up into a"
                " new repository"
            )
        try:
            config = cls(**doc)
        except TypeError as exc:
            raise CorruptFileError("repository config has unexpected or missing fields") from exc
        if not (
            isinstance(config.id, str)
            and _HEX32.match(config.id)
            and isinstance(config.recipients, list)
            and all(isinstance(r, str) for r in config.recipients)
            and isinstance(config.chunker, dict)
            and all(isinstance(config.chunker.get(k), int) for k in ("min", "avg", "max"))
            and isinstance(config.pack_size, int)
            and 1 << 20 <= config.pack_size <= 64 << 20
            and isinstance(config.keys, str)
            and isinstance(config.signer, str)
            and isinstance(config.signature, str)
        ):
            raise CorruptFileError("repository config has malformed fields")
        return config

    def verify(self, trust: Trust, where: str) -> bool:
        """Whether the config's signer is pinned (True), accepted unverified (False); raises
        SignatureError for a bad signature or a signer nobody pinned."""
        signer = _signed_by(
            self.signature, self.body(), sshsig.NS_REPO, self.signer, f"{where}/config"
        )
        return trust.judge(signer, f"{where}/config")


@dataclass
class Snapshot:
    """A snapshot header. Everything but ``id``, ``verified`` and ``endorsements`` is signed
    (SSHSIG, namespace ``sealbox-snapshot``) by the appliance: ``repo`` binds it to one
    repository, ``tree``, ``refs`` and ``data_keys`` to its contents."""

    id: str
    time: str
    hostname: str
    paths: list[str]
    tree: str
    refs: str
    kind: str = "files"
    tags: list[str] = field(default_factory=list)
    size: int = 0
    files: int = 0
    dirs: int = 0
    data_keys: list[str] = field(default_factory=list)
    parent: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    repo: str = ""
    signer: str = ""
    signature: str = ""
    endorsements: list[dict[str, str]] = field(default_factory=list)
    verified: bool = False  # signed by a pinned signer (not stored)

    @property
    def datetime(self) -> datetime:
        return datetime.fromisoformat(self.time.replace("Z", "+00:00"))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("id", "verified")}

    def body(self) -> bytes:
        doc = self.to_dict()
        del doc["signature"], doc["endorsements"]
        return orjson.dumps(doc, option=_CANONICAL)

    def sign(self, key: Ed25519PrivateKey, endorsements: list[Endorsement]) -> None:
        self.signer = sshsig.public_key_line(key.public_key())
        self.endorsements = [e.to_dict() for e in endorsements]
        self.signature = sshsig.sign(key, self.body(), sshsig.NS_SNAPSHOT)

    def check(self, repo_id: str, trust: Trust, where: str) -> None:
        """Verify the signature and its signer; sets ``verified``. Raises SignatureError."""
        if self.repo != repo_id:
            raise SignatureError(f"{where}: a snapshot of another repository ({self.repo[:16]!r})")
        signer = _signed_by(self.signature, self.body(), sshsig.NS_SNAPSHOT, self.signer, where)
        chain = Endorsement.parse_list(self.endorsements)
        self.verified = trust.following(chain).judge(signer, where)

    @classmethod
    def decode(cls, name: str, doc: Any, where: str) -> Snapshot:
        if not isinstance(doc, dict):
            raise CorruptFileError(f"{where}: malformed snapshot")
        try:
            snap = cls(id=name, **{k: v for k, v in doc.items() if k != "verified"})
        except TypeError as exc:
            raise CorruptFileError(f"{where}: unexpected snapshot fields") from exc
        ok = (
            isinstance(snap.time, str)
            and isinstance(snap.tree, str)
            and _HEX64.match(snap.tree)
            and isinstance(snap.refs, str)
            and _HEX64.match(snap.refs)
            and isinstance(snap.kind, str)
            and isinstance(snap.hostname, str)
            and isinstance(snap.paths, list)
            and all(isinstance(p, str) for p in snap.paths)
            and isinstance(snap.data_keys, list)
            and all(isinstance(k, str) and _HEX64.match(k) for k in snap.data_keys)
            and isinstance(snap.extra, dict)
            and isinstance(snap.tags, list)
            and all(isinstance(v, int) for v in (snap.size, snap.files, snap.dirs))
            and isinstance(snap.endorsements, list)
            and all(isinstance(v, str) for v in (snap.repo, snap.signer, snap.signature))
        )
        try:
            ok = ok and snap.datetime.tzinfo is not None  # retention compares aware times
        except (ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            raise CorruptFileError(f"{where}: malformed snapshot fields")
        return snap


@dataclass
class Rejected:
    """A snapshot object that is not used: damaged, junk, forged, or signed by nobody pinned.
    ``snapshot`` is set when it decoded (its data is then kept by prune, never trusted)."""

    name: str
    reason: str
    snapshot: Snapshot | None = None
    unreadable: bool = False  # the destination failed to hand it over (not junk: maybe real)


def pack_path(name: str) -> str:
    return f"data/{name[:2]}/{name}"


def _named(backend: Backend, name: str, kind: str) -> bytes:
    """A content-named object, bounded by its kind's size cap and checked against its name."""
    data = read_bounded(backend, name, fmt.MAX_SIZE[kind])
    if fmt.content_name(data) != name.rsplit("/", 1)[-1]:
        raise CorruptFileError(f"{name}: damaged (its content does not match its name)")
    return data


class Repository:
    def __init__(
        self,
        backend: Backend,
        config: RepoConfig,
        keys: WriterSecrets,
        trust: Trust,
        state_dir: Path | None = None,
    ) -> None:
        # Every object it stores gets its parity (format.md §9a); set ``self.backend.policy``.
        self.backend = backend if isinstance(backend, ParityBackend) else ParityBackend(backend)
        self.config, self.keys, self.trust = config, keys, trust
        # Who new data keys are sealed to: the repository's recipients, or (for the product's
        # repositories) the current master key and operator keys, which a new ceremony changes.
        self.data_recipients: list[str] = list(config.recipients)
        self.cache_dir: Path | None = None  # set for the appliance's own (writer) repositories
        self.state_dir = state_dir  # where the signing key is (writers)
        self.config_verified = False
        self.notes: list[str] = []  # what opening met and set aside (planted key objects...)
        self.rejected: list[Rejected] = []  # from the last snapshot scan

    # -- opening ---------------------------------------------------------------------------------
    @staticmethod
    def read_config(backend: Backend) -> RepoConfig:
        try:
            data = read_bounded(backend, "config", fmt.MAX_SIZE["config"])
        except NotFoundError:
            raise NotFoundError(
                f"{backend.display}: no repository here (run `sealbox repo init`)"
            ) from None
        try:
            return RepoConfig.decode(data)
        except CorruptFileError as exc:
            raise CorruptFileError(f"{backend.display}/config: {exc}") from exc

    @classmethod
    def init(
        cls,
        backend: Backend,
        recipients: list[str],
        state_dir: Path,
        chunker: dict[str, int] | None = None,
        parity: ParityPolicy | None = DEFAULT_POLICY,
    ) -> Repository:
        backend = backend if isinstance(backend, ParityBackend) else ParityBackend(backend)
        backend.policy = parity
        try:
            backend.stat("config")
        except NotFoundError:
            pass
        else:
            raise ConfigError(f"{backend.display}: a repository exists here already")
        if not recipients:
            raise KeyMaterialError(
                "a repository needs at least one recipient (--recipient age1...)"
            )
        for recipient in recipients:
            agekeys.parse_recipient(recipient)
        keystore = Keystore(state_dir)
        signer = keystore.signing_key()
        repo_id = secrets.token_hex(16)
        keys = WriterSecrets.generate(repo_id)
        config = RepoConfig(
            id=repo_id,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            recipients=list(recipients),
            chunker=dict(chunker or DEFAULT_CHUNKER),
            pack_size=PACK_SIZE,
            keys=keys.check(),
            signer=sshsig.public_key_line(signer.public_key()),
        )
        config = replace(config, signature=sshsig.sign(signer, config.body(), sshsig.NS_REPO))
        writer = new_writer_identity(cls.writer_path(state_dir, repo_id))
        sealed = keys.seal([*recipients, writer])
        backend.put(f"keys/{fmt.content_name(sealed)}", sealed, exclusive=True)
        backend.put(
            "config", config.encode(), exclusive=True
        )  # last: a repo exists once config does
        repo = cls(backend, config, keys, keystore.trust(), state_dir)
        repo.config_verified = True
        return repo

    def seal_keys_to(self, recipients: list[str], state_dir: Path) -> bool:
        """Make sure the writer secrets are also sealed to ``recipients`` (after a new key
        ceremony, so the new master key can restore new backups). Returns True if it added a
        key object. Remembers what it sealed to in ``state_dir``; old key objects stay."""
        record = state_dir / "repos" / self.config.id / "sealed-to.json"
        wanted = sorted(set(recipients))
        try:
            done: list[list[str]] = orjson.loads(record.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            done = [sorted(set(self.config.recipients))]
        if wanted in done:
            return False
        writer = load_writer_identity(self.writer_path(state_dir, self.config.id))
        sealed = self.keys.seal([*wanted, str(writer[0].to_public())])
        self.backend.put(f"keys/{fmt.content_name(sealed)}", sealed, exclusive=False)
        done.append(wanted)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_bytes(orjson.dumps(done))
        return True

    @staticmethod
    def writer_path(state_dir: Path, repo_id: str) -> Path:
        return state_dir / "repos" / repo_id / "writer.txt"

    @classmethod
    def open(
        cls,
        backend: Backend,
        identities: list[Any],
        trust: Trust,
        config: RepoConfig | None = None,
    ) -> Repository:
        """Open with a key, after checking that a pinned appliance signed the config. Every key
        object is tried: one that opens but is not this repository's (a planted one, sealed to
        the public recipient) is set aside and noted, never used."""
        config = config or cls.read_config(backend)
        verified = config.verify(trust, backend.display)
        notes: list[str] = []
        found: WriterSecrets | None = None
        last: Exception | None = None
        for info in backend.list("keys/"):
            where = f"{backend.display}/{info.name}"
            try:
                keys = WriterSecrets.unseal(_named(backend, info.name, "keys"), identities, where)
            except KeyMaterialError as exc:
                last = exc
                continue
            except CorruptFileError as exc:
                notes.append(f"{info.name}: {exc}")
                continue
            if keys.repo_id != config.id or keys.check() != config.keys:
                notes.append(
                    f"{info.name}: opens with the key given but is not this repository's key"
                    " (planted?): ignored"
                )
                continue
            found = keys
        if found is None:
            damaged = [n for n in notes if "damaged" in n]
            hint = (
                f" ({'; '.join(damaged)}: `sealbox repo check --repair` repairs it from parity)"
                if damaged
                else ""
            )
            raise KeyMaterialError(
                f"{backend.display}: the key given opens none of the repository's keys{hint}"
            ) from last
        repo = cls(backend, config, found, trust)
        repo.config_verified, repo.notes = verified, notes
        return repo

    @classmethod
    def open_writer(cls, backend: Backend, state_dir: Path) -> Repository:
        """Open as this appliance's writer: the writer identity in ``state_dir``, and the
        keystore's signers as the pinned ones."""
        keystore = Keystore(state_dir)
        trust = keystore.trust()
        if trust.empty:
            raise KeyNotSetError(
                f"no appliance signing key in {keystore.dir}: this state dir did not make this"
                " repository (set --state-dir / SEALBOX_STATE_DIR)"
            )
        config = cls.read_config(backend)
        identities = load_writer_identity(cls.writer_path(state_dir, config.id))
        repo = cls.open(backend, identities, trust, config)
        repo.cache_dir = state_dir / "repos" / config.id / "cache"
        repo.state_dir = state_dir
        return repo

    def _immutable(self, name: str, kind: str) -> bytes:
        """A content-named object (index file, snapshot header), checked against its name and
        bounded, through the local cache: a run then fetches only what is new."""
        if self.cache_dir is None:
            return _named(self.backend, name, kind)
        local = self.cache_dir / name
        try:
            data = local.read_bytes()
            if fmt.content_name(data) == name.rsplit("/", 1)[-1]:
                return data
        except OSError:
            pass
        data = _named(self.backend, name, kind)
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, local)
        except OSError:
            pass  # a cache that cannot be written only costs speed
        return data

    def _prune_cache(self, prefix: str, live: set[str]) -> None:
        if self.cache_dir is None or not (self.cache_dir / prefix).is_dir():
            return
        for path in (self.cache_dir / prefix).iterdir():
            if f"{prefix}/{path.name}" not in live:
                path.unlink(missing_ok=True)

    # -- index -----------------------------------------------------------------------------------
    def load_index(self) -> Index:
        """The index; a damaged index file is skipped and its packs re-read from their headers."""
        index = Index()
        names = [info.name for info in self.backend.list("index/")]
        self._prune_cache("index", set(names))
        for name in names:
            try:
                packs = fmt.index_records(self._immutable(name, "index"), self.keys.index_key, name)
            except CorruptFileError as exc:
                index.damaged.append(str(exc))
                continue
            for pack, records in packs:
                index.add_records(pack, records)
            index.files.append(name)
        if index.damaged:
            for pack, size in self.list_packs():
                if pack not in index.packs:
                    try:
                        index.add_pack(pack, self.read_pack_header(pack, size))
                    except CorruptFileError as exc:
                        index.damaged.append(str(exc))
        return index

    def list_packs(self) -> Iterator[tuple[str, int]]:
        """(name, size) of each pack: only objects exactly at ``data/XX/NAME`` with a 64-hex
        NAME count (an object planted at ``data/zz/<a real pack's name>`` must not pass for
        that pack)."""
        for info in self.backend.list("data/"):
            name = info.name.rsplit("/", 1)[-1]
            if _HEX64.match(name) and info.name == pack_path(name):
                yield name, info.size

    def read_pack_header(self, pack: str, size: int) -> list[fmt.PackEntry]:
        """A pack's entries from its own (sealed) header: what prune and check trust. One read of
        the pack's tail covers the header of a typical pack; a larger one takes a second."""
        where = pack_path(pack)
        if size < 4 + fmt.NONCE_LEN + fmt.TAG_LEN:
            raise CorruptFileError(f"{where}: truncated pack")
        guess = min(size, 64 << 10)
        tail = self.backend.get(where, size - guess, guess)
        if len(tail) != guess:
            raise CorruptFileError(f"{where}: shorter than listed (truncated?)")
        length = fmt.pack_header_size(tail[-4:], where)
        if length > size:
            raise CorruptFileError(f"{where}: pack header length is out of range")
        if length > guess:
            tail = self.backend.get(where, size - length, length)
        return fmt.decode_pack_header(tail[-length:], self.keys.index_key, where)

    def read_pack(self, pack: str) -> bytes:
        """A whole pack, bounded by the largest a pack can be."""
        return read_bounded(self.backend, pack_path(pack), fmt.MAX_SIZE["pack"])

    def save_index(self, packs: Mapping[str, Sequence[fmt.PackEntry]]) -> list[str]:
        """Index files naming ``packs``, each of at most INDEX_PART entries (a reader then
        never holds more than one part's decoded entries at a time); their names."""
        self.backend.flush()  # the packs (and data keys) it names are durable first
        names: list[str] = []
        part: dict[str, Sequence[fmt.PackEntry]] = {}
        count = 0

        def store() -> None:
            data = fmt.encode_index(part, self.keys.index_key)
            names.append(f"index/{fmt.content_name(data)}")
            self.backend.put(names[-1], data, exclusive=False)

        for pack, entries in packs.items():
            if part and count + len(entries) > fmt.INDEX_PART:
                store()
                part, count = {}, 0
            part[pack] = entries
            count += len(entries)
        if part or not names:
            store()
        return names

    # -- data keys -------------------------------------------------------------------------------
    def new_data_key(self) -> DataKey:
        key = os.urandom(32)
        sealed = bytes(agekeys.encrypt(key, self.data_recipients))
        name = fmt.content_name(sealed)
        self.backend.put(f"datakeys/{name}", sealed, exclusive=False)
        return DataKey(bytes.fromhex(name), key)

    def data_key(self, key_id: bytes, identities: list[Any]) -> bytes:
        import pyrage

        name = f"datakeys/{key_id.hex()}"
        sealed = _named(self.backend, name, "datakeys")
        try:
            key = bytes(agekeys.decrypt(sealed, identities))
        except pyrage.DecryptError as exc:
            raise KeyMaterialError(
                f"{name}: the key given does not open this backup's data"
            ) from exc
        if len(key) != 32:
            raise CorruptFileError(f"{name}: not a data key ({len(key)} bytes)")
        return key

    # -- snapshots -------------------------------------------------------------------------------
    def scan_snapshots(self) -> tuple[list[Snapshot], list[Rejected]]:
        """(accepted, rejected), accepted oldest first. Accepted: signed by a pinned signer, or
        by any valid signer when the trust accepts unverified sources (``verified`` False then).
        A damaged, junk, forged or unpinned object is rejected with its reason and never stops
        the others (one planted object must not block listing or restore)."""
        names = [info.name for info in self.backend.list("snapshots/")]
        self._prune_cache("snapshots", set(names))
        accepted: list[Snapshot] = []
        rejected: list[Rejected] = []
        for name in names:
            short = name.rsplit("/", 1)[-1]
            try:
                snapshot = self._decode_snapshot(short)
                try:
                    self._check(snapshot)
                except SignatureError as exc:  # decoded, not trusted: prune keeps its data
                    rejected.append(Rejected(short, str(exc), snapshot))
                    continue
                accepted.append(snapshot)
            except NotFoundError as exc:
                rejected.append(Rejected(short, str(exc)))  # gone since the listing
            except DestinationError as exc:
                rejected.append(Rejected(short, str(exc), unreadable=True))
            except SealboxError as exc:
                rejected.append(Rejected(short, str(exc)))
        self.rejected = rejected
        return sorted(accepted, key=lambda s: (s.time, s.id)), rejected

    def snapshots(self) -> list[Snapshot]:
        """The accepted snapshots, oldest first (``self.rejected`` lists the others)."""
        return self.scan_snapshots()[0]

    def scan_all(self, doing: str) -> list[Snapshot]:
        """Every snapshot that decodes, authentic or not, for maintenance that deletes (prune,
        forget): what they name is kept. A snapshot the destination failed to hand over might be
        a real one, so the maintenance stops (IntegrityError, nothing deleted)."""
        accepted, rejected = self.scan_snapshots()
        for r in rejected:
            if r.unreadable:
                raise IntegrityError(
                    f"{doing} stopped, nothing deleted: snapshot {r.name[:12]} cannot be read"
                    f" now ({r.reason}); try again"
                )
        return accepted + [r.snapshot for r in rejected if r.snapshot is not None]

    def _decode_snapshot(self, name: str) -> Snapshot:
        where = f"snapshots/{name}"
        if not _HEX64.match(name):
            raise CorruptFileError(f"{where}: not a snapshot name")
        data = self._immutable(where, "snapshots")
        doc: Any = fmt.open_json(self.keys.index_key, b"snapshot", data, where)
        return Snapshot.decode(name, doc, where)

    def load_snapshot(self, name: str) -> Snapshot:
        """A snapshot, decrypted, decoded and its signature checked against the trust."""
        snapshot = self._decode_snapshot(name)
        self._check(snapshot)
        return snapshot

    def _check(self, snapshot: Snapshot) -> None:
        snapshot.check(self.config.id, self.trust, f"snapshots/{snapshot.id[:12]}")

    def find_snapshot(self, ref: str, kind: str | None = None) -> Snapshot:
        """``latest`` (the newest *authentic* snapshot, of ``kind`` when given) or an id prefix.
        A prefix naming a rejected snapshot raises its reason: it is never restored."""
        accepted, rejected = self.scan_snapshots()
        if kind is not None:
            accepted = [s for s in accepted if s.kind == kind]
        if ref == "latest":
            usable = [s for s in accepted if s.verified] or (
                accepted if self.trust.accept_unverified else []
            )
            if not usable:
                what = f"{kind} snapshot" if kind else "snapshot"
                extra = f" ({len(rejected)} rejected: see `snapshots`)" if rejected else ""
                raise NotFoundError(f"no authentic {what} here yet{extra}")
            return usable[-1]
        exact = [s for s in accepted if s.id == ref]  # a full id is never ambiguous
        found = exact or [s for s in accepted if s.id.startswith(ref)]
        refused = [] if exact else [r for r in rejected if r.name.startswith(ref)]
        if len(found) + len(refused) != 1:
            raise NotFoundError(
                f"no snapshot {ref!r}"
                if not (found or refused)
                else f"snapshot prefix {ref!r} is ambiguous"
            )
        if refused:
            raise SignatureError(f"snapshot {refused[0].name[:12]} is refused: {refused[0].reason}")
        return found[0]

    def signing_key(self) -> tuple[Ed25519PrivateKey, list[Endorsement]]:
        if self.state_dir is None:
            raise KeyNotSetError("this repository was opened to read: it cannot sign snapshots")
        keystore = Keystore(self.state_dir)
        return keystore.signing_key(create=False), keystore.endorsements()

    def save_snapshot(self, snapshot: Snapshot) -> str:
        key, chain = self.signing_key()
        snapshot.repo = self.config.id
        snapshot.sign(key, chain)
        data = fmt.seal_json(self.keys.index_key, b"snapshot", snapshot.to_dict())
        name = fmt.content_name(data)
        self.backend.flush()  # its index and reference list first
        self.backend.put(f"snapshots/{name}", data, exclusive=False)
        self.backend.flush()
        snapshot.id, snapshot.verified = name, True
        return name

    def save_refs(self, refs: IdSet | set[bytes]) -> str:
        data = fmt.encode_refs(refs, self.keys.index_key)
        name = fmt.content_name(data)
        self.backend.put(f"refs/{name}", data, exclusive=False)
        return name

    def load_refs(self, name: str) -> list[bytes]:
        where = f"refs/{name}"
        if not _HEX64.match(name):
            raise CorruptFileError(f"{where}: not a reference list name")
        return fmt.decode_refs(_named(self.backend, where, "refs"), self.keys.index_key, where)
