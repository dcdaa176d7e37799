"""The signed change list beside a secrets backup: ids and change times, nothing else; forged or
unpinned lists are refused; `changed_since` errs on the side of listing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.breakglass import changes
from sealbox.crypto import sshsig
from sealbox.crypto.trust import Trust
from sealbox.errors import CorruptFileError, SignatureError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
ITEMS = [("cred-1", "2026-01-01T00:00:05Z"), ("ssh-2", "2026-01-02T00:00:00Z"), ("x-3", None)]


def _sealed(key=KEY, items=ITEMS) -> bytes:
    return changes.seal(
        file="secrets-pam-01-20260102T000000Z.age",
        appliance="pam-01",
        created="2026-01-02T00:00:00Z",
        items=items,
        signer=key,
        endorsements=[],
    )


def _trust(key=KEY) -> Trust:
    return Trust.of([key.public_key()], "test")


def test_vector():
    """format.md §6a: Ed25519 is deterministic, so the whole list is."""
    digest = "34299ba801f5fe530d3634af9ce3c26096b9f6896dbdad87481766a49c17cd2c"
    assert hashlib.sha256(_sealed()).hexdigest() == digest


def test_roundtrip_holds_ids_and_times_only():
    listed = changes.parse(_sealed(), _trust(), "w")
    assert listed.items == tuple(ITEMS) and listed.pinned
    assert set(orjson.loads(_sealed())) == {
        "format",
        "version",
        "file",
        "appliance",
        "created",
        "items",
        "signer",
        "endorsements",
        "signature",
    }


def test_changed_since_counts_the_snapshots_own_second_and_lists_undated():
    listed = changes.parse(_sealed(), _trust(), "w")
    when = datetime(2026, 1, 1, 0, 0, 5, 500_000, tzinfo=UTC)
    assert listed.changed_since(when) == [("ssh-2", ITEMS[1][1]), ("cred-1", ITEMS[0][1])]
    assert listed.changed_since(datetime(2026, 1, 1, 0, 0, 6, tzinfo=UTC)) == [
        ("ssh-2", ITEMS[1][1])
    ]
    assert listed.undated == ["x-3"]


def test_an_edited_list_fails_its_signature():
    doc = orjson.loads(_sealed())
    doc["items"] = doc["items"][:1]
    with pytest.raises(SignatureError):
        changes.parse(orjson.dumps(doc), _trust(), "w")


def test_a_list_signed_by_another_key_is_refused_unless_unverified_is_accepted():
    with pytest.raises(SignatureError, match="not by a key pinned"):
        changes.parse(_sealed(OTHER), _trust(), "w")
    loose = Trust.of([KEY.public_key()], "test", accept_unverified=True)
    assert not changes.parse(_sealed(OTHER), loose, "w").pinned


def test_a_signer_field_that_names_another_key_is_refused():
    doc = orjson.loads(_sealed(OTHER))
    doc["signer"] = orjson.loads(_sealed())["signer"]
    with pytest.raises((CorruptFileError, SignatureError)):
        changes.parse(orjson.dumps(doc), _trust(), "w")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="other"),
        lambda d: d.update(version=2),
        lambda d: d.update(items="nope"),
        lambda d: d.update(items=[["a"]]),
        lambda d: d.update(items=[[1, None]]),
    ],
)
def test_malformed_lists_are_refused(mutate):
    doc = orjson.loads(_sealed())
    mutate(doc)
    with pytest.raises((CorruptFileError, SignatureError)):
        changes.parse(orjson.dumps(doc), _trust(), "w")


def test_junk_is_refused():
    with pytest.raises(CorruptFileError):
        changes.parse(b"\x00not json", _trust(), "w")


def _resigned(doc: dict, key=KEY) -> bytes:
    """A change list altered and signed again: what a holder of the signing key could write."""
    body = orjson.dumps(
        {k: v for k, v in doc.items() if k != "signature"}, option=orjson.OPT_SORT_KEYS
    )
    return orjson.dumps({**doc, "signature": sshsig.sign(key, body, changes.NS_CHANGES)})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(items="nope"),
        lambda d: d.update(items=[["a"]]),
        lambda d: d.update(items=[[1, None]]),
        lambda d: d.update(items=[["a", 5]]),
        lambda d: d.update(file=7),
        lambda d: d.update(created=None),
    ],
)
def test_a_signed_but_malformed_list_is_refused(mutate):
    doc = orjson.loads(_sealed())
    mutate(doc)
    with pytest.raises(CorruptFileError):
        changes.parse(_resigned(doc), _trust(), "w")


def test_a_list_signed_by_one_key_that_names_another_is_refused():
    doc = orjson.loads(_sealed())  # names KEY...
    with pytest.raises(CorruptFileError, match="another key than it names"):
        changes.parse(_resigned(doc, OTHER), _trust(OTHER), "w")  # ...signed by OTHER


def test_a_change_time_that_is_not_a_time_counts_as_undated():
    listed = changes.parse(
        _sealed(items=[("a", "yesterday"), ("b", "2026-01-01 00:00:00")]), _trust(), "w"
    )
    assert listed.undated == ["a"]
    assert listed.changed_since(datetime(2025, 1, 1, tzinfo=UTC)) == [("b", "2026-01-01 00:00:00")]
