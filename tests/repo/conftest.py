from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealbox.backends import open_backend
from sealbox.crypto import agekeys
from sealbox.repo.blobs import BlobReader
from sealbox.repo.repository import Repository


@dataclass
class RepoEnv:
    url: str
    state: Path
    identity_file: Path
    identities: list
    recipient: str

    def writer(self) -> Repository:
        return Repository.open_writer(open_backend(self.url), self.state)

    def reader(self) -> tuple[Repository, BlobReader]:
        repo = Repository.open(open_backend(self.url), self.identities)
        return repo, BlobReader(repo, repo.load_index(), self.identities)


@pytest.fixture
def env(tmp_path) -> RepoEnv:
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(identity + "\n")
    recipient = agekeys.recipient_of(identity)
    url = f"file://{tmp_path}/repo"
    Repository.init(open_backend(url), [recipient], tmp_path / "state")
    return RepoEnv(
        url, tmp_path / "state", identity_file, agekeys.load_identities(identity, "t"), recipient
    )


def make_tree(root: Path, big: int = 3_000_000) -> Path:
    """A small tree with every kind of entry a backup must keep."""
    (root / "etc" / "pam").mkdir(parents=True)
    (root / "etc" / "pam" / "app.conf").write_text("listen = 443\nmode = strict\n" * 50)
    (root / "etc" / "empty").write_bytes(b"")
    (root / "etc" / "emptydir").mkdir()
    (root / "var" / "log").mkdir(parents=True)
    (root / "var" / "log" / "audit.log").write_text(
        "".join(f"event {i} user=alice ok\n" for i in range(20000))
    )
    (root / "var" / "rec.bin").write_bytes(os.urandom(big))
    (root / "etc" / "pam" / "link").symlink_to("app.conf")
    os.link(root / "etc" / "pam" / "app.conf", root / "etc" / "hardlink.conf")
    (root / "etc" / "secret.key").write_text("k")
    (root / "etc" / "secret.key").chmod(0o600)
    weird = os.fsencode(str(root / "etc")) + b"/caf\xe9-latin1"
    with open(weird, "wb") as handle:
        handle.write(b"non-utf8 name")
    with contextlib.suppress(OSError):
        os.setxattr(root / "etc" / "pam" / "app.conf", "user.sealbox", b"tagged")
    os.utime(
        root / "etc" / "pam" / "app.conf", ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789)
    )
    return root
