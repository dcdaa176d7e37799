"""The file:// backend keeps the backend contract (atomic, exclusive, safe names)."""

import os
from pathlib import Path

import pytest

from sealbox.backends import open_backend, validate_name
from sealbox.errors import ConfigError, DestinationError, NotFoundError


@pytest.fixture
def backend(tmp_path):
    return open_backend(f"file://{tmp_path}/repo")


def test_put_get_stat_list_delete(backend):
    backend.put("a/b.bin", b"hello")
    assert backend.get("a/b.bin") == b"hello"
    assert backend.get("a/b.bin", offset=1, length=3) == b"ell"
    assert backend.stat("a/b.bin").size == 5
    assert [o.name for o in backend.list("a/")] == ["a/b.bin"]
    backend.delete("a/b.bin")
    backend.delete("a/b.bin")  # idempotent
    with pytest.raises(NotFoundError):
        backend.get("a/b.bin")
    with pytest.raises(NotFoundError):
        backend.stat("a/b.bin")


def test_exclusive_put_never_replaces(backend):
    backend.put("x", b"first", exclusive=True)
    with pytest.raises(DestinationError, match="exists already"):
        backend.put("x", b"second", exclusive=True)
    assert backend.get("x") == b"first"
    assert [o.name for o in backend.list()] == ["x"]  # no temporary file left


@pytest.mark.parametrize(
    "name", ["", "/abs", "../up", "a/../b", "a//b", ".hidden", "a\\b", "a/\x00", "-x"]
)
def test_unsafe_names_are_refused(name):
    with pytest.raises(DestinationError):
        validate_name(name)


def test_unwritable_directory_is_a_destination_error(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/sealbox-cannot-write"
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = str(ro)
    with pytest.raises(DestinationError, match="cannot write"):
        open_backend(f"file://{target}").put("x", b"1")


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError):
        open_backend("gopher://host/x")


def test_filesystem_type_from_mountinfo(tmp_path):
    from sealbox.backends.local import LocalBackend

    kind = LocalBackend(tmp_path / "not" / "yet").filesystem()
    assert kind and kind.isascii() and " " not in kind
    assert LocalBackend(Path("/proc")).filesystem() == "proc"
