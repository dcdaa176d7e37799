"""The product's repositories: one per destination, at ``<destination>/repo``, sealed to the
master key (keystore), the operator keys and the repository-only keys (config), created on first
use."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sealbox.backends import Backend, open_backend
from sealbox.config.models import Config
from sealbox.crypto.trust import Trust
from sealbox.errors import ConfigError, NotFoundError
from sealbox.keystore import Keystore
from sealbox.placement import check_destination
from sealbox.repo.repository import Repository

__all__ = ["destination_backend", "destination_of", "open_product_repo", "repo_url"]


def repo_url(destination_url: str) -> str:
    """``<destination>/repo``: the path grows, the query (an S3 endpoint, say) stays."""
    if "://" not in destination_url:
        return destination_url.rstrip("/") + "/repo"
    parts = urlsplit(destination_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/repo"))


def destination_backend(config: Config, name: str, repo: bool = False) -> Backend:
    """The backend of a configured destination (its root, or its repository), with its options."""
    dest = config.destinations[name]
    return open_backend(repo_url(dest.url) if repo else dest.url, dest)


def destination_of(config: Config, section: str, override: str | None) -> str:
    part = getattr(config, section)
    if part is None:
        raise ConfigError(f"no [{section}] section in the config")
    name: str = override or part.destination
    if name not in config.destinations:
        raise ConfigError(f"no destination named {name!r} in the config")
    return name


def open_product_repo(
    config: Config, destination: str, appliance_paths: list[Path], create: bool = True
) -> tuple[Repository, list[str]]:
    """The repository at a destination (created if missing), and the off-appliance warnings."""
    from sealbox.secrets_backup import repository_recipients_for

    dest = config.destinations[destination]
    warnings = check_destination(
        destination,
        dest.url,
        dest.allow_on_appliance,
        [config.appliance.state_dir, config.appliance.var_dir, *appliance_paths],
    )
    state = config.appliance.state_dir
    backend = destination_backend(config, destination, repo=True)
    try:
        Repository.read_config(backend)
    except NotFoundError:
        if not create:
            raise
        recipients = [k["recipient"] for k in repository_recipients_for(config, Keystore(state))]
        Repository.init(backend, recipients, state)
    repo = Repository.open_writer(backend, state)
    if create:
        recipients = [k["recipient"] for k in repository_recipients_for(config, Keystore(state))]
        repo.seal_keys_to(recipients, state)
        repo.data_recipients = recipients
    return repo, warnings


def open_product_repo_to_read(
    config: Config, destination: str, identities: list[Any] | None, trust: Trust | None = None
) -> Repository:
    """The repository at a destination opened with a key (custodians' or an operator's) to read
    contents, accepting the signers ``trust`` pins; or, with no key, as this appliance's writer
    (its keystore's signers): structure and signed records only."""
    if identities is None:
        return open_product_repo(config, destination, [], create=False)[0]
    if trust is None:
        trust = Keystore(config.appliance.state_dir).trust().require()
    return Repository.open(destination_backend(config, destination, repo=True), identities, trust)
