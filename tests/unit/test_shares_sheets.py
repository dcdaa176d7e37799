"""What a custodian reads and types: the exact refusals of split and combine, the sheet's fields,
and the passphrase reaching SLIP-39 (pinned by mutation testing, docs/testing.md)."""

from __future__ import annotations

import dataclasses
import re

import pytest
from shamir_mnemonic import MnemonicError, Share

from sealbox.crypto import agekeys, shares
from sealbox.errors import ShareError


@pytest.fixture(scope="module")
def three_of_five() -> tuple[bytearray, list[str]]:
    secret = agekeys.new_secret()
    return secret, shares.split(secret, shares=5, threshold=3)


def refused(match: str) -> pytest.RaisesExc[ShareError]:
    return pytest.raises(ShareError, match=f"^{re.escape(match)}$")


def test_split_refusals_say_what_is_wrong():
    secret = agekeys.new_secret()
    with refused("the secret to split must be 32 bytes"):
        shares.split(secret[:31], shares=3, threshold=2)
    with refused("need 1 <= threshold <= shares <= 16, got 6-of-5"):
        shares.split(secret, shares=5, threshold=6)
    with refused("need 1 <= threshold <= shares <= 16, got 2-of-17"):
        shares.split(secret, shares=17, threshold=2)
    with refused("a threshold of 1 with several shares gives every custodian the whole key"):
        shares.split(secret, shares=2, threshold=1)


def test_split_gives_the_asked_number_of_shares_at_the_edges():
    secret = agekeys.new_secret()
    (only,) = shares.split(secret, shares=1, threshold=1)  # 1-of-1 is a plain backup of the key
    assert shares.combine([shares.parse_share(only, "one")]) == secret
    sixteen = shares.split(secret, shares=16, threshold=16)
    parsed = [shares.parse_share(m, f"s{i}") for i, m in enumerate(sixteen)]
    assert [p.index for p in parsed] == list(range(16)) and {p.threshold for p in parsed} == {16}
    assert shares.combine(parsed) == secret


def test_the_passphrase_is_part_of_the_split():
    secret = agekeys.new_secret()
    mnemonics = shares.split(secret, shares=2, threshold=2, passphrase=b"correct horse")
    parsed = [shares.parse_share(m, f"s{i}") for i, m in enumerate(mnemonics)]
    assert shares.combine(parsed, b"correct horse") == secret
    # SLIP-39 does not detect a wrong passphrase: it yields another secret (callers check key ids)
    assert shares.combine(parsed) != secret
    assert shares.combine(parsed, b"wrong") != secret


def test_a_sheet_is_read_between_its_markers_and_its_fields_anywhere(three_of_five):
    _, mnemonics = three_of_five
    words = mnemonics[1].split()
    body = "\n".join(", ".join(f"{n}. {w.upper()}" for n, w in pair) for pair in _pairs(words))
    sheet = (
        "Sealbox custodian sheet for academic use\n"  # "academic" is a SLIP-39 word: not a share word
        "  key ID:  abcd-ef01\n"
        "Recipient: age1xyz:with-colon\n"
        "Signer: ssh-ed25519 AAAA first\n"
        "Signer:\n"
        "signer: ssh-ed25519 BBBB second\n"
        "PASSPHRASE: No\n"
        f"  begin share  \n{body}\n  end share\n"
        "12 academic\n"
    )
    parsed = shares.parse_share(sheet, "sheet.txt")
    assert parsed.mnemonic == mnemonics[1]
    assert parsed.origin == "sheet.txt" and parsed.index == 1 and parsed.threshold == 3
    assert parsed.key_id == "abcd-ef01"
    assert parsed.recipient == "age1xyz:with-colon"
    assert parsed.signers == ("ssh-ed25519 AAAA first", "ssh-ed25519 BBBB second")
    assert parsed.passphrase is False
    assert shares.parse_share(sheet.replace("PASSPHRASE: No", "Passphrase: YES"), "s").passphrase
    bare = shares.parse_share(mnemonics[1], "bare")
    assert (bare.key_id, bare.recipient, bare.signers, bare.passphrase) == (None, None, (), None)


def test_one_marker_alone_is_not_a_sheet(three_of_five):
    # without both markers every word of the text is a share word, the marker's too (33 words)
    _, mnemonics = three_of_five
    with refused("s: word 1 'begin' is not a SLIP-39 word (mistyped?)"):
        shares.parse_share(f"BEGIN SHARE\n{mnemonics[0]}", "s")
    with refused("s: word 34 'end' is not a SLIP-39 word (mistyped?)"):
        shares.parse_share(f"{mnemonics[0]}\nEND SHARE", "s")


def test_parse_refusals_name_the_file_and_the_word(three_of_five):
    _, mnemonics = three_of_five
    with refused("empty.txt: no share words found"):
        shares.parse_share("1. 2.\n3,", "empty.txt")
    words = mnemonics[0].split()
    words[3] = "zebra"
    with refused("s.txt: word 4 'zebra' is not a SLIP-39 word (mistyped?)"):
        shares.parse_share(" ".join(words), "s.txt")
    with refused(
        "s.txt: invalid share (checksum failed: a word is mistyped or the words are out of order)"
    ):
        shares.parse_share(" ".join(reversed(mnemonics[0].split())), "s.txt")
    with pytest.raises(
        ShareError, match=r"^short\.txt: invalid share \(invalid mnemonic length"
    ) as e:
        shares.parse_share(" ".join(mnemonics[0].split()[:10]), "short.txt")
    assert not e.value.args[0].endswith(".)")


def test_library_reasons_read_as_part_of_a_sentence():
    assert shares._reason(MnemonicError("Invalid mnemonic length.")) == "invalid mnemonic length"
    assert shares._reason(MnemonicError("Invalid mnemonic checksum.")).startswith("checksum failed")


def test_combine_refusals_say_what_is_wrong(three_of_five):
    _, mnemonics = three_of_five
    parsed = [shares.parse_share(m, f"share-{i + 1}.txt") for i, m in enumerate(mnemonics)]
    with refused("no shares given"):
        shares.combine([])
    with refused("share-4.txt is the same share as share-2.txt (share #2)"):
        shares.combine([parsed[1], parsed[0], shares.parse_share(mnemonics[1], "share-4.txt")])
    other = shares.parse_share(shares.split(agekeys.new_secret(), shares=2, threshold=2)[0], "x")
    with pytest.raises(ShareError) as e:
        shares.combine([parsed[0], other])
    assert e.value.args[0] == (
        "the shares come from different ceremonies: "
        f"share-1.txt (set {parsed[0].identifier}), x (set {other.identifier})"
    )
    with refused("1 share(s) given, this key needs 3"):
        shares.combine(parsed[:1])


def _pairs(words: list[str]) -> list[list[tuple[int, str]]]:
    numbered = list(enumerate(words, 1))
    return [numbered[i : i + 2] for i in range(0, len(numbered), 2)]


def test_a_forged_share_of_the_right_set_does_not_combine(three_of_five):
    # a share with a valid checksum and the set's identifier but other share bytes (a damaged or
    # forged sheet): SLIP-39's digest catches it, and the custodian is told so
    _, mnemonics = three_of_five
    real = Share.from_mnemonic(mnemonics[2])
    forged = dataclasses.replace(real, value=bytes(b ^ 1 for b in real.value)).mnemonic()
    parsed = [shares.parse_share(m, f"s{i}") for i, m in enumerate([*mnemonics[:2], forged])]
    with refused("the shares do not combine (invalid digest of the shared secret)"):
        shares.combine(parsed)
