"""Secrets stay where they belong: the programs Sealbox starts never see its credentials."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from sealbox.config.models import CommandSource
from sealbox.databases.base import run_feed, run_query, start_dump
from sealbox.sources import read_source

CREDENTIALS = {
    "SEALBOX_AGENT_TOKEN": "agent-token-must-not-leak",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-must-not-leak",
    "AWS_ACCESS_KEY_ID": "AKIA-MUST-NOT-LEAK",
    "SEALBOX_SSH_KEY": "/root/.ssh/sealbox-must-not-leak",
    "EDITOR": "touch /tmp/editor-must-not-leak",
}
# A command source that reports its environment as one item.
ENV_ITEM = (
    "import json, os; print(json.dumps([{'id': 'env', 'type': 'secret', 'name': 'env',"
    " 'secret': {'env': json.dumps(dict(os.environ))}}]))"
)
# A program in a dump tool's or client's place: reads its stdin, prints its environment (and
# writes it to the file named as its argument, for a load whose stdout goes nowhere).
ENV_JSON = (
    "import json, os, sys; sys.stdin.read(); text = json.dumps(dict(os.environ)); print(text);"
    " sys.argv[1:] and open(sys.argv[1], 'w').write(text)"
)


@pytest.fixture
def parent_env(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TZ", "Europe/Paris")


def _assert_minimal(env: dict[str, str], extra: dict[str, str]) -> None:
    assert set(env) - {"PATH", "LANG", "TZ", *extra} <= {n for n in env if n.startswith("LC_")}
    assert env["PATH"] == os.environ["PATH"] and env["TZ"] == "Europe/Paris"
    assert env["LC_ALL"] == "C.UTF-8" and env["LANG"] == "C.UTF-8"
    assert {k: env[k] for k in extra} == extra
    for value in CREDENTIALS.values():
        assert value not in json.dumps(env)


def test_a_command_source_gets_only_path_locale_tz_and_its_own_env(parent_env):
    source = CommandSource(
        type="command",
        command=[sys.executable, "-c", ENV_ITEM],
        env={"PAM_EXPORT_MODE": "full"},
    )
    (item,) = list(read_source(source))
    _assert_minimal(json.loads(item.secret["env"]), {"PAM_EXPORT_MODE": "full"})


def test_dump_and_load_tools_get_only_their_password_variable(parent_env, tmp_path: Path):
    """The plumbing every database kind uses (dump, query, load), with a real program in the
    tool's place: it sees its password variable and nothing of ours."""
    program = [sys.executable, "-c", ENV_JSON]
    fd, finish = start_dump(program, {"PGPASSWORD": "pg-pw"}, "test").open()
    with os.fdopen(fd, "rb") as out:
        dumped = json.loads(out.read())
    finish()
    _assert_minimal(dumped, {"PGPASSWORD": "pg-pw"})
    queried = json.loads(run_query(program, {"MYSQL_PWD": "my-pw"}, "test"))
    _assert_minimal(queried, {"MYSQL_PWD": "my-pw"})
    seen = tmp_path / "env.json"
    run_feed([*program, str(seen)], {"MYSQL_PWD": "my-pw"}, iter([b"SELECT 1;\n"]), "test")
    _assert_minimal(json.loads(seen.read_text()), {"MYSQL_PWD": "my-pw"})


def test_command_source_env_names_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not an environment variable name"):
        CommandSource(type="command", command=["/bin/true"], env={"A=B": "x"})


# Passwords written into URLs, against the advice (password_file); some not even percent-encoded,
# so URL parsers read part of them as the host, the port or the path.
DB_PASSWORDS = {  # the config entry (type, url), the part of the password that must not show
    "wrong-scheme": ("mariadb", "postgresql://root:Plain-pw-9@127.0.0.1/db", "Plain-pw-9"),
    "at-sign": ("mariadb", "mysql://root:Pa@ss-pw-9@127.0.0.1/db", "ss-pw-9"),
    "slash": ("mariadb", "mysql://root:Sl/ash-pw-9@127.0.0.1/db", "ash-pw-9"),
    "host-forgotten": ("postgresql", "postgresql://root:Secret-pw-9/db", "Secret-pw-9"),
    "slash-in-port": ("mariadb", "mysql://root:12/ssh-pw-9@127.0.0.1/db", "ssh-pw-9"),
}


def _config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "remote").mkdir(exist_ok=True)
    path = tmp_path / "sealbox.toml"
    path.write_text(
        f'[appliance]\nname = "pam-01"\nstate_dir = "{tmp_path}/state"\n\n'
        f'[destinations.offsite]\nurl = "file://{tmp_path}/remote"\nallow_on_appliance = true\n\n'
        + body
    )
    return path


@pytest.mark.parametrize("case", sorted(DB_PASSWORDS))
def test_a_password_in_a_database_url_is_never_shown(sealbox, tmp_path, case):
    kind, url, secret = DB_PASSWORDS[case]
    body = f'[system]\ndestination = "offsite"\n\n[[system.databases]]\ntype = "{kind}"\n'
    config = _config(tmp_path, body + f'url = "{url}"\n')
    for args in (["backup", "system"], ["backup", "system", "--json"]):
        result = sealbox(*args, "--config", config)
        assert result.code == 3 and "Traceback" not in result.err, result.err
        assert "database url" in result.err and "root:***" in result.err
        assert secret not in result.out + result.err


