import tomllib
from pathlib import Path

import pytest

from sealbox.config.load import load_config, validate
from sealbox.config.sample import reference_markdown, sample_toml
from sealbox.errors import ConfigError

DOCS = Path(__file__).parents[2] / "docs" / "reference" / "config.md"

MINIMAL = """
[appliance]
name = "pam-01"
[destinations.offsite]
url = "file:///mnt/backup"
[secrets]
destination = "offsite"
[[secrets.sources]]
type = "json"
path = "/var/lib/pam/export.json"
"""


def test_sample_config_validates_as_printed():
    config, problems = validate(tomllib.loads(sample_toml()))
    assert problems == []
    assert config is not None and config.appliance.name == "pam-01"


def test_reference_page_matches_the_schema():
    assert DOCS.read_text() == reference_markdown(), "run `make docs`"


def test_minimal_config_gets_defaults():
    config, problems = validate(tomllib.loads(MINIMAL))
    assert problems == [] and config is not None
    assert config.secrets is not None and config.secrets.keep_last == 48
    assert str(config.appliance.state_dir) == "/var/lib/sealbox"


def test_every_problem_is_reported_with_its_key_path():
    text = (
        MINIMAL.replace('name = "pam-01"', 'name = "../evil"\nnmae = "x"')
        .replace(
            '[secrets]\ndestination = "offsite"',
            '[secrets]\ndestination = "offsite"\nschedule = "61 * * * *"',
        )
        .replace('type = "json"', 'type = "json"\ncolour = "red"')
    )
    _, problems = validate(tomllib.loads(text))
    keys = {k for k, _ in problems}
    assert {
        "appliance.name",
        "appliance.nmae",
        "secrets.schedule",
        "secrets.sources[0].colour",
    } <= keys
    assert any("unknown key" in m for _, m in problems)


def test_destination_reference_must_exist():
    _, problems = validate(
        tomllib.loads(MINIMAL.replace('destination = "offsite"', 'destination = "nowhere"'))
    )
    assert problems == [("secrets.destination", "no [destinations.nowhere] (known: offsite)")]


def test_bad_recipient_and_bad_scheme_are_named():
    text = MINIMAL + '\n[keys]\nrecipients = ["age1nope"]\n'
    text = text.replace("file:///mnt/backup", "gopher://x/y")
    _, problems = validate(tomllib.loads(text))
    keys = dict(problems)
    assert "keys.recipients" in keys and "age1nope" in keys["keys.recipients"]
    assert "unsupported destination scheme 'gopher'" in keys["destinations.offsite.url"]


def test_load_config_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[appliance\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    bad.write_text("[appliance]\n")
    with pytest.raises(ConfigError, match=r"appliance\.name: Field required"):
        load_config(bad)


@pytest.mark.parametrize(
    ("daemon", "problem"),
    [
        ('listen = "0.0.0.0:9740"', "serve HTTPS"),
        ('listen = "127.0.0.1:9740"\ntls_cert = "/etc/c.pem"', "go together"),
        ('listen = "9740"', "HOST:PORT"),
        ('check_schedule = "every day"', ""),
        ('[[daemon.users]]\nname = "a"\npassword_hash = "plain"', "argon2"),
    ],
)
def test_daemon_settings_are_checked(daemon, problem):
    text = MINIMAL + "[daemon]\n" + daemon + "\n"
    _, problems = validate(tomllib.loads(text))
    assert problems and all(k.startswith("daemon") for k, _ in problems)
    assert problem in " ".join(m for _, m in problems)


def test_daemon_on_a_network_address_with_https_is_fine():
    text = MINIMAL + '[daemon]\nlisten = "[::]:9740"\ntls_cert = "/c.pem"\ntls_key = "/k.pem"\n'
    assert validate(tomllib.loads(text))[1] == []


def test_cluster_lease_defaults_to_the_backups_destination():
    config, problems = validate(tomllib.loads(MINIMAL + '[cluster]\nnode = "pam-01a"\n'))
    assert problems == [] and config is not None and config.cluster is not None
    assert (config.cluster.leader, config.cluster.lease_seconds) == ("lease", 60)
    assert config.lease_destination == "offsite"


@pytest.mark.parametrize(
    ("cluster", "key", "problem"),
    [
        ('node = "a/b"', "cluster.node", "use letters"),
        ('node = "a"\nleader = "vote"', "cluster.leader", "'lease', 'database' or 'command'"),
        ('node = "a"\nlease_seconds = 5', "cluster.lease_seconds", "greater than or equal to 15"),
        ('node = "a"\nleader = "command"', "cluster", 'needs command = ["/path/to/is-primary"'),
        ('node = "a"\ncommand = ["x"]', "cluster", 'only read with leader = "command"'),
        ('node = "a"\nleader = "database"', "cluster", "needs [cluster.database]"),
        (
            'node = "a"\nleader = "database"\ndatabase = { type = "sqlite", url = "sqlite:////x" }',
            "cluster",
            "sqlite has no primary or replica",
        ),
        ('node = "a"\nlease_destination = "nowhere"', "cluster.lease_destination", "no [dest"),
        (
            'node = "a"\nleader = "command"\ncommand = ["x"]\nlease_destination = "elsewhere"',
            "cluster.lease_destination",
            "no [destinations.elsewhere]",
        ),
    ],
)
def test_cluster_settings_are_checked_with_one_line_each(cluster, key, problem):
    _, problems = validate(tomllib.loads(MINIMAL + f"[cluster]\n{cluster}\n"))
    assert len(problems) == 1, problems
    where, message = problems[0]
    assert where == key and problem in message and "\n" not in message, problems


@pytest.mark.parametrize("value", ["6.25%", "10%", "32+2", "off"])
def test_repository_parity_accepts_what_the_engine_reads(value):
    from sealbox.config.models import RepositoryConfig
    from sealbox.repo.parity import parse_policy

    assert RepositoryConfig(parity=value).parity == value
    parse_policy(value)


@pytest.mark.parametrize("value", ["0%", "60%", "4+9", "2+3", "lots", "129+1"])
def test_repository_parity_refuses_what_the_engine_would(value):
    from pydantic import ValidationError

    from sealbox.config.models import RepositoryConfig
    from sealbox.repo.parity import parse_policy

    with pytest.raises(ValidationError):
        RepositoryConfig(parity=value)
    with pytest.raises(ValueError):
        parse_policy(value)
