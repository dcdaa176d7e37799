"""Helpers every command shares: --config/--json options, output, passphrase prompts."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson
from rich.console import Console

from sealbox.errors import IntegrityError, KeyMaterialError

if TYPE_CHECKING:
    from sealbox.config import Config

F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def config_option(func: F) -> F:
    """Add ``--config PATH`` to a leaf command (the root group takes it too)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Config file (default $SEALBOX_CONFIG, then /etc/sealbox/sealbox.toml).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(
        func
    )


def config_path(ctx: click.Context, leaf: Path | None) -> Path:
    # The config (pydantic) loads on use: break-glass commands run on a custodian's light
    # install, which has no pydantic.
    from sealbox.config.load import resolve_path

    root = ctx.find_root().params.get("config_path")
    return resolve_path(leaf or root)


def load(ctx: click.Context, leaf: Path | None) -> Config:
    from sealbox.config.load import load_config  # on use, as above

    return load_config(config_path(ctx, leaf))


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def fail_if_not_intact(failed: list[str], noun: str, as_json: bool) -> None:
    """Exit with IntegrityError when a restore left ``failed`` items, listing them for people
    (JSON output already carries them in its "failed" field)."""
    if not failed:
        return
    if not as_json:
        for failure in failed:
            console.print(f"FAILED {failure}", markup=False)
    more = f" (and {len(failed) - 1} more{'' if as_json else ', listed above'})"
    raise IntegrityError(
        f"{len(failed)} {noun} could not be restored intact: {failed[0]}"
        + (more if len(failed) > 1 else "")
    )


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}")


def passphrase_source(
    flag: bool, file: Path | None, confirm: bool = False
) -> Callable[[], str] | None:
    """How to get a share passphrase: from ``--passphrase-file``, a prompt, or not at all."""
    if file is not None:

        def from_file() -> str:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise KeyMaterialError(
                    f"cannot read passphrase file {file}: {exc.strerror}"
                ) from exc
            return text.splitlines()[0] if text else ""

        return from_file
    if not flag:
        return None

    @functools.cache
    def prompt() -> str:
        if not sys.stdin.isatty():
            raise KeyMaterialError(
                "a passphrase is needed but there is no terminal: use --passphrase-file"
            )
        value: str = click.prompt(
            "Share passphrase", hide_input=True, confirmation_prompt=confirm, err=True
        )
        return value

    return prompt


def passphrase_options(func: F) -> F:
    func = click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Read the share passphrase from this file.",
    )(func)
    return click.option(
        "--passphrase",
        "passphrase_flag",
        is_flag=True,
        help="The shares were made with a passphrase: ask for it.",
    )(func)
