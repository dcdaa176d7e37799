"""The dashboard in a real browser: Playwright driving Debian's Chromium against a real daemon.

Screenshots go to ``$SEALBOX_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the checkout).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from sealbox.dashboard import charts
from tests.conftest import IN_CI
from tests.daemons import DaemonProcess, daemon_config, kinds_config
from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("SEALBOX_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)
PASSWORD, VIEWER_PASSWORD = "correct horse battery staple", "viewer password 123"


def test_charts_escape_and_count_points():
    svg = charts.line_chart(
        {"<script>": [(1.0, 2.0), (2.0, 3.0)], "system": [(1.5, 1.0)]}, title="a & b"
    )
    assert 'data-points="3"' in svg and "<script>" not in svg and "a &amp; b" in svg
    assert "no data yet" in charts.line_chart({}, title="empty")
    short = charts.capacity_bar(10, 100, 150, title="t")
    assert "cap-short" in short and "SHORT" in short
    assert "cap-ok" in charts.capacity_bar(10, 200, 150, title="t")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (dev extras)")
        pytest.skip("playwright is not installed (dev extras)")
    if not Path(CHROMIUM).exists():
        reason = "Debian's chromium is not installed (scripts/install-tools.sh installs it as root)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def dashboard(tmp_path):
    hasher = PasswordHasher()
    big = tmp_path / "var" / "etc" / "big.bin"
    body = (
        kinds_config(tmp_path, schedule="0 0 1 1 *")
        + f"""
[[daemon.users]]
name = "alice"
password_hash = "{hasher.hash(PASSWORD)}"
role = "operator"
[[daemon.users]]
name = "bob"
password_hash = "{hasher.hash(VIEWER_PASSWORD)}"
"""
    )
    port = free_port()
    config = daemon_config(tmp_path, port, body)
    big.write_bytes(os.urandom(64 << 20))  # a system backup that takes a moment to watch
    daemon = DaemonProcess(config, port)
    daemon.wait_for(
        lambda: len([r for r in daemon.history() if r["result"] != "running"]) >= 4,
        120,
        "the catch-up runs",
    )
    yield daemon
    daemon.stop()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def _login(page, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/")
    assert "/login" in page.url
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_dashboard_in_a_browser(browser, dashboard):
    base = dashboard.base
    anonymous = browser.new_context()
    page = anonymous.new_page()
    page.goto(f"{base}/history")
    assert page.url.startswith(f"{base}/login")  # no page without a login
    refused = anonymous.request.post(f"{base}/run/system", form={"csrf": "x"})
    assert refused.status == 401
    _login(page, base, "alice", "wrong password")
    assert "wrong name or password" in page.inner_text("#login-error")
    _shot(page, "login-refused")
    anonymous.close()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _login(page, base, "alice", PASSWORD)
    page.wait_for_selector("#card-system")
    for kind in ("secrets", "system", "recordings"):
        assert page.is_visible(f"#card-{kind}")
    state = page.inner_text("#card-system .state")
    assert "ok" in state, (state, [r.get("error") for r in dashboard.history(kind="system")])
    assert "no-such-recordings" in page.inner_text("#card-recordings")  # its error is shown
    assert page.inner_text("#key")  # the master key card
    assert page.inner_text("#card-system .proven") == "never drilled"
    assert page.locator("#card-secrets .proven").count() == 0  # secrets have no restore drill
    cookie = next(c for c in context.cookies() if c["name"] == "sealbox_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    _shot(page, "overview")

    page.goto(f"{base}/history?kind=system")
    before = int(page.get_attribute("#bytes", "data-points"))
    rows_before = page.locator("#runs tr[data-kind=system]").count()

    page.goto(f"{base}/")
    page.click("#card-system button[type=submit]")  # Run now
    page.wait_for_url(re.compile(r"started=system"))
    page.wait_for_selector("#card-system .progress.running", timeout=30_000)
    assert "running for" in page.inner_text("#card-system .progress")
    _shot(page, "run-in-progress")
    page.wait_for_url(re.compile(r"done=system"), timeout=120_000)
    _shot(page, "run-finished")

    page.goto(f"{base}/history?kind=system")
    manual = page.locator("#runs tr[data-kind=system][data-trigger=manual]")
    assert manual.count() == 1 and "success" in manual.inner_text()
    assert page.locator("#runs tr[data-kind=system]").count() == rows_before + 1
    assert int(page.get_attribute("#bytes", "data-points")) == before + 1  # the chart grew
    _shot(page, "history")

    page.goto(f"{base}/history?result=failed")
    assert page.locator("#runs tr[data-kind=recordings]").count() >= 1
    assert page.locator("#runs tr[data-kind=system]").count() == 0

    page.goto(f"{base}/snapshots?kind=system")
    headers = page.locator("#snapshots th").all_inner_texts()
    assert headers == ["time", "id", "size", "files", "verified", "copied", "drilled", "held"]
    first = page.locator("#snapshots tr[data-id]").first
    assert "yes" in first.inner_text() and first.locator("td.drilled").inner_text() == "-"
    _shot(page, "snapshots")

    page.goto(f"{base}/destinations")
    assert "reachable" in page.inner_text("#dest-offsite")
    assert page.locator("#dest-offsite svg.chart").count() == 3
    assert page.locator("#dest-offsite table.probes tr.ok").count() >= 1  # the last probes
    _shot(page, "destinations")
    page.goto(f"{base}/alerts")
    assert page.is_visible("#deliveries")
    _shot(page, "alerts")

    # A refused run (here: an unknown job) comes back as a notice on the overview, escaped.
    csrf = page.get_attribute("form.logout input[name=csrf]", "value")
    page.evaluate(
        """csrf => { const f = document.createElement('form'); f.method = 'post';
        f.action = '/run/<b>nope'; const i = document.createElement('input');
        i.name = 'csrf'; i.value = csrf; f.appendChild(i); document.body.appendChild(f);
        f.submit(); }""",
        csrf,
    )
    page.wait_for_selector("#notice")
    assert "no job '<b>nope'" in page.inner_text("#notice")  # shown as text, not markup

    forged = context.request.post(f"{base}/run/system", form={"csrf": "forged"})
    assert forged.status == 403 and "CSRF" in forged.text()
    missing = context.request.post(f"{base}/run/system")
    assert missing.status == 403
    assert errors == []
    context.close()

    viewer = browser.new_context()
    page = viewer.new_page()
    _login(page, base, "bob", VIEWER_PASSWORD)
    page.wait_for_selector("#card-system")
    assert page.locator("#card-system button").count() == 0  # read-only: no Run now
    csrf = page.get_attribute("form.logout input[name=csrf]", "value")
    as_viewer = viewer.request.post(f"{base}/run/system", form={"csrf": csrf})
    assert as_viewer.status == 403 and "read-only" in as_viewer.text()
    viewer.close()


def test_logins_are_throttled(browser, dashboard):
    context = browser.new_context()
    page = context.new_page()
    for _ in range(5):
        _login(page, dashboard.base, "alice", "nope")
    _login(page, dashboard.base, "alice", PASSWORD)  # even the right password now waits
    assert "too many failed logins" in page.inner_text("#login-error")
    context.close()
