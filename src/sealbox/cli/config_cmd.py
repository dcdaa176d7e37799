"""``sealbox config sample`` and ``sealbox config check``."""

from __future__ import annotations

from pathlib import Path

import click

from sealbox.backends.options import AgentOptions
from sealbox.cli.common import config_option, console, json_option, print_json, warn
from sealbox.cli.common import config_path as resolve
from sealbox.config.load import read_toml, validate
from sealbox.config.sample import sample_toml
from sealbox.daemon.jobs import CHECK_IDENTITY_KEY, check_identity_problem
from sealbox.errors import ConfigError


@click.group("config")
def group() -> None:
    """Sample and validate the configuration."""


@group.command("sample")
def sample() -> None:
    """Print a commented sample configuration."""
    click.echo(sample_toml(), nl=False)


@group.command("check")
@config_option
@json_option
@click.pass_context
def check(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Validate the config; report every problem with its key path."""
    path = resolve(ctx, config_path)
    config, problems = validate(read_toml(path))
    notes: list[str] = []
    if config is not None:
        identity_problem = check_identity_problem(config)  # reads the file and the keystore
        if identity_problem is not None:
            problems = [*problems, (CHECK_IDENTITY_KEY, identity_problem)]
        for name, dest in config.destinations.items():
            if dest.allow_on_appliance:
                notes.append(
                    f"destinations.{name}.allow_on_appliance is true: backups may stay on the appliance"
                )
            token_file = dest.token_file if isinstance(dest, AgentOptions) else None
            if token_file is not None and not token_file.exists():
                notes.append(f"destinations.{name}.token_file: {token_file} does not exist")
    if as_json:
        print_json(
            {
                "path": str(path),
                "valid": not problems,
                "problems": [{"key": k, "message": m} for k, m in problems],
                "warnings": notes,
            }
        )
    else:
        for key, message in problems:
            console.print(f"{path}: {key}: {message}", markup=False)
        for note in notes:
            warn(note)
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)")
    if not as_json:
        console.print(f"{path}: valid", markup=False)


@group.command("hash-password")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read the password from this file (else prompted twice, not echoed).",
)
def hash_password(password_file: Path | None) -> None:
    """Print an argon2id hash for a dashboard user's password_hash."""
    from argon2 import PasswordHasher

    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").rstrip("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read a password from {password_file}") from exc
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        raise ConfigError("use a password of at least 12 characters")
    click.echo(PasswordHasher().hash(password))
    del password
