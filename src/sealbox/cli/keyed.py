"""The key a command was given and the signers it accepts, for every command that reads
backups: ``--identity FILE`` or a quorum of ``--share FILE`` (with ``--passphrase`` or
``--passphrase-file``), and ``--signer`` / ``--unverified``. One decorator adds the options and
hands the command a :class:`KeyArgs` instead of six parameters; ``KeyArgs`` unlocks the key and
says which signers to trust."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from sealbox.breakglass.opener import parse_signers
from sealbox.cli.common import passphrase_source
from sealbox.crypto.trust import Trust
from sealbox.errors import KeyMaterialError
from sealbox.keys.material import Unlocked, from_identity_file, from_share_files, pinned_trust
from sealbox.keys.store import Keystore

__all__ = ["KeyArgs", "key_options"]

F = TypeVar("F", bound=Callable[..., Any])
_PARAMS = (
    "key_identity",
    "key_shares",
    "key_passphrase",
    "key_passphrase_file",
    "key_signers",
    "key_unverified",
)


@dataclass(frozen=True)
class KeyArgs:
    identity: Path | None
    shares: tuple[Path, ...]
    passphrase_flag: bool
    passphrase_file: Path | None
    signers: tuple[str, ...]
    unverified: bool

    @property
    def given(self) -> bool:
        return self.identity is not None or bool(self.shares)

    def unlock(self, required: bool = True) -> Unlocked | None:
        """The key, or None when none was given and ``required`` is False."""
        if self.identity is not None and self.shares:
            raise KeyMaterialError("give either --identity or --share, not both")
        if self.identity is not None:
            return from_identity_file(self.identity)
        if self.shares:
            source = passphrase_source(self.passphrase_flag, self.passphrase_file)
            return from_share_files(list(self.shares), source)
        if required:
            raise KeyMaterialError(
                "this needs the master key: --identity FILE or a quorum of --share FILE"
            )
        return None

    def require(self) -> Unlocked:
        unlocked = self.unlock()
        assert unlocked is not None  # unlock(required=True) raises instead
        return unlocked

    def trust(self, unlocked: Unlocked | None, local_state: Path | None) -> Trust:
        """The signers accepted: --signer, the sheets' (or identity file's) Signer lines, and
        the keystore of ``local_state`` (the machine that made the backups); refused when that
        is nothing, unless --unverified."""
        local = Keystore(local_state).trust() if local_state is not None else None
        return pinned_trust(unlocked, parse_signers(self.signers), local, self.unverified)


def key_options(func: F) -> F:
    """Add the key and signer options; the command receives ``key: KeyArgs``."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        values = [kwargs.pop(name) for name in _PARAMS]
        return func(*args, key=KeyArgs(*values), **kwargs)

    options = [
        click.option(
            "--identity",
            "key_identity",
            type=click.Path(dir_okay=False, path_type=Path),
            help="An age identity file (e.g. from `sealbox keys combine`).",
        ),
        click.option(
            "--share",
            "key_shares",
            multiple=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="A custodian share sheet (repeat for a quorum).",
        ),
        click.option(
            "--passphrase",
            "key_passphrase",
            is_flag=True,
            help="The shares were made with a passphrase: ask for it.",
        ),
        click.option(
            "--passphrase-file",
            "key_passphrase_file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read the share passphrase from this file.",
        ),
        click.option(
            "--signer",
            "key_signers",
            multiple=True,
            help="An appliance signing key to accept: 'ssh-ed25519 AAAA...' or a file holding it"
            " (repeatable; the sheets' Signer: lines count too).",
        ),
        click.option(
            "--unverified",
            "key_unverified",
            is_flag=True,
            help="Accept snapshots whose signer nobody pinned (the output says so; database dumps"
            " are never loaded from them).",
        ),
    ]
    decorated: Any = command
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]
