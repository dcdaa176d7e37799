"""``sealbox demo`` runs end to end, and a second run is "the next day"."""

from __future__ import annotations

import json


def test_demo_twice(tmp_path, sealbox):
    root = tmp_path / "demo"
    first = sealbox("demo", "--dir", root)
    assert first.code == 0, first.err
    assert "Sealbox demo summary" in first.out and "6000 items" in first.out
    assert len(list((root / "custodians").glob("share-*.txt"))) == 5
    second = sealbox("demo", "--dir", root)
    assert second.code == 0, second.err
    assert "Next day" in second.out and "passwords rotated" in second.out
    assert "files identical" in second.out and "files unchanged" in second.out
    assert "signed batches: intact" in second.out and "still being recorded" in second.out
    backups = sorted((root / "remote" / "demo-pam").glob("secrets-*.age"))
    assert len(backups) == 2
    newest = sealbox(
        "breakglass",
        "open",
        backups[-1],
        "--share",
        root / "custodians" / "share-02.txt",
        "--share",
        root / "custodians" / "share-04.txt",
        "--share",
        root / "custodians" / "share-05.txt",
        "list",
        "--json",
    )
    assert newest.code == 0 and len(json.loads(newest.out)) == 6000
    # The daemon on the same demo: every job catches up, then status and metrics.
    daemon = sealbox("demo", "--dir", root, "--daemon", "5")  # then until each job reported
    assert daemon.code == 0, daemon.err
    for kind in ("secrets", "system", "recordings", "probe"):
        assert f"{kind:<10} catch-up success" in daemon.out, daemon.out
    assert "daemon     running" in daemon.out and "dashboard: http://127.0.0.1:" in daemon.out
    assert 'sealbox_destination_up{destination="remote"} 1' in daemon.out
    assert "Daemon stopped (SIGTERM)" in daemon.out
