"""Test vectors of the repository signatures (docs/design/format.md §9, §12, and the signer
endorsement): Ed25519 is deterministic, so the same key and body always give these bytes."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.crypto import sshsig
from sealbox.crypto.trust import Trust, endorse
from sealbox.errors import SignatureError
from sealbox.repo.repository import RepoConfig, Snapshot

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NEXT = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
TRUST = Trust.of([KEY.public_key()], "the vector")


def _snapshot() -> Snapshot:
    return Snapshot(
        id="",
        time="2026-01-02T00:00:00.000000Z",
        hostname="pam-01",
        paths=["/etc/pam"],
        tree="11" * 32,
        refs="22" * 32,
        kind="system",
        data_keys=["33" * 32],
        repo="44" * 16,
    )


def test_snapshot_signature_vector():
    snap = _snapshot()
    snap.sign(KEY, [])
    assert hashlib.sha256(snap.body()).hexdigest() == (
        "aeeaf2de0ca4a258b5bd152694be421f186e441043d2fc1ecceed10a7fa47524"
    )
    assert snap.signature.splitlines()[1:5] == [
        "U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgA6EHv/POEL4dcN0Y50vAmWfk1j",
        "CbpQ1fHdyGZBJVMbgAAAAQc2VhbGJveC1zbmFwc2hvdAAAAAAAAAAGc2hhNTEyAAAAUwAA",
        "AAtzc2gtZWQyNTUxOQAAAECDxMIBNBwuya0j/Om+h7ToT2+ccXB4JvqiMDW4dY7a+p5tzk",
        "iGmdPBw2Sb6w+94S/B67mvW2CNgd5dXFVqExQP",
    ]
    snap.check("44" * 16, TRUST, "vector")
    assert snap.verified


@pytest.mark.parametrize(
    "field, value",
    [
        ("tree", "aa" * 32),
        ("data_keys", []),
        ("time", "2026-01-03T00:00:00.000000Z"),
        ("extra", {"databases": []}),
        ("kind", "files"),
        ("parent", "bb" * 32),
    ],
)
def test_any_signed_field_changed_breaks_the_signature(field, value):
    snap = _snapshot()
    snap.sign(KEY, [])
    setattr(snap, field, value)
    with pytest.raises(SignatureError, match="does not match"):
        snap.check("44" * 16, TRUST, "vector")


def test_snapshot_of_another_repository_is_refused():
    snap = _snapshot()
    snap.sign(KEY, [])
    with pytest.raises(SignatureError, match="another repository"):
        snap.check("99" * 16, TRUST, "vector")


def test_config_signature_vector():
    config = RepoConfig(
        id="44" * 16,
        created="2026-01-01T00:00:00Z",
        recipients=["age13aqvttdk3ujkyjh9kg2w5an6dmy5mq5a84a4uxk3hfhnugfc9p0sy5p2wh"],
        chunker={"min": 262144, "avg": 1048576, "max": 4194304},
        pack_size=8388608,
        keys="55" * 32,
        signer=sshsig.public_key_line(KEY.public_key()),
    )
    signature = sshsig.sign(KEY, config.body(), sshsig.NS_REPO)
    assert signature.splitlines()[1:5] == [
        "U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgA6EHv/POEL4dcN0Y50vAmWfk1j",
        "CbpQ1fHdyGZBJVMbgAAAAMc2VhbGJveC1yZXBvAAAAAAAAAAZzaGE1MTIAAABTAAAAC3Nz",
        "aC1lZDI1NTE5AAAAQK6Ug6vU8aTSCUzrELmu86SSjgk0vZhQ652LGd1hh/rCpFeJGXr34O",
        "2goyY1muh+42sod9kK6BmW2FJFsz5M9gU=",
    ]
    from dataclasses import replace

    assert replace(config, signature=signature).verify(TRUST, "vector") is True


def test_endorsement_vector():
    link = endorse(KEY, NEXT.public_key(), "2026-06-01T00:00:00Z")
    assert link.signature.splitlines()[1:5] == [
        "U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgA6EHv/POEL4dcN0Y50vAmWfk1j",
        "CbpQ1fHdyGZBJVMbgAAAAOc2VhbGJveC1zaWduZXIAAAAAAAAABnNoYTUxMgAAAFMAAAAL",
        "c3NoLWVkMjU1MTkAAABAFYXJpGGsNKOmu6UQ/NQES/B2MjKIYBwBNHpLShjtPWSZGZtLKt",
        "BTtcGEt+sjAJnxooLl+frsTnFoVn9kKjnyCw==",
    ]
    assert TRUST.following([link]).pins(NEXT.public_key())
