import contextlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbox.crypto import agekeys, shares
from sealbox.errors import ShareError


@pytest.fixture(scope="module")
def split():
    secret = agekeys.new_secret()
    mnemonics = shares.split(secret, shares=5, threshold=3)
    return secret, [shares.parse_share(m, f"share-{i + 1}") for i, m in enumerate(mnemonics)]


def test_every_quorum_rebuilds_the_secret(split):
    secret, parsed = split
    for combo in itertools.combinations(parsed, 3):
        assert shares.combine(list(combo)) == secret
    assert shares.combine(parsed) == secret


def test_too_few_shares(split):
    with pytest.raises(ShareError, match="2 share\\(s\\) given, this key needs 3"):
        shares.combine(split[1][:2])


def test_duplicate_share(split):
    parsed = split[1]
    with pytest.raises(ShareError, match="share-1 is the same share as share-1"):
        shares.combine([parsed[0], parsed[0], parsed[1]])


def test_shares_of_another_ceremony(split):
    other = shares.parse_share(
        shares.split(agekeys.new_secret(), shares=5, threshold=3)[0], "foreign"
    )
    with pytest.raises(ShareError, match="different ceremonies"):
        shares.combine([split[1][0], split[1][1], other])


def test_mistyped_word_is_located(split):
    words = split[1][0].mnemonic.split()
    words[6] = words[6][:-1] + ("x" if words[6][-1] != "x" else "y")
    with pytest.raises(ShareError, match="word 7"):
        shares.parse_share(" ".join(words), "s")


def test_swapped_words_fail_the_checksum(split):
    words = split[1][0].mnemonic.split()
    words[10], words[11] = words[11], words[10]
    if words[10] != words[11]:
        with pytest.raises(ShareError, match="checksum"):
            shares.parse_share(" ".join(words), "s")


def test_sheet_fields_are_read():
    mnemonic = shares.split(agekeys.new_secret(), shares=2, threshold=2)[0]
    sheet = f"Title\nKey id:  abcd-ef01-2345-6789\nPassphrase: yes\nBEGIN SHARE\n{mnemonic}\nEND SHARE\n"
    parsed = shares.parse_share(sheet, "sheet")
    assert parsed.key_id == "abcd-ef01-2345-6789" and parsed.passphrase is True
    numbered = "\n".join(f"{i}. {w}" for i, w in enumerate(mnemonic.split(), 1))
    assert shares.parse_share(numbered, "n").mnemonic == mnemonic


@pytest.mark.parametrize(("n", "m"), [(5, 6), (1, 0), (17, 2), (3, 1)])
def test_impossible_splits_are_refused(n, m):
    with pytest.raises(ShareError):
        shares.split(agekeys.new_secret(), shares=n, threshold=m)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_share_parser_never_crashes_beyond_share_errors(text):
    with contextlib.suppress(ShareError):
        shares.parse_share(text, "fuzz")
