"""Review finding: ``sheet_signers`` leaves out sheets that name no signer, so when the other
custodians bring bare words (typed from the paper, as format.md §2 allows), one altered sheet
naming the forger is the only pin, and the forged backup opens as verified."""

from __future__ import annotations

import re

from sealbox.crypto import sshsig


def test_one_altered_sheet_beside_bare_words_does_not_pin_the_forger(
    appliance,
    sealbox,
    forged,
    tmp_path,
):
    _, fake, key = forged
    altered = tmp_path / "share-02.txt"
    altered.write_text(
        re.sub(
            r"(?m)^Signer: .*$",
            "Signer:     " + sshsig.public_key_line(key.public_key()),
            appliance.shares[1].read_text(),
        )
    )
    args = ["--share", str(altered)]
    for n in (1, 3):  # the honest custodians typed only their words
        words = appliance.shares[n - 1].read_text().split("BEGIN SHARE")[1].split("END SHARE")[0]
        bare = tmp_path / f"words-{n}.txt"
        bare.write_text(words)
        args += ["--share", str(bare)]
    result = sealbox("breakglass", "open", fake, *args, "show", "cred-00001", "--reveal")
    assert "attacker" not in result.out, result.out
    assert result.code != 0
    assert result.code == 4 and "only 1 of 3 sheets name the appliance signer" in result.err
    # The custodians settle it with the key printed on their own sheets: the forgery is refused,
    # the real backup opens.
    real = appliance.backups()[0]
    signer = appliance.signer_args()
    refused = sealbox("breakglass", "open", fake, *args, *signer, "list")
    assert refused.code == 5 and "not by a key pinned by --signer" in refused.err
    opened = sealbox("breakglass", "open", real, *args, *signer, "list")
    assert opened.code == 0, opened.err
