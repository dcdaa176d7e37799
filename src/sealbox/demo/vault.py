"""A demo credential vault: a SQLite database shaped like a PAM appliance's, with history.

Every item type gets ``per_type`` items, each with one to three earlier versions. SSH keys and
certificates are real (Ed25519), so exports load in other tools.
"""

from __future__ import annotations

import random
import sqlite3
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from sealbox.items import ITEM_TYPES

__all__ = ["HISTORY_QUERY", "QUERY", "SECRET_COLUMNS", "create_vault", "next_day"]

SECRET_COLUMNS = ["password", "private_key", "passphrase", "api_secret"]
QUERY = (
    "SELECT id, kind AS type, name, host, url, username, tags, notes, updated_at, "
    "password, private_key, passphrase, api_secret FROM items ORDER BY id"
)
HISTORY_QUERY = (
    "SELECT item_id, changed_at, password, private_key, passphrase, api_secret "
    "FROM item_history ORDER BY item_id, changed_at"
)
_SCHEMA = """
CREATE TABLE items (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, host TEXT, url TEXT,
    username TEXT, tags TEXT, notes TEXT, updated_at TEXT NOT NULL,
    password TEXT, private_key TEXT, passphrase TEXT, api_secret TEXT
);
CREATE TABLE item_history (
    item_id TEXT NOT NULL REFERENCES items(id), changed_at TEXT NOT NULL,
    password TEXT, private_key TEXT, passphrase TEXT, api_secret TEXT
);
"""
_ID_PREFIX = {
    "credential": "cred",
    "ssh_key": "ssh",
    "secret": "tok",
    "cloud_key": "cloud",
    "certificate": "cert",
    "other": "misc",
}
_TEAMS = ["dba", "network", "windows", "linux", "cloud", "security", "payments", "erp"]
_SITES = ["par", "fra", "nyc", "sao", "sgp"]
_ALPHABET = string.ascii_letters + string.digits + "!#%+-=_"


def _password(rng: random.Random, n: int = 20) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(n))


def _ssh_key() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def _certificate(host: str, when: datetime) -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(when)
        .not_valid_after(when + timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, None)
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem_key, cert.public_bytes(serialization.Encoding.PEM).decode()


def _secret_values(
    kind: str, rng: random.Random, host: str, when: datetime
) -> tuple[dict[str, str | None], str | None]:
    """Secret column values for one version, and notes (a certificate's public PEM)."""
    if kind == "ssh_key":
        return {"private_key": _ssh_key(), "passphrase": _password(rng, 16)}, None
    if kind == "certificate":
        pem_key, cert = _certificate(host, when)
        return {"private_key": pem_key}, cert
    if kind in ("secret", "cloud_key"):
        return {"api_secret": _password(rng, 40)}, None
    return {"password": _password(rng)}, None


def _row_for(
    index: int, kind: str, rng: random.Random, now: datetime
) -> tuple[list[str | None], list[tuple[str | None, ...]]]:
    team, site = rng.choice(_TEAMS), rng.choice(_SITES)
    host = f"{team}-{site}-{index % 97:02d}.corp.example"
    username, url, name = None, None, f"{kind} {index}"
    if kind == "credential":
        username, name = (
            rng.choice(["root", "admin", "svc_backup", "oracle", "sa"]),
            f"{host} admin",
        )
    elif kind == "ssh_key":
        username, name = (
            rng.choice(["root", "deploy", "ansible"]),
            f"SSH key {team}-{site} #{index}",
        )
    elif kind == "secret":
        url, name = f"https://api.{team}.example/v1", f"API token {team} #{index}"
    elif kind == "cloud_key":
        username = "AKIA" + "".join(
            rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)
        )
        name = f"AWS {team} {site} #{index}"
    elif kind == "certificate":
        name = f"TLS {host}"
    else:
        username, name = "operator", f"Door code {site} #{index}"
    versions = rng.randint(1, 3)
    start = now - timedelta(days=30 * versions + rng.randint(0, 29))
    history = []
    for v in range(versions):
        when = start + timedelta(days=30 * v)
        secret, _ = _secret_values(kind, rng, host, when)
        history.append((secret, when))
    current, notes = _secret_values(kind, rng, host, now - timedelta(days=rng.randint(0, 29)))
    row = [
        f"{_ID_PREFIX[kind]}-{index:05d}",
        kind,
        name,
        host if kind != "secret" else None,
        url,
        username,
        f"{team},{site}",
        notes,
        now.strftime("%Y-%m-%d %H:%M:%S"),
    ] + [current.get(c) for c in SECRET_COLUMNS]
    hist_rows = [
        (row[0], when.strftime("%Y-%m-%d %H:%M:%S"), *[s.get(c) for c in SECRET_COLUMNS])
        for s, when in history
    ]
    return row, hist_rows


def create_vault(path: Path, per_type: int = 1000, seed: int = 7) -> int:
    """Create the vault database; returns the number of items."""

    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA)
        for kind in ITEM_TYPES:
            for index in range(per_type):
                row, history = _row_for(index, kind, rng, now)
                db.execute("INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
                db.executemany("INSERT INTO item_history VALUES (?,?,?,?,?,?)", history)
    return per_type * len(ITEM_TYPES)


def next_day(path: Path, changed: int = 40, seed: int | None = None) -> int:
    """Rotate ``changed`` passwords (old value goes to history), as a day of work would."""
    rng = random.Random(seed)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(path) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM items WHERE kind = 'credential'")]
        for item_id in rng.sample(ids, min(changed, len(ids))):
            db.execute(
                "INSERT INTO item_history SELECT id, updated_at, password, private_key, passphrase,"
                " api_secret FROM items WHERE id = ?",
                (item_id,),
            )
            db.execute(
                "UPDATE items SET password = ?, updated_at = ? WHERE id = ?",
                (_password(rng), now, item_id),
            )
    return min(changed, len(ids))
