"""The browser opener in Debian's Chromium, driven by Playwright through its page and its API,
on the same backups as the Python opener, compared with what the Python opener shows."""

from __future__ import annotations

import base64
import csv
import http.server
import io
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import shamir_mnemonic

from sealbox.breakglass import export as py_export
from sealbox.breakglass import opener, opener_html
from sealbox.keys.material import from_share_files, pinned_trust
from tests.conftest import IN_CI, make_appliance, require_tool
from tests.e2e.opener_support import forge_backup

CHROMIUM = "/usr/bin/chromium"
VECTORS = Path(__file__).parents[2] / "opener" / "node_modules" / "slip39" / "test" / "vectors.json"


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (dev extras)")
    if not Path(CHROMIUM).exists():
        _missing("Debian's chromium is not installed (scripts/install-tools.sh installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path):
    """The opener as `sealbox breakglass opener --out` writes it, opened from a file:// URL."""
    out = tmp_path / "opener.html"
    opener_html.write_opener(out)
    context = browser.new_context(accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(out.as_uri())
    page.wait_for_function("() => window.sealboxOpener !== undefined")
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def backup(appliance, sealbox) -> Path:
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    return appliance.backups()[0]


_OPEN = """async ([b64, signature, manifest, shares, options]) => {
  const backup = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  try {
    return {ok: await window.sealboxOpener.openDetailed({backup, signature, manifest, shares, ...options})};
  } catch (e) {
    return {error: e.message, isError: e instanceof Error};
  }
}"""


def js_open(page, backup: Path, shares: list[Path], **options: Any) -> dict[str, Any]:
    """Open with window.sealboxOpener, the sheets named by their paths (as the CLI names them)."""
    side = {s: backup.with_name(backup.name + s) for s in (".sig", ".manifest.json")}
    texts = [{"name": str(p), "text": p.read_text()} for p in shares]
    result: dict[str, Any] = page.evaluate(
        _OPEN,
        [
            base64.b64encode(backup.read_bytes()).decode(),
            side[".sig"].read_text() if side[".sig"].exists() else None,
            side[".manifest.json"].read_text() if side[".manifest.json"].exists() else None,
            texts,
            {"name": backup.name, **options},
        ],
    )
    return result


def py_open(backup: Path, shares: list[Path]) -> opener.Opened:
    files = opener.load_files(backup)
    unlocked = from_share_files(shares, None)
    trust = pinned_trust(unlocked, [], None, False)
    return opener.open_backup(files, unlocked, trust=trust, ignore_signature=False)


def cli_error(sealbox, backup: Path, shares: list[Path], *extra: str) -> str:
    args: list[str] = []
    for s in shares:
        args += ["--share", str(s)]
    result = sealbox("breakglass", "open", backup, *args, *extra, "list")
    assert result.code != 0
    (line,) = [x for x in result.err.splitlines() if x.startswith("sealbox: error: ")]
    return line.removeprefix("sealbox: error: ")


def test_slip39_matches_the_shamir_mnemonic_vectors(page):
    """The npm slip39 package, as bundled (PBKDF2 and HMAC from @noble), against the reference
    implementation's test vectors, and against the reference implementation itself."""
    if not VECTORS.exists():
        _missing("opener/node_modules is missing (make opener-deps)")
    vectors = json.loads(VECTORS.read_text())
    assert len(vectors) >= 40
    results = page.evaluate(
        """(vectors) => vectors.map(([, mnemonics]) => {
             try { return window.sealboxOpener.combine(mnemonics, "TREZOR"); }
             catch (e) { return ""; }
           })""",
        vectors,
    )
    for (description, mnemonics, secret, *_), got in zip(vectors, results, strict=True):
        assert got == secret, description
        try:
            reference = shamir_mnemonic.combine_mnemonics(mnemonics, b"TREZOR").hex()
        except shamir_mnemonic.MnemonicError:
            reference = ""
        assert reference == secret, description


def test_the_api_opens_the_document_the_python_opener_opens(page, appliance, backup):
    shares = appliance.shares[:3]
    result = js_open(page, backup, [shares[2], shares[0], shares[1]])
    assert "ok" in result, result
    got = result["ok"]
    opened = py_open(backup, shares)
    doc = opened.document
    assert got["document"]["appliance"] == doc.appliance
    assert got["document"]["created"] == doc.created
    assert got["document"]["items"] == list(doc.iter_items())
    assert got["document"]["total"] == len(doc) == 90
    assert got["pinned"] and got["warnings"] == opened.warnings == []
    assert got["keyId"] == from_share_files(shares, None).key_ids[0]
    assert [s["index"] for s in got["shares"]] == [3, 1, 2]
    plain = page.evaluate(
        """async ([b64, sig, man, shares]) => {
             const backup = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             return await window.sealboxOpener.open({backup, signature: sig, manifest: man, shares});
           }""",
        [
            base64.b64encode(backup.read_bytes()).decode(),
            backup.with_name(backup.name + ".sig").read_text(),
            backup.with_name(backup.name + ".manifest.json").read_text(),
            [s.read_text() for s in shares],
        ],
    )
    assert plain == got["document"]  # open() resolves to the document itself


def _mistype(sheet: Path, out: Path, position: int, word: str) -> Path:
    """A copy of a sheet with word ``position`` (1-based, inside BEGIN/END SHARE) replaced."""
    head, rest = sheet.read_text().split("BEGIN SHARE\n")
    body, tail = rest.split("END SHARE")
    words = body.split()
    words[position - 1] = word
    out.write_text(head + "BEGIN SHARE\n" + " ".join(words) + "\nEND SHARE" + tail)
    return out


def _valid_other_word(sheet: Path, position: int) -> str:
    words = sheet.read_text().split("BEGIN SHARE\n")[1].split("END SHARE")[0].split()
    return "academic" if words[position - 1] != "academic" else "acid"


def test_both_openers_refuse_the_same_bad_inputs_with_the_same_reasons(
    page, appliance, backup, sealbox, tmp_path
):
    s1, s2, s3 = appliance.shares[:3]
    other = make_appliance(tmp_path / "other", sealbox)
    forged = forge_backup(appliance, tmp_path / "forged")
    tampered = tmp_path / "tampered" / backup.name
    tampered.parent.mkdir()
    data = bytearray(backup.read_bytes())
    data[-10] ^= 1
    tampered.write_bytes(bytes(data))
    for suffix in (".sig", ".manifest.json"):
        tampered.with_name(tampered.name + suffix).write_bytes(
            backup.with_name(backup.name + suffix).read_bytes()
        )
    cases = [
        (
            "unknown word",
            backup,
            [_mistype(s1, tmp_path / "typo.txt", 7, "qwerty"), s2, s3],
            "word 7 'qwerty' is not a SLIP-39 word",
        ),
        (
            "checksum",
            backup,
            [_mistype(s1, tmp_path / "swap.txt", 9, _valid_other_word(s1, 9)), s2, s3],
            "checksum failed",
        ),
        ("too few", backup, [s1, s2], "2 share(s) given, this key needs 3"),
        ("same share twice", backup, [s1, s1, s2], "is the same share as"),
        ("another ceremony", backup, [s1, s2, other.shares[0]], "different ceremonies"),
        ("another appliance's sheets", backup, other.shares[:3], "signed by another appliance"),
        ("forged", forged, [s1, s2, s3], "not by a key pinned by the custodian sheets"),
        ("tampered", tampered, [s1, s2, s3], "signature does not match: the data was modified"),
    ]
    for what, file, shares, reason in cases:
        js = js_open(page, file, shares)
        assert js.get("isError") and reason in js["error"], (what, js)
        py = cli_error(sealbox, file, shares)
        assert reason in py, (what, py)
        # The same sentence, up to the hint that names each opener's own override (and the
        # page's pointer to the mistyped word, after the same words).
        assert js["error"].startswith(py.split(" (refusing")[0]), what


def test_a_valid_but_wrong_word_is_pinned_to_its_place(page, appliance):
    """RS1024 catches a wrong word that is a valid word too; the page says which one."""
    words = appliance.shares[0].read_text().split("BEGIN SHARE\n")[1].split("END SHARE")[0].split()
    for position in (1, 4, 17, len(words)):
        typo = [*words]
        typo[position - 1] = "academic" if words[position - 1] != "academic" else "acid"
        found = page.evaluate(
            """(text) => { try { window.sealboxOpener.parseShare(text); return null; }
                           catch (e) { return [e.message, e.position, e.suggestion]; } }""",
            " ".join(typo),
        )
        assert found[0].startswith("share: invalid share (checksum failed")
        assert found[1:] == [position, words[position - 1]], (position, found)
        assert f"did the sheet say '{words[position - 1]}'?" in found[0]
    swapped = [*words]
    swapped[5], swapped[6] = swapped[6], swapped[5]
    if swapped != words:  # two words out of order: no single word to blame
        found = page.evaluate(
            """(text) => { try { window.sealboxOpener.parseShare(text); return null; }
                           catch (e) { return [e.message, e.position ?? null]; } }""",
            " ".join(swapped),
        )
        assert found[1] is None and "checksum failed" in found[0]


def test_bare_words_pin_nothing_and_open_only_when_unverified_is_chosen(
    page, appliance, backup, tmp_path
):
    bare = []
    for n, sheet in enumerate(appliance.shares[:3], 1):
        words = sheet.read_text().split("BEGIN SHARE\n")[1].split("END SHARE")[0]
        bare.append(tmp_path / f"bare-{n}.txt")
        bare[-1].write_text(words)
    refused = js_open(page, backup, bare)
    assert "nothing pins the appliance's signing key" in refused["error"]
    opened = js_open(page, backup, bare, unverified=True)["ok"]
    assert not opened["pinned"] and opened["document"]["total"] == 90
    assert any("UNVERIFIED" in w for w in opened["warnings"])
    signer = appliance.shares[0].read_text().split("Signer:")[1].splitlines()[0].strip()
    pinned = js_open(page, backup, bare, signers=[signer])["ok"]
    assert pinned["pinned"] and pinned["warnings"] == []


def _load_backup(page, backup: Path) -> None:
    page.set_input_files(
        "#files",
        [
            backup,
            backup.with_name(backup.name + ".sig"),
            backup.with_name(backup.name + ".manifest.json"),
        ],
    )
    page.wait_for_function(
        "() => document.querySelector('#files-status').textContent.includes('manifest (.age.manifest.json): loaded')"
    )


def test_the_page_opens_searches_reveals_copies_exports_and_writes_a_receipt(
    page, appliance, backup, sealbox, tmp_path
):
    keepassxc = require_tool("keepassxc-cli")
    _load_backup(page, backup)
    # Share 1 typed with a mistyped word: marked at the word, then corrected.
    words = appliance.shares[0].read_text().split("BEGIN SHARE\n")[1].split("END SHARE")[0].split()
    typo = [*words]
    typo[4] = "zebraa"
    area = page.locator(".share textarea").nth(0)
    area.fill(" ".join(typo))
    status = page.locator(".share-status").nth(0)
    assert "word 5 'zebraa' is not a SLIP-39 word" in status.inner_text()
    assert page.locator(".share").nth(0).locator(".word.bad").inner_text() == "5. zebraa"
    typo[4] = "academic" if words[4] != "academic" else "acid"  # a word, but the wrong one
    area.fill(" ".join(typo))
    assert "checksum failed" in status.inner_text()
    assert page.locator(".share").nth(0).locator(".word.bad").inner_text() == f"5. {typo[4]}"
    area.fill(" ".join(words))
    assert status.inner_text().startswith("ok: share #1")
    page.set_input_files("#share-files", appliance.shares[1:3])
    page.wait_for_function("() => document.querySelectorAll('.share-status.ok').length === 3")
    page.click("#open")
    # Typed words carry no Signer: line, the two sheet files do: that is a dispute (one sheet
    # must not decide whom the others trust), settled by the signer printed on the sheets.
    page.wait_for_selector("#error:not([hidden])")
    assert "only 2 of 3 sheets name the appliance signer" in page.inner_text("#error")
    signer = appliance.shares[0].read_text().split("Signer:")[1].splitlines()[0].strip()
    page.fill("#signer", signer)
    page.click("#open")
    page.wait_for_selector("#vault:not([hidden])")
    assert "signed by SHA256:" in page.inner_text("#summary") and "90 items" in page.inner_text(
        "#summary"
    )

    opened = py_open(backup, appliance.shares[:3])
    expected = opened.document.search("admin")
    page.fill("#search", "admin")
    assert page.inner_text("#count").startswith(f"{len(expected)} match(es)")
    assert page.locator("#results tbody tr").count() == len(expected)
    page.select_option("#field", "username")
    assert page.inner_text("#count").startswith(
        f"{len(opened.document.search('admin', 'username'))} match(es)"
    )
    page.select_option("#field", "all")

    first = expected[0]["id"]
    item = opened.document.find(first)
    assert item is not None
    password = item["secret"]["password"]
    page.click(f"#results tbody tr[data-id='{first}']")
    row = page.locator("#detail tr[data-secret='password']")
    assert row.locator("code").inner_text() == "••••••••"
    assert password not in page.content()  # hidden until revealed
    row.locator(".reveal").click()
    assert row.locator("code").inner_text() == password
    assert page.is_visible("#receipt-banner")

    with page.expect_download() as json_download:
        page.click("#export-json")
    exported = json.loads(Path(json_download.value.path()).read_text())
    assert exported["items"] == list(opened.document.iter_items())
    with page.expect_download() as csv_download:
        page.click("#export-csv")
    assert Path(csv_download.value.path()).read_bytes() == py_export.to_csv(opened.document)

    page.fill("#kdbx-password", "kdbx pass 1")
    page.fill("#kdbx-confirm", "kdbx pass 1")
    with page.expect_download(timeout=60_000) as kdbx_download:
        page.click("#export-kdbx")
    kdbx = tmp_path / "vault.kdbx"
    Path(kdbx_download.value.path()).replace(kdbx)
    dump = subprocess.run(
        [keepassxc, "export", "--format", "csv", str(kdbx)],
        input="kdbx pass 1\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = list(csv.DictReader(io.StringIO(dump)))
    assert len(rows) == 90
    by_title = {r["Title"]: r for r in rows}
    assert by_title[item["name"]]["Password"] == password
    assert by_title[item["name"]]["Username"] == (item.get("username") or "")
    wrong = subprocess.run(
        [keepassxc, "export", "--format", "csv", str(kdbx)],
        input="not it\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode != 0

    page.fill("#machine", "custodian laptop 7")
    with page.expect_download() as receipt_download:
        page.click("#receipt-download")
    receipt_path = tmp_path / "receipt.json"
    Path(receipt_download.value.path()).replace(receipt_path)
    receipt = json.loads(receipt_path.read_text())
    assert receipt["opener"] == "browser" and receipt["machine"].startswith("custodian laptop 7; ")
    assert [e["action"] for e in receipt["events"]] == ["reveal", "export", "export", "export"]
    assert [s["index"] for s in receipt["shares"]] == [1, 2, 3]
    text = receipt_path.read_text()
    assert not any(" ".join(words[i : i + 2]) in text for i in range(len(words) - 1))
    imported = sealbox(
        "breakglass", "receipt", "import", receipt_path, "--config", appliance.config, "--json"
    )
    assert imported.code == 0, imported.err
    to_rotate = json.loads(imported.out)["to_rotate"]
    assert len(to_rotate) == 90  # one revealed, then all exported
    assert {t["how"] for t in to_rotate if t["id"] == first} == {"reveal"}

    # Copy: on the clipboard, then cleared 30 s later (a fake clock from here on).
    page.clock.install()
    row.locator(".copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == password
    assert "cleared in 30 s" in page.inner_text("#clipboard")
    page.clock.run_for(31_000)
    for _ in range(50):
        if page.evaluate("document.querySelector('#clipboard').textContent") == "clipboard cleared":
            break
        time.sleep(0.1)
    assert page.evaluate("navigator.clipboard.readText()") == ""
    assert page.evaluate("window.sealboxOpener.receipt().events.at(-1).action") == "copy"


def test_the_page_says_why_it_refuses_a_wrong_passphrase_and_a_forged_backup(
    page, appliance, sealbox, tmp_path
):
    pw = tmp_path / "pass"
    pw.write_text("river stone lamp\n")
    made = sealbox(
        "keys",
        "ceremony",
        "--shares",
        "3",
        "--threshold",
        "2",
        "--out",
        tmp_path / "pp",
        "--passphrase-file",
        pw,
        "--config",
        appliance.config,
    )
    assert made.code == 0, made.err
    assert sealbox("backup", "secrets", "--config", appliance.config).code == 0
    backup = appliance.backups()[0]
    _load_backup(page, backup)
    page.set_input_files(
        "#share-files", [tmp_path / "pp" / "share-01.txt", tmp_path / "pp" / "share-02.txt"]
    )
    page.wait_for_function("() => document.querySelectorAll('.share-status.ok').length === 2")
    page.click("#open")
    page.wait_for_selector("#error:not([hidden])")
    assert "made with a passphrase" in page.inner_text("#error")
    page.fill("#passphrase", "river stone lump")
    page.click("#open")
    page.wait_for_function(
        "() => document.querySelector('#error').textContent.includes('wrong passphrase')"
    )
    assert page.is_hidden("#vault")
    page.fill("#passphrase", "river stone lamp")
    page.click("#open")
    page.wait_for_selector("#vault:not([hidden])")

    other = page.context.new_page()
    other.goto(page.url)
    forged = forge_backup(
        appliance, tmp_path / "forged", recipient_from=tmp_path / "pp" / "share-01.txt"
    )
    _load_backup(other, forged)
    other.set_input_files(
        "#share-files", [tmp_path / "pp" / "share-01.txt", tmp_path / "pp" / "share-02.txt"]
    )
    other.fill("#passphrase", "river stone lamp")
    other.click("#open")
    other.wait_for_selector("#error:not([hidden])")
    assert "not by a key pinned by the custodian sheets" in other.inner_text("#error")
    assert "attacker" not in other.content()
    other.check("#unverified")
    other.fill("#passphrase", "river stone lamp")
    other.click("#open")
    other.wait_for_selector("#vault:not([hidden])")
    assert "UNVERIFIED" in other.inner_text("#summary")


def test_the_page_cannot_reach_the_network(page, tmp_path):
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/leak"
        violations = page.evaluate(
            """async (url) => {
                 const seen = [];
                 document.addEventListener("securitypolicyviolation", (e) => seen.push(e.violatedDirective));
                 let fetched = "not blocked";
                 try { await fetch(url); } catch (e) { fetched = "blocked"; }
                 const img = new Image(); img.src = url + "-img"; document.body.append(img);
                 const s = document.createElement("script"); s.src = url + "-script"; document.body.append(s);
                 await new Promise((r) => setTimeout(r, 300));
                 return {fetched, seen};
               }""",
            url,
        )
    finally:
        server.shutdown()
    assert violations["fetched"] == "blocked"
    assert {"connect-src", "img-src", "script-src-elem"} <= set(violations["seen"])
    assert hits == []
    html = opener_html.opener_bytes().decode()
    assert "connect-src 'none'" in html and "default-src 'none'" in html
    assert 'src="http' not in html and 'href="http' not in html and "<link" not in html
