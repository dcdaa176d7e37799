"""The root ``sealbox`` group and the error boundary: one line per failure, exit codes."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import click

from sealbox import __version__
from sealbox.cli.common import err_console
from sealbox.errors import SealboxError

# Command name -> module:attribute. Modules load only when their command runs, so a backup does
# not pay (in start-up time and memory) for the libraries of every other command.
COMMANDS = {
    "config": "sealbox.cli.config_cmd:group",
    "keys": "sealbox.cli.keys_cmd:group",
    "backup": "sealbox.cli.backup_cmd:group",
    "breakglass": "sealbox.cli.breakglass_cmd:group",
    "repo": "sealbox.cli.repo_cmd:group",
    "recordings": "sealbox.cli.recordings_cmd:group",
    "restore": "sealbox.cli.restore_cmd:group",
    "snapshots": "sealbox.cli.snapshots_cmd:command",
    "copy": "sealbox.cli.copy_cmd:command",
    "forget": "sealbox.cli.forget_cmd:command",
    "hold": "sealbox.cli.hold_cmd:group",
    "status": "sealbox.cli.status_cmd:command",
    "probe": "sealbox.cli.probe_cmd:command",
    "notify": "sealbox.cli.notify_cmd:group",
    "daemon": "sealbox.cli.daemon_cmd:command",
    "check": "sealbox.cli.check_cmd:command",
    "drill": "sealbox.cli.drill_cmd:group",
    "agent": "sealbox.cli.agent_cmd:group",
    "demo": "sealbox.cli.demo_cmd:command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    _log_to_stderr()
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
    except ModuleNotFoundError as exc:
        # A custodian's light install (`pip install sealbox`) has what opening a backup needs;
        # the appliance's commands need the rest.
        if debug:
            raise
        err_console.print(
            f"sealbox: error: this command runs on the appliance and needs its dependencies"
            f" (pip install 'sealbox[appliance]'): {exc}",
            markup=False,
        )
        return SealboxError.exit_code
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"sealbox: internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
            markup=False,
        )
        return 70
    return 0


class _StderrLine(logging.Handler):
    """One ``sealbox: warning: ...`` line per record, on whatever stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err_console.print(f"sealbox: warning: {record.getMessage()}", markup=False)
        except Exception:
            self.handleError(record)


def _log_to_stderr() -> None:
    """Sealbox's own warnings (an alert not delivered, unreadable state) go to stderr; libraries
    stay quiet below WARNING."""
    logger = logging.getLogger("sealbox")
    if not any(isinstance(h, _StderrLine) for h in logger.handlers):
        logger.addHandler(_StderrLine())
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