def test_a_password_in_a_source_url_is_never_shown(sealbox, tmp_path):
    """SQLAlchemy's own rendering would show what follows an unencoded '@' as the host."""
    config = _config(
        tmp_path,
        '[secrets]\ndestination = "offsite"\n\n[[secrets.sources]]\ntype = "sql"\n'
        'url = "mysql+pymysql://root:Vault@pw-9@127.0.0.1:1/vault"\nquery = "SELECT 1"\n'
        "timeout = 2\n",
    )
    sealbox(
        "keys",
        "ceremony",
        "--shares",
        "2",
        "--threshold",
        "2",
        "--out",
        tmp_path / "c",
        "--config",
        config,
    )
    result = sealbox("backup", "secrets", "--config", config, "--json")
    assert result.code == 6 and "percent-encode it" in result.err, result.err
    assert "root:***@" in result.err and "pw-9" not in result.out + result.err


def test_a_password_in_a_destination_url_is_never_shown(sealbox, tmp_path, monkeypatch):
    monkeypatch.setenv("SEALBOX_AGENT_TOKEN", "t" * 32)
    config = _config(
        tmp_path, '[destinations.agent]\nurl = "agent+https://ops:Agent-pw-9@127.0.0.1:1/ns"\n'
    )
    result = sealbox("probe", "--config", config, "--json")
    assert "ops:***@127.0.0.1" in result.out + result.err
    assert "Agent-pw-9" not in result.out + result.err


def _identity(path: Path) -> str:
    from sealbox.crypto import agekeys

    identity = agekeys.identity_from_secret(agekeys.new_secret())
    path.write_text(identity + "\n")
    return agekeys.recipient_of(identity)


@pytest.fixture
def system(appliance):
    from sealbox.demo import appliance as demo_appliance

    demo_appliance.create_system(appliance.root)
    return appliance


def test_a_repository_only_key_restores_the_system_but_opens_no_secret(system, sealbox, tmp_path):
    """R is in keys.repository_recipients: the system snapshot opens with R, the secrets backup
    made by the same appliance with the same config does not."""
    repo_only = _identity(tmp_path / "R.txt")
    config = system.config
    config.write_text(config.read_text() + f'\n[keys]\nrepository_recipients = ["{repo_only}"]\n')
    assert sealbox("backup", "secrets", "--config", config).code == 0
    assert sealbox("backup", "system", "--config", config).code == 0
    restored = sealbox(
        "restore", "system", "latest", "--target", tmp_path / "t", "--include", "*/pam.conf",
        "--identity", tmp_path / "R.txt", "--config", config, "--json",
    )  # fmt: skip
    assert restored.code == 0, restored.err
    assert [p.name for p in (tmp_path / "t").rglob("pam.conf")] == ["pam.conf"]
    (backup,) = system.backups()
    refused = sealbox(
        "breakglass",
        "open",
        backup,
        "--identity",
        tmp_path / "R.txt",
        *system.signer_args(),
        "list",
    )
    assert refused.code == 4 and "Traceback" not in refused.err, refused.err
    opened = sealbox("breakglass", "open", backup, *system.share_args(1, 2, 3), "list", "--json")
    assert opened.code == 0, opened.err  # the custodians still open it


@pytest.mark.parametrize("which", ["master", "recipient", "unlisted"])
def test_the_scheduled_check_key_must_be_repository_only(appliance, sealbox, tmp_path, which):
    key = tmp_path / "check.txt"
    operator = _identity(tmp_path / "operator.txt")
    repo_only = _identity(tmp_path / "repo-only.txt")
    if which == "master":
        combined = sealbox("keys", "combine", *appliance.share_args(1, 2, 3), "--out", key)
        assert combined.code == 0, combined.err
    else:
        key = tmp_path / ("operator.txt" if which == "recipient" else "stray.txt")
        if which == "unlisted":
            _identity(key)
    base = appliance.config.read_text() + (
        f'\n[keys]\nrecipients = ["{operator}"]\nrepository_recipients = ["{repo_only}"]\n'
        '\n[daemon]\ncheck_read_data_subset = "5%"\n'
    )
    appliance.config.write_text(base + f'check_identity_file = "{key}"\n')
    refused = sealbox("config", "check", "--config", appliance.config, "--json")
    assert refused.code == 3, refused.out + refused.err
    (problem,) = json.loads(refused.out)["problems"]
    assert problem["key"] == "daemon.check_identity_file"
    expected = {"master": "a master key", "recipient": "keys.recipients", "unlisted": "is not in"}
    assert expected[which] in problem["message"] and "\n" not in problem["message"]
    # The daemon refuses it too, when it plans its jobs (at start, on reload) and for each check.
    from sealbox.config.load import load_config
    from sealbox.daemon.jobs import argv_for, jobs_of
    from sealbox.errors import ConfigError

    loaded = load_config(appliance.config)
    with pytest.raises(ConfigError, match=r"^daemon\.check_identity_file: "):
        jobs_of(loaded)
    with pytest.raises(ConfigError, match=r"^daemon\.check_identity_file: "):
        argv_for(loaded, "check")
    appliance.config.write_text(base + f'check_identity_file = "{tmp_path / "repo-only.txt"}"\n')
    assert sealbox("config", "check", "--config", appliance.config).code == 0
    assert "--identity" in argv_for(load_config(appliance.config), "check")
