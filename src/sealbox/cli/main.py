"""The root ``sealbox`` group and the error boundary: one line per failure, exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sealbox import __version__
from sealbox.cli import backup_cmd, breakglass_cmd, config_cmd, demo_cmd, keys_cmd, repo_cmd
from sealbox.cli.common import err_console
from sealbox.errors import SealboxError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default $SEALBOX_CONFIG, then /etc/sealbox/sealbox.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="sealbox")
def cli(config_path: Path | None, debug: bool) -> None:
    """Sealbox: backups for privileged-access-management appliances."""


cli.add_command(config_cmd.group)
cli.add_command(keys_cmd.group)
cli.add_command(backup_cmd.group)
cli.add_command(breakglass_cmd.group)
cli.add_command(repo_cmd.group)
cli.add_command(demo_cmd.command)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="sealbox", standalone_mode=False)
    except SealboxError as exc:
        if debug:
            raise
        err_console.print(f"sealbox: error: {exc}", markup=False)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        err_console.print("sealbox: aborted", markup=False)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("sealbox: interrupted", markup=False)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"sealbox: internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
            markup=False,
        )
        return 70
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
