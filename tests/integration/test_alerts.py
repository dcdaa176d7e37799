"""Alerts against real receivers on 127.0.0.1: SMTP (aiosmtpd, plain/STARTTLS/implicit TLS, with
login) and syslog (UDP, TCP, TLS), with a real agent going down and coming back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sealbox.alerts.channels import EmailChannel, SyslogChannel
from sealbox.alerts.events import make_event
from sealbox.alerts.notifier import Notifier, recent_deliveries
from sealbox.config.load import load_config
from sealbox.config.models import EmailAlert, SyslogAlert
from sealbox.errors import AlertDeliveryError
from tests.daemons import appliance_toml
from tests.receivers import (
    SMTPReceiver,
    SyslogReceiver,
    cef_labelled,
    closed_port,
    parse_cef,
    parse_leef,
    parse_rfc5424,
)
from tests.servers import AgentServer, free_port, self_signed


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("alert-tls"))


@pytest.fixture
def smtp(tls_pair):
    server = SMTPReceiver(*tls_pair, mode="starttls").start()
    yield server
    server.stop()


@pytest.fixture
def syslog_tcp():
    server = SyslogReceiver("tcp").start()
    yield server
    server.stop()


def _event(name="destination.unreachable", **fields):
    return make_event(name, "pam-01", destination="offsite", reason="refused", **fields)


def _email(port, ca=None, **kw):
    return EmailAlert.model_validate(
        {"host": "127.0.0.1", "port": port, "from": "sealbox@pam-01", "to": ["soc@x", "ops@x"]}
        | ({"ca_file": str(ca)} if ca else {})
        | kw
    )


def test_email_over_starttls_reaches_every_recipient(smtp, tls_pair):
    EmailChannel(_email(smtp.port, tls_pair[0])).send(_event(since="2026-11-26T08:00:00Z"))
    [msg] = smtp.wait(1)
    assert smtp.envelopes[0].rcpt_tos == ["soc@x", "ops@x"]
    assert msg["Subject"].startswith("[Sealbox pam-01] ERROR: destination offsite unreachable")
    assert msg["X-Sealbox-Event"] == "100 destination.unreachable"
    body = msg.get_body(("plain",)).get_content()
    assert "refused" in body and "Since:" in body and "What to check:" in body
    assert "What to check" in msg.get_body(("html",)).get_content()  # and an HTML alternative


def test_email_starttls_with_an_unknown_certificate_is_refused(smtp):
    with pytest.raises(AlertDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        EmailChannel(_email(smtp.port)).send(_event())  # system CAs do not know the test CA
    assert smtp.messages == []


def test_email_never_downgrades_when_starttls_is_missing():
    server = SMTPReceiver(mode="plain").start()
    try:
        with pytest.raises(AlertDeliveryError, match="does not offer STARTTLS"):
            EmailChannel(_email(server.port)).send(_event())
        EmailChannel(_email(server.port, starttls=False)).send(_event())  # explicitly plain
        assert len(server.wait(1)) == 1
    finally:
        server.stop()


def test_email_implicit_tls_with_login(tls_pair, tmp_path):
    server = SMTPReceiver(*tls_pair, mode="tls", login=("sealbox", "s3cret")).start()
    password = tmp_path / "smtp.pw"
    password.write_text("s3cret\n")
    try:
        good = _email(
            server.port,
            tls_pair[0],
            tls=True,
            starttls=False,
            username="sealbox",
            password_file=str(password),
        )
        EmailChannel(good).send(_event())
        assert len(server.wait(1)) == 1
        password.write_text("wrong")
        with pytest.raises(AlertDeliveryError, match="login refused") as caught:
            EmailChannel(good).send(_event())
        assert "wrong" not in str(caught.value) and "s3cret" not in str(caught.value)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("transport", "fmt"), [("udp", "cef"), ("tcp", "leef"), ("tls", "cef"), ("tcp", "plain")]
)
def test_syslog_transports_and_formats(transport, fmt, tls_pair):
    server = SyslogReceiver(transport, *tls_pair).start()
    try:
        config = SyslogAlert(
            host="127.0.0.1",
            port=server.port,
            transport=transport,
            format=fmt,
            ca_file=tls_pair[0] if transport == "tls" else None,
        )
        channel = SyslogChannel(config)
        channel.send(_event(consecutive_failures=2))
        channel.send(_event("destination.recovered"))
        lines = server.wait(2)
        assert len(lines) == 2 and not server.errors
        # One connection per message: the collector may see them in either order.
        parsed = {m["msgid"]: m for m in map(parse_rfc5424, lines)}
        first = parsed["destination.unreachable"]
        assert first["severity"] == 3 and first["facility"] == 4
        assert parsed["destination.recovered"]["severity"] == 5
        if fmt == "cef":
            cef = parse_cef(first["msg"])
            assert cef["signature"] == "100" and cef["ext"]["reason"] == "refused"
        elif fmt == "leef":
            leef = parse_leef(first["msg"])
            assert leef["event"] == "destination.unreachable"
            assert leef["attrs"]["consecutive_failures"] == "2"
        else:
            assert first["msg"].startswith("ERROR destination offsite unreachable")
    finally:
        server.stop()


def test_syslog_tls_refuses_an_unverified_collector(tls_pair):
    server = SyslogReceiver("tls", *tls_pair).start()
    try:
        channel = SyslogChannel(SyslogAlert(host="127.0.0.1", port=server.port, transport="tls"))
        with pytest.raises(AlertDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            channel.send(_event())
    finally:
        server.stop()


# -- the notifier -------------------------------------------------------------------------------
def _config(tmp_path: Path, alerts: str, extra: str = "") -> Path:
    path = tmp_path / "sealbox.toml"
    path.write_text(
        appliance_toml(tmp_path, tmp_path)
        + f"""
{extra}
[alerts]
{alerts}
"""
    )
    return path


def _syslog_toml(port: int, transport: str = "tcp") -> str:
    return (
        f'syslog = {{ host = "127.0.0.1", port = {port}, transport = "{transport}",'
        f' format = "cef" }}'
    )


def test_a_condition_alerts_once_reminds_later_and_recovers_once(tmp_path, syslog_tcp):
    config = load_config(_config(tmp_path, _syslog_toml(syslog_tcp.port)))
    notifier = Notifier(config)
    for _ in range(3):
        notifier.condition("destination:offsite", _event())
    assert len(syslog_tcp.wait(1)) == 1
    # A reminder is due once reminder_hours have passed since the last alert.
    state = json.loads((tmp_path / "state" / "alerts" / "conditions.json").read_text())
    state["destination:offsite"]["last_sent"] = "2000-01-01T00:00:00Z"
    (tmp_path / "state" / "alerts" / "conditions.json").write_text(json.dumps(state))
    notifier.condition("destination:offsite", _event())
    reminder = parse_cef(parse_rfc5424(syslog_tcp.wait(2)[1])["msg"])
    assert cef_labelled(reminder["ext"])["consecutive_failures"] == "4"  # counted across runs
    notifier.clear("destination:offsite", make_event("destination.recovered", "pam-01"))
    notifier.clear("destination:offsite", make_event("destination.recovered", "pam-01"))
    lines = syslog_tcp.wait(3)
    assert len(lines) == 3 and parse_rfc5424(lines[2])["msgid"] == "destination.recovered"


def test_an_undelivered_alert_is_queued_and_sent_later(tmp_path):
    port = closed_port()
    config = load_config(_config(tmp_path, _syslog_toml(port)))
    results = Notifier(config).send(_event())
    assert [r.ok for r in results] == [False]
    outbox = json.loads((tmp_path / "state" / "alerts" / "outbox.json").read_text())
    assert len(outbox) == 1
    server = SyslogReceiver("tcp", port=port).start()
    try:
        Notifier(config).flush()
        assert parse_rfc5424(server.wait(1)[0])["msgid"] == "destination.unreachable"
        assert json.loads((tmp_path / "state" / "alerts" / "outbox.json").read_text()) == []
        log = recent_deliveries(tmp_path / "state")
        assert [d["ok"] for d in log] == [True, False]  # newest first
        assert log[0]["retry"] is True
    finally:
        server.stop()


def test_a_queued_alert_older_than_retry_hours_is_dropped_and_a_younger_one_delivered(tmp_path):
    """The outbox does not grow forever: what waited longer than retry_hours is dropped (and
    logged), what is younger goes out with the next send, in one flush."""
    port = closed_port()
    config = load_config(_config(tmp_path, _syslog_toml(port) + "\nretry_hours = 2"))
    for reason in ("old-one", "young-one"):
        Notifier(config).send(
            make_event("destination.unreachable", "pam-01", destination="offsite", reason=reason)
        )
    path = tmp_path / "state" / "alerts" / "outbox.json"
    queued = json.loads(path.read_text())
    assert [q["event"]["fields"]["reason"] for q in queued] == ["old-one", "young-one"]
    queued[0]["event"]["time"] = "2000-01-01T00:00:00.000000Z"  # waited far longer than 2 hours
    path.write_text(json.dumps(queued))
    server = SyslogReceiver("tcp", port=port).start()
    try:
        Notifier(config).flush()
        (line,) = server.wait(1)
        assert "young-one" in line and "old-one" not in line
        assert json.loads(path.read_text()) == []
        time.sleep(0.3)  # nothing else arrives: the old one was dropped, not delayed
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_min_severity_filters_per_channel(tmp_path, smtp, tls_pair, syslog_tcp):
    alerts = (
        f'email = {{ host = "127.0.0.1", port = {smtp.port}, from = "s@x", to = ["o@x"],'
        f' ca_file = "{tls_pair[0]}" }}\n' + _syslog_toml(syslog_tcp.port)
    )
    config = load_config(_config(tmp_path, alerts))
    notifier = Notifier(config)
    notifier.send(make_event("backup.system.succeeded", "pam-01", destination="offsite"))
    notifier.send(_event())
    assert len(syslog_tcp.wait(2)) == 2  # the SIEM takes info and up
    assert len(smtp.wait(1)) == 1 and "unreachable" in smtp.messages[0]["Subject"]


def test_notify_test_reports_each_channel(tmp_path, sealbox, smtp, tls_pair, syslog_tcp):
    alerts = (
        f'email = [{{ host = "127.0.0.1", port = {smtp.port}, from = "s@x", to = ["o@x"],'
        f' ca_file = "{tls_pair[0]}", min_severity = "critical" }}]\n'
        f"syslog = [{_syslog_toml(syslog_tcp.port)[9:]},"
        f' {{ host = "127.0.0.1", port = {closed_port()}, transport = "tcp" }}]'
    )
    config = _config(tmp_path, alerts)
    result = sealbox("notify", "test", "--config", config)
    assert result.code == 11, result.err
    assert "email:127.0.0.1" in result.out and "delivered" in result.out
    assert "FAILED" in result.out and "Connection refused" in result.out
    assert len(smtp.wait(1)) == 1 and "test event" in smtp.messages[0]["Subject"]
    assert parse_rfc5424(syslog_tcp.wait(1)[0])["msgid"] == "notify.test"
    assert "sealbox: error: 1 of 3 channel(s) did not deliver" in result.err


def test_notify_test_without_channels_says_so(tmp_path, sealbox):
    result = sealbox("notify", "test", "--config", _config(tmp_path, ""))
    assert result.code == 3 and "no alert channel configured" in result.err


def test_a_failed_backup_alerts_and_the_next_success_recovers(tmp_path, sealbox, syslog_tcp):
    alerts = _syslog_toml(syslog_tcp.port)
    remote = tmp_path / "remote"
    remote.mkdir()
    extra = f"""
