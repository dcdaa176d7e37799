"""The browser opener with 100,000 items: load and decrypt within 5 s, search within 300 ms a
keystroke, in Chromium on this machine (the issue's budget). The measured times are printed."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealbox.breakglass import document, package
from sealbox.breakglass.opener_html import opener_sha256
from sealbox.crypto import agekeys, shares, sshsig
from sealbox.items import Item, Version
from sealbox.keys.ceremony import render_sheet
from tests.e2e.test_opener_browser import browser, page  # noqa: F401 - the fixtures

ITEMS = 100_000
LOAD_BUDGET_S = 5.0
KEYSTROKE_BUDGET_MS = 300.0


def _items():
    for n in range(ITEMS):
        yield Item(
            id=f"cred-{n:06d}",
            type="credential" if n % 5 else "ssh_key",
            name=f"{['db', 'web', 'app', 'proxy'][n % 4]}{n} admin",
            secret={"password": f"pw-{n:06d}-{'x' * 14}"},
            host=f"host{n}.dc{n % 7}.corp.example",
            url=f"https://host{n}.corp.example/login" if n % 3 == 0 else None,
            username=["root", "admin", "svc_backup"][n % 3],
            tags=["prod" if n % 2 else "test", f"team{n % 13}"],
            updated="2026-01-01T00:00:00Z",
            source="vault",
            history=[Version("2025-06-01T00:00:00Z", {"password": f"old-{n:06d}"})],
        )


def _make(tmp_path: Path) -> tuple[Path, list[Path]]:
    secret = agekeys.new_secret()
    identity = agekeys.identity_from_secret(secret)
    recipient = agekeys.recipient_of(identity)
    words = shares.split(secret, shares=3, threshold=2)
    signer = Ed25519PrivateKey.generate()
    keys = [{"id": agekeys.key_id(recipient), "recipient": recipient, "role": "master"}]
    plaintext, counts = document.encode(
        _items(),
        appliance="pam-big",
        created="2026-01-02T00:00:00Z",
        keys=keys,
        sealbox_version="0.1.0",
    )
    name = package.backup_name("pam-big", "20260102T000000Z")
    sealed = package.seal(
        agekeys.encrypt(plaintext, [recipient]),
        name=name,
        appliance="pam-big",
        created="2026-01-02T00:00:00Z",
        keys=keys,
        counts=counts,
        signer=signer,
        sealbox_version="0.1.0",
    )
    backup = tmp_path / name
    backup.write_bytes(bytes(sealed.ciphertext))
    backup.with_name(name + ".sig").write_text(sealed.signature)
    backup.with_name(name + ".manifest.json").write_bytes(sealed.manifest)
    sheets = []
    for number, mnemonic in enumerate(words[:2], 1):
        sheet = tmp_path / f"share-{number:02d}.txt"
        sheet.write_text(
            render_sheet(
                number=number,
                total=3,
                threshold=2,
                mnemonic=mnemonic,
                key_id=keys[0]["id"],
                recipient=recipient,
                created="2026-01-01T00:00:00Z",
                appliance="pam-big",
                signers=[sshsig.public_key_line(signer.public_key())],
                passphrase=False,
                opener_sha256=opener_sha256(),
            )
        )
        sheets.append(sheet)
    return backup, sheets


def test_100k_items_load_within_5_s_and_search_within_300_ms_a_keystroke(page, tmp_path):  # noqa: F811
    backup, sheets = _make(tmp_path)
    page.set_input_files(
        "#files",
        [
            backup,
            backup.with_name(backup.name + ".sig"),
            backup.with_name(backup.name + ".manifest.json"),
            *sheets,
        ],
    )
    page.wait_for_function(
        "() => document.querySelectorAll('.share-status.ok').length === 2"
        " && document.querySelector('#files-status').textContent.includes('manifest (.age.manifest.json): loaded')"
    )
    started = time.perf_counter()
    page.click("#open")
    page.wait_for_selector("#vault:not([hidden])", timeout=60_000)
    load = time.perf_counter() - started
    assert "100000 items" in page.inner_text("#summary")

    keystrokes = page.evaluate(
        """async (term) => {
             const box = document.querySelector("#search");
             const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
             const times = [];
             box.value = "";
             for (const ch of term) {
               const t0 = performance.now();
               box.value += ch;
               box.dispatchEvent(new Event("input"));
               await frame();  // the results are on screen
               times.push(performance.now() - t0);
             }
             return {times, count: document.querySelector("#count").textContent};
           }""",
        "host9999",
    )
    worst = max(keystrokes["times"])
    print(
        f"\n100k items: {backup.stat().st_size / 1e6:.1f} MB backup; load+verify+decrypt+index"
        f" {load:.2f} s (budget {LOAD_BUDGET_S} s); search per keystroke"
        f" {', '.join(f'{t:.0f}' for t in keystrokes['times'])} ms, worst {worst:.0f} ms"
        f" (budget {KEYSTROKE_BUDGET_MS:.0f} ms)"
    )
    assert keystrokes["count"].startswith("11 match(es)")  # host9999 and host99990..99999
    assert load <= LOAD_BUDGET_S
    assert worst <= KEYSTROKE_BUDGET_MS
