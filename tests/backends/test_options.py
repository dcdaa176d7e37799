"""Every documented destination option reaches its backend: each option of each backend's
options model is set through a config, the backend is opened the way every use case opens it
(``destinations.repos.destination_backend``), and the value is observed in the backend. A new
option without a row here fails the completeness test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sealbox.backends.options import DestinationOptions
from sealbox.backends.registry import KINDS, open_backend
from sealbox.config.load import validate
from sealbox.destinations.repos import destination_backend
from sealbox.errors import ConfigError

URLS = {
    "file": "file:///srv/backup",
    "memory": "memory://options-test",
    "s3": "s3://bucket/prefix?endpoint=http://127.0.0.1:9",
    "sftp": "sftp://sealbox@127.0.0.1:9/srv/backup",
    "agent": "agent+https://127.0.0.1:9/pam-01",
}


def _cert(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _credentials(backend: Any) -> Any:
    return backend.client._request_signer._credentials


# (kind, option) -> (value to set, given tmp_path; check of the opened backend)
Setter = Callable[[Path], Any]
Check = Callable[[Any, Any], None]


def _eq(attr: str) -> Check:
    def check(backend: Any, value: Any) -> None:
        assert getattr(backend, attr) == value

    return check


def _token(tmp: Path) -> Path:
    (tmp / "token").write_text("tok-123\n")
    return tmp / "token"


def _secret(tmp: Path) -> Path:
    (tmp / "secret").write_text("s3-secret-xyz\n")
    return tmp / "secret"


def _ca_loaded(backend: Any, value: Path) -> None:
    context = backend.client.connection_pool_kw["ssl_context"]
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]


ROWS: dict[tuple[str, str], tuple[Setter, Check]] = {
    ("s3", "access_key_id"): (
        lambda tmp: "AKIDOPTIONS",
        lambda b, v: _eq("access_key")(_credentials(b), v),
    ),  # with secret_key_file (EXTRA): one without the other is refused
    ("s3", "secret_key_file"): (
        _secret,
        lambda b, v: _eq("secret_key")(_credentials(b), "s3-secret-xyz"),
    ),
    ("s3", "object_lock_days"): (lambda tmp: 7, _eq("lock_days")),
    ("s3", "quota_bytes"): (lambda tmp: 123_456, _eq("quota")),
    ("sftp", "ssh_key_file"): (lambda tmp: tmp / "id_ed25519", _eq("key_file")),
    ("sftp", "known_hosts_file"): (lambda tmp: tmp / "known_hosts", _eq("known_hosts")),
    ("agent", "token_file"): (
        _token,
        lambda b, v: _eq("headers")(b, {"Authorization": "Bearer tok-123"}),
    ),
    ("agent", "ca_file"): (lambda tmp: _cert(tmp, "test-ca")[0], _ca_loaded),
}
# client_cert and client_key are proven below (an SSLContext does not show its own chain).
EXTRA: dict[tuple[str, str], Callable[[Path], dict[str, Any]]] = {
    ("s3", "access_key_id"): lambda tmp: {"secret_key_file": str(_secret(tmp))},
    ("s3", "secret_key_file"): lambda tmp: {"access_key_id": "AKIDOTHER"},
}
BY_BEHAVIOUR = {("agent", "client_cert"), ("agent", "client_key")}
BASE = set(DestinationOptions.model_fields)


def _config(tmp: Path, table: dict[str, Any]) -> Any:
    config, problems = validate(
        {
            "appliance": {"name": "pam-01", "state_dir": str(tmp / "state")},
            "destinations": {"d": table},
        }
    )
    assert config is not None, problems
    return config


def test_every_documented_option_has_a_row():
    documented = {(kind.name, field) for kind in KINDS for field in kind.options.model_fields} - {
        (kind.name, field) for kind in KINDS for field in BASE
    }
    assert documented == set(ROWS) | BY_BEHAVIOUR


@pytest.mark.parametrize("row", sorted(ROWS), ids=lambda r: f"{r[0]}.{r[1]}")
def test_option_reaches_its_backend(row, tmp_path, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SEALBOX_AGENT_CA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", "from-the-environment")
    monkeypatch.setenv("SEALBOX_SSH_KEY", str(tmp_path / "env-key"))
    kind, option = row
    make, check = ROWS[row]
    value = make(tmp_path)
    table = {"url": URLS[kind], option: str(value) if isinstance(value, Path) else value}
    extra = EXTRA[row](tmp_path) if row in EXTRA else {}
    config = _config(tmp_path, table | extra)
    backend = destination_backend(config, "d")
    try:
        check(backend, value)
    finally:
        backend.close()


def test_agent_client_certificate_and_key_reach_the_tls_context(tmp_path, monkeypatch):
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", "t")
    for var in ("SEALBOX_AGENT_CLIENT_CERT", "SEALBOX_AGENT_CLIENT_KEY"):
        monkeypatch.delenv(var, raising=False)
    cert, key = _cert(tmp_path, "client")
    _, other_key = _cert(tmp_path, "other")
    url = URLS["agent"]
    ok = destination_backend(
        _config(tmp_path, {"url": url, "client_cert": str(cert), "client_key": str(key)}), "d"
    )
    ok.close()
    # The key given is used: another key does not match the certificate.
    with pytest.raises(ConfigError):
        destination_backend(
            _config(tmp_path, {"url": url, "client_cert": str(cert), "client_key": str(other_key)}),
            "d",
        )
    # The certificate given is used: without its key (the PEM holds none) it cannot load.
    with pytest.raises(ConfigError):
        destination_backend(_config(tmp_path, {"url": url, "client_cert": str(cert)}), "d")


@pytest.mark.parametrize(
    ("kind", "option", "value"),
    [("file", "token_file", "/t"), ("s3", "ssh_key_file", "/k"), ("agent", "object_lock_days", 3)],
)
def test_an_option_of_another_backend_is_refused_by_name(tmp_path, kind, option, value):
    config, problems = validate(
        {
            "appliance": {"name": "pam-01", "state_dir": str(tmp_path)},
            "destinations": {"d": {"url": URLS[kind], option: value}},
        }
    )
    assert config is None
    assert problems == [
        (
            f"destinations.d.{option}",
            f"unknown key (typo?), or not an option of {kind} destinations",
        )
    ]


def test_every_scheme_of_the_table_validates_and_opens(tmp_path, monkeypatch):
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", "t")
    monkeypatch.setenv("SEALBOX_SSH_KEY", str(tmp_path / "k"))
    for kind in KINDS:
        config = _config(tmp_path, {"url": URLS[kind.name]})
        assert isinstance(config.destinations["d"], kind.options)
        backend = open_backend(URLS[kind.name])
        backend.close()


def test_s3_credentials_come_in_pairs(tmp_path):
    for table in ({"access_key_id": "AKID"}, {"secret_key_file": str(_secret(tmp_path))}):
        config = _config(tmp_path, {"url": URLS["s3"], **table})
        with pytest.raises(ConfigError, match="access_key_id and secret_key_file go together"):
            destination_backend(config, "d")


def test_each_backend_module_declares_the_schemes_of_its_row():
    for kind in KINDS:
        assert kind.schemes == kind.load().SCHEMES, kind.name


def test_opening_a_backend_without_a_config_does_not_import_pydantic(tmp_path):
    """The plumbing (`sealbox repo ...`) reads no config; pydantic would cost it 0.15 s."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sealbox.backends import open_backend\n"
        f"open_backend('file://{tmp_path}').close()\n"
        "open_backend('memory://x').close()\n"
        "assert 'pydantic' not in sys.modules, 'pydantic imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_file_url_with_a_host_is_refused_with_or_without_a_config(tmp_path):
    with pytest.raises(ConfigError, match="file:// URLs take no host"):
        open_backend("file://server/share")
    config, problems = validate(
        {
            "appliance": {"name": "pam-01", "state_dir": str(tmp_path)},
            "destinations": {"d": {"url": "file://server/share"}},
        }
    )
    assert config is None
    assert problems == [
        ("destinations.d.url", "file:// URLs take no host: use file:///absolute/path")
    ]


@pytest.mark.parametrize(("keep_at_least", "locked"), [("30d", 30), ("36h", 7), (None, 7)])
def test_object_lock_covers_the_longest_keep_at_least(tmp_path, keep_at_least, locked):
    """With Object Lock on, the storage holds every object at least as long as forget would."""
    retention = {"keep_at_least": keep_at_least} if keep_at_least else {}
    config, problems = validate(
        {
            "appliance": {"name": "pam-01", "state_dir": str(tmp_path)},
            "destinations": {"d": {"url": URLS["s3"], "object_lock_days": 7}},
            "system": {"destination": "d", "paths": ["/etc"], "retention": retention},
        }
    )
    assert config is not None, problems
    assert destination_backend(config, "d").lock_days == locked
    assert destination_backend(config, "d", repo=True).lock_days == locked
