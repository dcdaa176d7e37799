"""Shared fixtures: an in-process CLI runner and a small demo appliance with a 3-of-5 key."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sealbox.backends import open_backend
from sealbox.cli.main import main
from sealbox.crypto import agekeys
from sealbox.crypto.trust import Trust
from sealbox.demo import vault
from sealbox.demo.run import _config_text
from sealbox.keys.store import Keystore
from sealbox.repo.blobs import BlobReader
from sealbox.repo.repository import Repository

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of an external tool; skip without it, except in CI where it must be there."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required under CI=true (scripts/install-tools.sh installs it)")
        pytest.skip(f"{name} is not installed (run scripts/install-tools.sh as root)")
    return path


@pytest.fixture(autouse=True)
def _receipts_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`breakglass open ... show --reveal` and `export` write a receipt: into the test's own
    folder, never the checkout."""
    monkeypatch.setenv("SEALBOX_RECEIPT_DIR", str(tmp_path))


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def sealbox(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process: ``sealbox("keys", "list")`` -> Result(code, out, err)."""

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@dataclass
class Appliance:
    root: Path
    config: Path
    remote: Path
    shares: list[Path]

    def share_args(self, *numbers: int) -> list[str]:
        out: list[str] = []
        for n in numbers:
            out += ["--share", str(self.shares[n - 1])]
        return out

    def backups(self) -> list[Path]:
        return sorted(self.remote.glob("secrets-*.age"))

    def signer_args(self) -> list[str]:
        """``--signer LINE``: the appliance key as a custodian copies it from a sheet."""
        for line in self.shares[0].read_text().splitlines():
            if line.startswith("Signer:"):
                return ["--signer", line.split(":", 1)[1].strip()]
        raise AssertionError("the sheet names no signer")


def make_appliance(root: Path, sealbox, per_type: int = 15) -> Appliance:
    vault.create_vault(root / "appliance" / "vault.db", per_type=per_type)
    (root / "remote").mkdir()
    config = root / "sealbox.toml"
    config.write_text(_config_text(root), encoding="utf-8")
    result = sealbox(
        "keys",
        "ceremony",
        "--shares",
        "5",
        "--threshold",
        "3",
        "--out",
        root / "custodians",
        "--config",
        config,
    )
    assert result.code == 0, result.err
    shares = [root / "custodians" / f"share-{n:02d}.txt" for n in range(1, 6)]
    return Appliance(root, config, root / "remote", shares)


@pytest.fixture
def appliance(tmp_path: Path, sealbox) -> Appliance:
    return make_appliance(tmp_path, sealbox)


@dataclass
class RepoEnv:
    url: str
    state: Path
    identity_file: Path
    identities: list
    recipient: str

    def writer(self) -> Repository:
        return Repository.open_writer(open_backend(self.url), self.state)

    @property
    def trust(self) -> Trust:
        """What a custodian pins: the appliance's signing key (as on the sheets)."""
        return Keystore(self.state).trust()

    def reader(self) -> tuple[Repository, BlobReader]:
        repo = Repository.open(open_backend(self.url), self.identities, self.trust)
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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    from tests.servers import S3Server, free_port

    port = free_port()
    server = S3Server(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("seaweedfs"), port)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """An empty bucket and the credentials in the environment (as the plumbing reads them)."""
    import secrets as random_names

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.bucket(f"sealbox-{random_names.token_hex(4)}")
    return f"s3://{bucket}/prefix?endpoint={s3_server.endpoint}"


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory):
    from tests.servers import SSHServer, free_port

    directory = tmp_path_factory.mktemp("sshd")
    server = SSHServer(
        directory, free_port(), directory / "client_ed25519", directory / "known_hosts"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sftp_env(ssh_server, monkeypatch, tmp_path):
    """A fresh remote directory over SFTP, with the key and known_hosts in the environment."""
    monkeypatch.setenv("SEALBOX_SSH_KEY", str(ssh_server.key))
    monkeypatch.setenv("SEALBOX_SSH_KNOWN_HOSTS", str(ssh_server.known_hosts))
    return f"sftp://root@127.0.0.1:{ssh_server.port}{tmp_path}/sftp-remote"


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    """A tiny filesystem mounted at ``path`` (root only; required under CI)."""
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a {size} tmpfs under CI: {mounted.stderr.decode()}")
        pytest.skip(f"needs root to mount a {size} tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def _agent(tmp_path_factory, append_only: bool, extra: tuple[str, ...] = ()):
    from tests.servers import AgentServer, free_port, self_signed

    directory = tmp_path_factory.mktemp("agent")
    cert, key = self_signed(directory)
    server = AgentServer(directory / "root", free_port(), cert, key, append_only, extra)
    server.start()
    return server


@pytest.fixture(scope="session")
def agent_server(tmp_path_factory):
    server = _agent(tmp_path_factory, False, ("--max-object", str(64 << 20), "--idle-timeout", "2"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def append_only_agent(tmp_path_factory):
    server = _agent(tmp_path_factory, True)
    yield server
    server.stop()


@pytest.fixture
def agent_env(agent_server, monkeypatch):
    """A fresh namespace on the agent, its token and CA in the environment."""
    import secrets as random_names

    namespace = f"ns-{random_names.token_hex(4)}"
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", agent_server.token(namespace))
    monkeypatch.setenv("SEALBOX_AGENT_CA", str(agent_server.cert))
    return f"{agent_server.base}/{namespace}"


@pytest.fixture
def mariadb_pair(tmp_path):
    """A real primary and a real replica replicating from it (two ``mariadbd`` processes)."""
    if shutil.which("mariadb-install-db") is None:
        pytest.skip("needs mariadb-server (mariadb-install-db, mariadbd)")
    from tests.servers import MariaDBServer

    primary, replica = MariaDBServer(tmp_path, 11), MariaDBServer(tmp_path, 12)
    try:
        primary.start()
        replica.start()
        primary.sql("CREATE DATABASE pam; CREATE TABLE pam.t (id INT PRIMARY KEY)")
        position = primary.sql("SHOW MASTER STATUS").split()
        replica.sql(
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port},"
            f" MASTER_USER='root', MASTER_LOG_FILE='{position[0]}', MASTER_LOG_POS={position[1]};"
            " START REPLICA"
        )
        primary.sql("CREATE DATABASE pam2")  # replicated: proves the link works
        deadline = time.monotonic() + 30
        while "pam2" not in replica.sql("SHOW DATABASES"):
            assert time.monotonic() < deadline, replica.sql("SHOW REPLICA STATUS")
            time.sleep(0.2)
        replica.sql("CREATE DATABASE pam")  # what the cluster's url names on the replica too
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


@pytest.fixture
def postgres_pair(tmp_path):
    """A real PostgreSQL primary and its streaming standby (two postgres servers)."""
    from tests.servers import PostgreSQLPair

    pair = PostgreSQLPair(tmp_path)
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()