[keys]
recipients = ["age1c980te9ahls34kt99kll9jj43l85gqmj83qnrchhpcuulw2hrussuwet0j"]
[destinations.offsite]
url = "file://{remote}"
allow_on_appliance = true
[secrets]
destination = "offsite"
[[secrets.sources]]
type = "json"
path = "{tmp_path / "vault.json"}"
"""
    config = _config(tmp_path, alerts, extra)
    failed = sealbox("backup", "secrets", "--config", config)  # vault.json missing
    assert failed.code != 0
    again = sealbox("backup", "secrets", "--config", config)
    assert again.code == failed.code
    first = parse_rfc5424(syslog_tcp.wait(1)[0])
    assert first["msgid"] == "backup.secrets.failed" and first["severity"] == 3
    (tmp_path / "vault.json").write_text(
        json.dumps({"items": [{"id": "a", "type": "secret", "name": "t", "secret": {"k": "v"}}]})
    )
    ok = sealbox("backup", "secrets", "--config", config)
    assert ok.code == 0, ok.err
    lines = syslog_tcp.wait(2)
    assert len(lines) == 2  # the second failure was folded into the first alert
    recovered = parse_rfc5424(lines[1])
    assert recovered["msgid"] == "backup.secrets.succeeded" and recovered["severity"] == 5
    assert cef_labelled(parse_cef(recovered["msg"])["ext"])["consecutive_failures"] == "2"


# -- the scenario of the issue ------------------------------------------------------------------
def test_agent_down_and_back_alerts_exactly_once_each_way(tmp_path, sealbox, tls_pair):
    directory = tmp_path / "agent"
    directory.mkdir()
    cert, key = self_signed(directory)
    agent = AgentServer(directory / "root", free_port(), cert, key)
    agent.start()
    smtp = SMTPReceiver(*tls_pair, mode="starttls").start()
    siem = SyslogReceiver("tls", *tls_pair).start()
    try:
        token = directory / "token"
        token.write_text(agent.token("pam-01"))
        alerts = (
            f'email = {{ host = "127.0.0.1", port = {smtp.port}, from = "sealbox@pam-01",'
            f' to = ["soc@example.com"], ca_file = "{tls_pair[0]}" }}\n'
            f'syslog = {{ host = "127.0.0.1", port = {siem.port}, transport = "tls",'
            f' format = "leef", ca_file = "{tls_pair[0]}" }}'
        )
        extra = f"""
