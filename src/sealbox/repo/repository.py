"""A repository on a backend: its config, keys, index and snapshots (the storage-facing side)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sealbox.backends.base import Backend
from sealbox.crypto import agekeys
from sealbox.errors import ConfigError, CorruptFileError, KeyMaterialError, NotFoundError
from sealbox.repo import format as fmt
from sealbox.repo.keys import DataKey, WriterSecrets, load_writer_identity, new_writer_identity

__all__ = ["DEFAULT_CHUNKER", "Index", "RepoConfig", "Repository", "Snapshot", "default_state_dir"]

# Chunk sizes: see docs/design/format.md ("Chunking") for the measurement behind them.
DEFAULT_CHUNKER = {"min": 256 * 1024, "avg": 1024 * 1024, "max": 4 * 1024 * 1024}
PACK_SIZE = 8 * 1024 * 1024


def default_state_dir() -> Path:
    env = os.environ.get("SEALBOX_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sealbox"


@dataclass(frozen=True)
class RepoConfig:
    id: str
    created: str
    recipients: list[str]
    chunker: dict[str, int]
    pack_size: int
    version: int = 1
    format: str = "sealbox-repo"

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
        if doc.get("version") != 1:
            raise CorruptFileError(
                f"repository version {doc.get('version')!r} is not supported (this Sealbox reads 1)"
            )
        try:
            return cls(**doc)
        except TypeError as exc:
            raise CorruptFileError("repository config has unexpected fields") from exc


@dataclass
class Snapshot:
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

    @property
    def datetime(self) -> datetime:
        return datetime.fromisoformat(self.time.replace("Z", "+00:00"))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "id"}


class Index:
    """blob id -> (pack name, entry), built from index files (and, after a crash, pack headers)."""

    def __init__(self) -> None:
        self.blobs: dict[bytes, tuple[str, fmt.PackEntry]] = {}
        self.copies: dict[bytes, list[tuple[str, fmt.PackEntry]]] = {}
        self.packs: dict[str, list[fmt.PackEntry]] = {}
        self.files: list[str] = []  # the index objects it was read from
        self.damaged: list[str] = []  # index files (or packs) that could not be read

    def add_pack(self, pack: str, entries: list[fmt.PackEntry]) -> None:
        self.packs[pack] = entries
        for entry in entries:
            first = self.blobs.setdefault(entry.blob_id, (pack, entry))
            if first[1] is not entry:  # the same blob stored again (another run, another key)
                self.copies.setdefault(entry.blob_id, []).append((pack, entry))

    def locations(self, blob_id: bytes) -> list[tuple[str, fmt.PackEntry]]:
        """Every stored copy of a blob, first-indexed first."""
        return [self.lookup(blob_id), *self.copies.get(blob_id, [])]

    def ids_sealed_with(self, keys: set[bytes]) -> set[bytes]:
        """Blob ids with a copy under one of these data keys."""
        return {e.blob_id for entries in self.packs.values() for e in entries if e.key_id in keys}

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self.blobs

    def lookup(self, blob_id: bytes) -> tuple[str, fmt.PackEntry]:
        try:
            return self.blobs[blob_id]
        except KeyError:
            raise CorruptFileError(
                f"blob {blob_id.hex()[:16]} is not in the index (missing data)"
            ) from None


def pack_path(name: str) -> str:
    return f"data/{name[:2]}/{name}"


class Repository:
    def __init__(self, backend: Backend, config: RepoConfig, keys: WriterSecrets) -> None:
        self.backend, self.config, self.keys = backend, config, keys
        # Who new data keys are sealed to: the repository's recipients, or (for the product's
        # repositories) the current master key and operator keys, which a new ceremony changes.
        self.data_recipients: list[str] = list(config.recipients)
        self.cache_dir: Path | None = None  # set for the appliance's own (writer) repositories

    # -- opening ---------------------------------------------------------------------------------
    @staticmethod
    def read_config(backend: Backend) -> RepoConfig:
        try:
            return RepoConfig.decode(backend.get("config"))
        except NotFoundError:
            raise NotFoundError(
                f"{backend.display}: no repository here (run `sealbox repo init`)"
            ) from None

    @classmethod
    def init(
        cls,
        backend: Backend,
        recipients: list[str],
        state_dir: Path,
        chunker: dict[str, int] | None = None,
    ) -> Repository:
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
        repo_id = secrets.token_hex(16)
        config = RepoConfig(
            id=repo_id,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            recipients=list(recipients),
            chunker=dict(chunker or DEFAULT_CHUNKER),
            pack_size=PACK_SIZE,
        )
        keys = WriterSecrets.generate(repo_id)
        writer = new_writer_identity(cls.writer_path(state_dir, repo_id))
        sealed = keys.seal([*recipients, writer])
        backend.put(f"keys/{fmt.content_name(sealed)}", sealed, exclusive=True)
        backend.put(
            "config", config.encode(), exclusive=True
        )  # last: a repo exists once config does
        return cls(backend, config, keys)

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
    def open(cls, backend: Backend, identities: list[Any], what: str = "repository") -> Repository:
        config = cls.read_config(backend)
        last: Exception | None = None
        for info in backend.list("keys/"):
            try:
                keys = WriterSecrets.unseal(
                    backend.get(info.name), identities, f"{backend.display}/{info.name}"
                )
            except KeyMaterialError as exc:
                last = exc
                continue
            if keys.repo_id != config.id:
                raise CorruptFileError(
                    f"{backend.display}/{info.name}: key object of another repository"
                )
            return cls(backend, config, keys)
        raise KeyMaterialError(
            f"{backend.display}: the key given opens none of the repository's keys"
        ) from last

    @classmethod
    def open_writer(cls, backend: Backend, state_dir: Path) -> Repository:
        config = cls.read_config(backend)
        repo = cls.open(backend, load_writer_identity(cls.writer_path(state_dir, config.id)))
        repo.cache_dir = state_dir / "repos" / config.id / "cache"
        return repo

    def _immutable(self, name: str) -> bytes:
        """A content-named object (index file, snapshot header), through the local cache: a
        run then fetches only what is new, not every index and snapshot ever written."""
        if self.cache_dir is None:
            return self.backend.get(name)
        local = self.cache_dir / name
        try:
            data = local.read_bytes()
            if fmt.content_name(data) == name.rsplit("/", 1)[-1]:
                return data
        except OSError:
            pass
        data = self.backend.get(name)
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
                packs = fmt.decode_index(self._immutable(name), self.keys.index_key, name)
            except CorruptFileError as exc:
                index.damaged.append(str(exc))
                continue
            for pack, entries in packs.items():
                index.add_pack(pack, entries)
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
        for info in self.backend.list("data/"):
            yield info.name.rsplit("/", 1)[-1], info.size

    def read_pack_header(self, pack: str, size: int) -> list[fmt.PackEntry]:
        where = pack_path(pack)
        if size < 4:
            raise CorruptFileError(f"{where}: truncated pack")
        length = fmt.pack_header_size(self.backend.get(where, size - 4, 4))
        if length > size:
            raise CorruptFileError(f"{where}: pack header length is out of range")
        return fmt.decode_pack_header(
            self.backend.get(where, size - length, length), self.keys.index_key, where
        )

    def save_index(self, packs: dict[str, list[fmt.PackEntry]]) -> str:
        self.backend.flush()  # the packs (and data keys) it names are durable first
        data = fmt.encode_index(packs, self.keys.index_key)
        name = f"index/{fmt.content_name(data)}"
        self.backend.put(name, data, exclusive=False)
        return name

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
        sealed = self.backend.get(name)
        if fmt.content_name(sealed) != key_id.hex():
            raise CorruptFileError(f"{name}: damaged (its content does not match its name)")
        try:
            return bytes(agekeys.decrypt(sealed, identities))
        except pyrage.DecryptError as exc:
            raise KeyMaterialError(
                f"{name}: the key given does not open this backup's data"
            ) from exc

    # -- snapshots -------------------------------------------------------------------------------
    def snapshots(self) -> list[Snapshot]:
        names = [info.name for info in self.backend.list("snapshots/")]
        self._prune_cache("snapshots", set(names))
        out = [self.load_snapshot(name.rsplit("/", 1)[-1]) for name in names]
        return sorted(out, key=lambda s: (s.time, s.id))

    def load_snapshot(self, name: str) -> Snapshot:
        where = f"snapshots/{name}"
        data = self._immutable(where)
        if fmt.content_name(data) != name:
            raise CorruptFileError(f"{where}: damaged (its content does not match its name)")
        doc: Any = fmt.open_json(self.keys.index_key, b"snapshot", data, where)
        try:
            return Snapshot(id=name, **doc)
        except TypeError as exc:
            raise CorruptFileError(f"{where}: unexpected snapshot fields") from exc

    def find_snapshot(self, ref: str) -> Snapshot:
        snaps = self.snapshots()
        if ref == "latest":
            if not snaps:
                raise NotFoundError("the repository has no snapshot yet")
            return snaps[-1]
        found = [s for s in snaps if s.id.startswith(ref)]
        if len(found) != 1:
            raise NotFoundError(
                f"no snapshot {ref!r}" if not found else f"snapshot prefix {ref!r} is ambiguous"
            )
        return found[0]

    def save_snapshot(self, snapshot: Snapshot) -> str:
        data = fmt.seal_json(self.keys.index_key, b"snapshot", snapshot.to_dict())
        name = fmt.content_name(data)
        self.backend.flush()  # its index and reference list first
        self.backend.put(f"snapshots/{name}", data, exclusive=False)
        self.backend.flush()
        snapshot.id = name
        return name

    def save_refs(self, refs: set[bytes]) -> str:
        data = fmt.encode_refs(refs, self.keys.index_key)
        name = fmt.content_name(data)
        self.backend.put(f"refs/{name}", data, exclusive=False)
        return name

    def load_refs(self, name: str) -> list[bytes]:
        where = f"refs/{name}"
        data = self.backend.get(where)
        if fmt.content_name(data) != name:
            raise CorruptFileError(f"{where}: damaged (its content does not match its name)")
        return fmt.decode_refs(data, self.keys.index_key, where)
