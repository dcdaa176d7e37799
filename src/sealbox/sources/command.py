"""``command`` source: run a program (no shell) that prints items as JSON on stdout.

Its output stays in memory (a pipe); its stderr is passed through to ours, never into our errors,
since an exporter may print anything there. Its environment is PATH, the locale, TZ and the
source's own ``env``: never Sealbox's credentials.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

from sealbox.config.models import CommandSource
from sealbox.errors import SourceError
from sealbox.items import Item
from sealbox.sources.jsonfile import items_from_json
from sealbox.util.childenv import minimal_env

__all__ = ["read"]


def read(source: CommandSource) -> Iterator[Item]:
    where = f"source {source.name!r} ({source.command[0]})"
    try:
        done = subprocess.run(
            source.command,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=minimal_env(source.env),
            timeout=source.timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SourceError(f"{where}: program not found") from exc
    except PermissionError as exc:
        raise SourceError(f"{where}: program is not executable") from exc
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"{where}: no answer within {source.timeout:g} s, killed") from exc
    if done.returncode != 0:
        raise SourceError(f"{where}: exited with status {done.returncode}")
    return iter(items_from_json(done.stdout, source.name, source.id_prefix))