[keys]
recipients = ["age1c980te9ahls34kt99kll9jj43l85gqmj83qnrchhpcuulw2hrussuwet0j"]
[destinations.offsite]
url = "{agent.base}/pam-01"
token_file = "{token}"
ca_file = "{cert}"
[probes]
timeout_seconds = 10
"""
        config = _config(tmp_path, alerts, extra)
        up = sealbox("probe", "--destination", "offsite", "--config", config)
        assert up.code == 0, up.err
        assert smtp.messages == [] and siem.messages == []

        agent.stop()
        down = sealbox("probe", "--destination", "offsite", "--config", config)
        assert down.code == 7 and "UNREACHABLE" in down.out
        assert len(smtp.wait(1)) == 1 and len(siem.wait(1)) == 1
        assert "offsite unreachable" in smtp.messages[0]["Subject"]
        leef = parse_leef(parse_rfc5424(siem.messages[0])["msg"])
        assert leef["event"] == "destination.unreachable"
        assert leef["attrs"]["url"].startswith("agent+https://127.0.0.1:")
        assert token.read_text() not in siem.messages[0]
        assert token.read_text() not in smtp.messages[0].as_string()

        again = sealbox("probe", "--destination", "offsite", "--config", config)
        assert again.code == 7
        status = json.loads(sealbox("status", "--json", "--config", config).out)
        assert status["alerts"]["conditions"]["destination:offsite"]["count"] == 2
        assert status["alerts"]["probes"]["offsite"]["ok"] is False
        assert len(smtp.wait(2, seconds=1)) == 1 and len(siem.wait(2, seconds=1)) == 1

        agent.start()
        back = sealbox("probe", "--destination", "offsite", "--config", config)
        assert back.code == 0, back.err
        assert len(smtp.wait(2)) == 2 and len(siem.wait(2)) == 2
        assert "reachable again" in smtp.messages[1]["Subject"]
        recovered = parse_leef(parse_rfc5424(siem.messages[1])["msg"])
        assert recovered["event"] == "destination.recovered"
        assert recovered["attrs"]["consecutive_failures"] == "2"
        assert len(smtp.wait(3, seconds=1)) == 2 and len(siem.wait(3, seconds=1)) == 2
    finally:
        agent.stop()
        smtp.stop()
        siem.stop()


def test_a_dead_channel_never_fails_a_backup(appliance, sealbox):
    text = appliance.config.read_text()
    port = closed_port()
    appliance.config.write_text(
        text + f'\n[alerts]\nsyslog = {{ host = "127.0.0.1", port = {port}, transport = "tcp" }}\n'
    )
    result = sealbox("backup", "secrets", "--config", appliance.config)
    assert result.code == 0, result.err
    assert "alert backup.secrets.succeeded not delivered" in result.err
    state = appliance.root / "appliance" / "state" / "alerts"
    assert len(json.loads((state / "outbox.json").read_text())) == 1


def test_probe_raises_overdue_and_key_not_set_once(tmp_path, sealbox, syslog_tcp):
    extra = """
