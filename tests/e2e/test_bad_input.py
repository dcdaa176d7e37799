"""Bad input gets one clear line and a documented exit code, and loses nothing."""

from __future__ import annotations

import os
import shutil

import pytest

from sealbox.crypto import agekeys


@pytest.fixture
def backed_up(appliance, sealbox):
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    return appliance, appliance.backups()[0]


def _one_line_error(result, code, text):
    assert result.code == code, (result.code, result.err)
    lines = [line for line in result.err.splitlines() if line.startswith("sealbox: error:")]
    assert len(lines) == 1 and text in lines[0], result.err
    assert "Traceback" not in result.err


def test_too_few_shares(backed_up, sealbox):
    appliance, backup = backed_up
    _one_line_error(
        sealbox("breakglass", "open", backup, *appliance.share_args(1, 2), "list"),
        4,
        "2 share(s) given, this key needs 3",
    )


def test_duplicate_share(backed_up, sealbox):
    appliance, backup = backed_up
    _one_line_error(
        sealbox("breakglass", "open", backup, *appliance.share_args(1, 1, 2), "list"),
        4,
        "is the same share as",
    )


def test_mistyped_share(backed_up, sealbox, tmp_path):
    appliance, backup = backed_up
    sheet = appliance.shares[0].read_text()
    start = sheet.index("BEGIN SHARE") + len("BEGIN SHARE\n")
    words = sheet[start:].split()
    typo = tmp_path / "typo.txt"
    typo.write_text(sheet[:start] + sheet[start:].replace(words[3], words[3] + "q", 1))
    result = sealbox(
        "breakglass", "open", backup, "--share", typo, *appliance.share_args(2, 3), "list"
    )
    _one_line_error(result, 4, "word 4")


def test_foreign_share(backed_up, sealbox, tmp_path):
    appliance, backup = backed_up
    other = tmp_path / "other"
    other.mkdir()
    foreign = sealbox(
        "keys",
        "ceremony",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--out",
        other / "s",
        "--config",
        appliance.config,
    )
    assert foreign.code == 0
    result = sealbox(
        "breakglass",
        "open",
        backup,
        "--share",
        other / "s" / "share-01.txt",
        *appliance.share_args(2, 3),
        "list",
    )
    _one_line_error(result, 4, "different ceremonies")


def test_wrong_identity(backed_up, sealbox, tmp_path):
    _, backup = backed_up
    identity = tmp_path / "id.txt"
    identity.write_text(agekeys.identity_from_secret(agekeys.new_secret()) + "\n")
    _one_line_error(
        sealbox(
            "breakglass",
            "open",
            backup,
            "--identity",
            identity,
            *backed_up[0].signer_args(),
            "list",
        ),
        4,
        "was made for key",
    )


def test_identity_and_shares_are_exclusive(backed_up, sealbox, tmp_path):
    _appliance, backup = backed_up
    _one_line_error(sealbox("breakglass", "open", backup, "list"), 4, "either --identity")


