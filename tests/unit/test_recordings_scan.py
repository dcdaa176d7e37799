"""The settle rule (format.md §17): each of its three conditions holds a recording back."""

from __future__ import annotations

import os
import time

from sealbox.recordings import scan as scan_module
from sealbox.recordings.scan import scan


def _old_recording(path, age: float = 600) -> None:
    path.write_bytes(os.urandom(1000))
    when = time.time() - age
    os.utime(path, (when, when))


def test_a_settled_closed_unchanged_recording_is_ready(tmp_path):
    _old_recording(tmp_path / "a.rec")
    result = scan(tmp_path, {}, 60, [])
    assert [c.path for c in result.ready] == ["a.rec"] and not result.waiting


def test_a_recording_that_changes_during_the_scan_waits(tmp_path, monkeypatch):
    """The third condition: its size and mtime at the end of the scan are not those at the start
    (a recorder that paused longer than settle_seconds and wrote again while we looked)."""
    recording = tmp_path / "a.rec"
    _old_recording(recording)
    looked = scan_module.open_files

    def recorder_writes_meanwhile(root: str) -> set[str]:
        with recording.open("ab") as handle:  # closed again before we look for open files
            handle.write(b"one more frame")
        return looked(root)

    monkeypatch.setattr(scan_module, "open_files", recorder_writes_meanwhile)
    result = scan(tmp_path, {}, 60, [])
    assert result.ready == []
    assert result.waiting == ["a.rec: changed during the scan"]


def test_a_recording_changed_recently_waits(tmp_path):
    _old_recording(tmp_path / "a.rec", age=5)
    result = scan(tmp_path, {}, 60, [])
    assert result.ready == [] and "changed less than 60 s ago" in result.waiting[0]


def test_a_recording_open_by_a_process_waits(tmp_path):
    recording = tmp_path / "a.rec"
    _old_recording(recording)
    with recording.open("ab"):
        result = scan(tmp_path, {}, 60, [])
    assert result.ready == [] and "open by a process" in result.waiting[0]