[destinations.offsite]
url = "file:///nonexistent-sealbox-test"
allow_on_appliance = true
[system]
destination = "offsite"
schedule = "0 * * * *"
paths = ["/etc/hostname"]
"""
    config = _config(tmp_path, _syslog_toml(syslog_tcp.port), extra)
    first = sealbox("probe", "--config", config)
    assert first.code == 7
    names = [parse_rfc5424(line)["msgid"] for line in syslog_tcp.wait(2)]
    assert sorted(names) == ["destination.unreachable", "key.not_set"]
    # This appliance first looked at the system kind three hours ago and never saw a success.
    runs = tmp_path / "state" / "alerts" / "runs.json"
    doc = json.loads(runs.read_text())
    doc["system"]["first_seen"] = "2000-01-01T00:00:00Z"
    runs.write_text(json.dumps(doc))
    sealbox("probe", "--config", config)
    sealbox("probe", "--config", config)
    names = [parse_rfc5424(line)["msgid"] for line in syslog_tcp.wait(3)]
    assert names[2:] == ["backup.system.overdue"] and len(syslog_tcp.wait(4, seconds=1)) == 3
    overdue = parse_cef(parse_rfc5424(syslog_tcp.messages[2])["msg"])
    assert overdue["signature"] == "212"
    assert cef_labelled(overdue["ext"])["last_success"] == "never"


def test_broken_alert_state_never_fails_a_backup(appliance, sealbox):
    state = appliance.root / "appliance" / "state"
    (state / "alerts").write_text("not a directory")  # the alert state cannot be kept
    result = sealbox("backup", "secrets", "--config", appliance.config)
    assert result.code == 0, result.err
    assert "alerts for the secrets backup not handled" in result.err
    probe = sealbox("probe", "--config", appliance.config)
    assert probe.code == 0, probe.err


def test_a_copy_that_has_not_completed_alerts_once_then_recovers(tmp_path, syslog_tcp):
    from datetime import UTC, datetime, timedelta

    from sealbox.alerts.report import check_copies

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    extra = (
        f'[destinations.a]\nurl = "file://{tmp_path / "a"}"\nallow_on_appliance = true\n'
        f'[destinations.b]\nurl = "file://{tmp_path / "b"}"\nallow_on_appliance = true\n'
        '[[copies]]\nfrom = "a"\nto = "b"\nalert_after_hours = 2\n'
    )
    config = load_config(_config(tmp_path, _syslog_toml(syslog_tcp.port), extra))
    now = datetime.now(UTC)
    assert check_copies(config, now) == [], "the clock starts at the first look"
    assert check_copies(config, now + timedelta(hours=3)) == ["a>b"]
    assert check_copies(config, now + timedelta(hours=4)) == ["a>b"]  # no second alert
    first = parse_rfc5424(syslog_tcp.wait(1)[0])
    assert first["msgid"] == "copy.behind" and "a to b" in first["msg"]
    done = (now + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "state" / "copies.json").write_text(json.dumps({"a>b": done}))
    assert check_copies(config, now + timedelta(hours=5)) == []
    lines = syslog_tcp.wait(2)
    assert len(lines) == 2 and parse_rfc5424(lines[1])["msgid"] == "copy.caught_up"


# -- SIEM-native events: ECS and OCSF JSON, over syslog and the SIEMs' HTTP APIs ----------------
def test_syslog_carries_ecs_json_and_a_sequence_id_a_siem_can_check_for_gaps(tmp_path, syslog_tcp):
    path = _config(
        tmp_path,
        f'syslog = {{ host = "127.0.0.1", port = {syslog_tcp.port}, transport = "tcp",'
        ' format = "ecs" }',
    )
    config = load_config(path)
    Notifier(config).send(_event())
    Notifier(config).send(_event("destination.recovered"))  # another process's notifier
    first, second = (parse_rfc5424(m) for m in syslog_tcp.wait(2))
    assert first["sd"] == '[meta sequenceId="1"]' and second["sd"] == '[meta sequenceId="2"]'
    doc = json.loads(first["msg"])
    assert doc["event"]["kind"] == "alert" and doc["event"]["outcome"] == "failure"
    assert doc["event"]["code"] == "100" and doc["event"]["category"] == ["host"]
    assert doc["event"]["type"] == ["error"] and doc["event"]["sequence"] == 1
    assert doc["host"]["name"] and doc["observer"]["name"] == "pam-01"
    assert doc["sealbox"]["reason"] == "refused" and doc["ecs"]["version"]
    assert json.loads(second["msg"])["event"]["outcome"] == "success"


@pytest.mark.parametrize("kind,form", [("splunk", "ecs"), ("elasticsearch", "ocsf")])
def test_the_siem_http_apis_receive_documented_requests(tmp_path, sealbox, kind, form):
    from tests.receivers import SIEMReceiver

    token = "t0k3n-for-tests"
    (tmp_path / "siem.token").write_text(token + "\n")
    receiver = SIEMReceiver(kind, token).start()
    try:
        path = _config(
            tmp_path,
            f'http = {{ url = "{receiver.url}", kind = "{kind}", format = "{form}",'
            f' token_file = "{tmp_path / "siem.token"}" }}',
        )
        done = sealbox("notify", "test", "--config", path)
        assert done.code == 0, done.err
        Notifier(load_config(path)).send(_event("backup.system.failed", last_success="never"))
        test_doc, failed = receiver.wait(2)
        assert receiver.errors == []
        if form == "ecs":
            assert test_doc["event"]["code"] == "900" and failed["event"]["code"] == "211"
            assert receiver.envelopes[0]["sourcetype"] == "sealbox:ecs"
            assert failed["event"]["category"] == ["file"]
        else:
            assert failed["class_uid"] == 6005 and failed["activity_id"] == 5  # Write
            assert failed["type_uid"] == 600505 and failed["status_id"] == 2
            assert failed["severity_id"] == 4 and failed["metadata"]["event_code"] == "211"
            assert test_doc["class_uid"] == 6002 and test_doc["metadata"]["sequence"] == 1
            assert receiver.envelopes[0] == {"create": {"_index": "sealbox-events"}}
        assert token not in json.dumps(receiver.documents)
    finally:
        receiver.stop()


def test_a_refused_token_is_an_undelivered_alert_named_without_the_token(tmp_path, sealbox):
    from tests.receivers import SIEMReceiver

    (tmp_path / "siem.token").write_text("wrong-token\n")
    receiver = SIEMReceiver("splunk", "right-token").start()
    try:
        path = _config(
            tmp_path,
            f'http = {{ url = "{receiver.url}", kind = "splunk",'
            f' token_file = "{tmp_path / "siem.token"}" }}',
        )
        done = sealbox("notify", "test", "--config", path)
        assert done.code == 11 and "HTTP 401" in done.err + done.out
        assert "wrong-token" not in done.err + done.out
        assert receiver.documents == []
    finally:
        receiver.stop()