def test_truncated_file(backed_up, sealbox, tmp_path):
    appliance, backup = backed_up
    copy = tmp_path / backup.name
    for suffix in ("", ".sig", ".manifest.json"):
        shutil.copy(str(backup) + suffix, str(copy) + suffix)
    data = copy.read_bytes()
    copy.write_bytes(data[: len(data) // 2])
    _one_line_error(sealbox("breakglass", "verify", copy), 5, "signature does not match")
    result = sealbox(
        "breakglass", "open", copy, *appliance.share_args(1, 2, 3), "--ignore-signature", "list"
    )
    _one_line_error(result, 5, "truncated")


def test_tampered_file_and_missing_signature(backed_up, sealbox, tmp_path):
    appliance, backup = backed_up
    copy = tmp_path / backup.name
    for suffix in ("", ".manifest.json"):
        shutil.copy(str(backup) + suffix, str(copy) + suffix)
    _one_line_error(
        sealbox("breakglass", "open", copy, *appliance.share_args(1, 2, 3), "list"),
        5,
        "signature file (.sig) is missing",
    )
    shutil.copy(str(backup) + ".sig", str(copy) + ".sig")
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x40
    copy.write_bytes(bytes(data))
    _one_line_error(
        sealbox("breakglass", "open", copy, *appliance.share_args(1, 2, 3), "list"),
        5,
        "signature does not match",
    )


def test_bad_signature_from_another_appliance(backed_up, sealbox, tmp_path):
    _appliance, backup = backed_up
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sealbox.crypto import sshsig

    other = sshsig.public_key_line(Ed25519PrivateKey.generate().public_key())
    _one_line_error(
        sealbox("breakglass", "verify", backup, "--signer", other),
        5,
        "not by a key pinned by",
    )


def test_unreachable_source_database_leaves_no_file(backed_up, sealbox):
    appliance, _ = backed_up
    before = sorted(os.listdir(appliance.remote))
    text = appliance.config.read_text()
    start = text.index('url = "sqlite')
    end = text.index("\n", start)
    appliance.config.write_text(
        text[:start] + 'url = "postgresql+psycopg://postgres@127.0.0.1:1/vault"' + text[end:]
    )
    _one_line_error(sealbox("backup", "secrets", "--config", appliance.config), 6, "source 'vault'")
    assert sorted(os.listdir(appliance.remote)) == before


def test_invalid_config(appliance, sealbox):
    appliance.config.write_text(
        appliance.config.read_text().replace('name = "demo-pam"', 'name = "a/b"')
    )
    _one_line_error(sealbox("backup", "secrets", "--config", appliance.config), 3, "appliance.name")
    check = sealbox("config", "check", "--config", appliance.config)
    assert check.code == 3 and "appliance.name" in check.out


def test_missing_config(sealbox, tmp_path):
    _one_line_error(
        sealbox("backup", "secrets", "--config", tmp_path / "none.toml"), 3, "not found"
    )


def test_unwritable_destination(backed_up, sealbox):
    """A destination that refuses writes (here a file where a directory should be)."""
    appliance, _ = backed_up
    before = {p.name: p.read_bytes() for p in appliance.remote.iterdir()}
    text = appliance.config.read_text()
    blocker = appliance.root / "blocker"
    blocker.write_text("not a directory")
    appliance.config.write_text(text.replace(f"file://{appliance.remote}", f"file://{blocker}/sub"))
    result = sealbox("backup", "secrets", "--config", appliance.config)
    assert result.code == 7, result.err
    assert "Traceback" not in result.err
    assert {p.name: p.read_bytes() for p in appliance.remote.iterdir()} == before


def test_destination_on_appliance_refused_without_override(appliance, sealbox):
    appliance.config.write_text(
        appliance.config.read_text().replace("allow_on_appliance = true", "")
    )
    _one_line_error(
        sealbox("backup", "secrets", "--config", appliance.config), 9, "same filesystem"
    )
    assert appliance.backups() == []


def test_no_master_key(tmp_path, sealbox):
    from sealbox.demo import vault
    from sealbox.demo.run import _config_text

    vault.create_vault(tmp_path / "appliance" / "vault.db", per_type=1)
    (tmp_path / "remote").mkdir()
    config = tmp_path / "sealbox.toml"
    config.write_text(_config_text(tmp_path))
    _one_line_error(sealbox("backup", "secrets", "--config", config), 4, "no master key")


def test_missing_backup_file(sealbox, tmp_path):
    _one_line_error(
        sealbox("breakglass", "verify", tmp_path / "nope.age"), 8, "no such backup file"
    )


def test_unknown_item(backed_up, sealbox):
    appliance, backup = backed_up
    _one_line_error(
        sealbox("breakglass", "open", backup, *appliance.share_args(1, 2, 3), "show", "nope"),
        8,
        "no item with id",
    )


def test_debug_shows_traceback(sealbox, tmp_path):
    with pytest.raises(Exception, match="not found"):
        sealbox("--debug", "backup", "secrets", "--config", tmp_path / "none.toml")


def test_sheet_signer_pins_the_appliance_key(backed_up, sealbox, tmp_path):
    """The custodians' sheets name the appliance key; a backup signed by another key is refused."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sealbox.crypto import sshsig

    appliance, backup = backed_up
    other = sshsig.public_key_line(Ed25519PrivateKey.generate().public_key())
    forged_sheets = []
    for n in (1, 2, 3):
        text = appliance.shares[n - 1].read_text()
        start = text.index("Signer:")
        end = text.index("\n", start)
        sheet = tmp_path / f"s{n}.txt"
        sheet.write_text(text[:start] + f"Signer:     {other}" + text[end:])
        forged_sheets += ["--share", str(sheet)]
    _one_line_error(
        sealbox("breakglass", "open", backup, *forged_sheets, "list"),
        5,
        "not by a key pinned by",
    )
    assert (
        sealbox("breakglass", "open", backup, *forged_sheets, "--ignore-signature", "list").code
        == 0
    )
