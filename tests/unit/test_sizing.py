from __future__ import annotations

import os

from sealbox.destinations.sizing import SizingReport, forecast, tree_size

DAY = 86400.0


def test_forecast_from_free_space_samples():
    now = 1_000 * DAY
    samples = [[now - (9 - n) * DAY, 1_000_000_000 - n * 10_000_000] for n in range(10)]
    growth, days = forecast(samples, now)
    assert round(growth) == 10_000_000
    assert round(days) == 91  # 910 MB left at 10 MB a day
    assert forecast(samples[:1], now) == (None, None)
    shrinking = [[now - (9 - n) * DAY, 1000 + n] for n in range(10)]
    assert forecast(shrinking, now)[1] is None  # free space growing: never full


def test_tree_size_counts_hard_links_once(tmp_path):
    (tmp_path / "a").write_bytes(os.urandom(100_000))
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "c").write_bytes(os.urandom(50_000))
    size = tree_size(tmp_path)
    assert 150_000 <= size < 250_000


def test_below_the_rule_and_near_full_are_warned():
    report = SizingReport("offsite", "/var", 10_000, 15_000, 1_000, 2_000, 3_000, False, None, None)
    assert "below the 150% of /var" in (report.warning() or "")
    soon = SizingReport("offsite", "/var", 10, 15, 10**9, 0, 10**9, True, 10**8, 10.0)
    assert "full in 10 days" in (soon.warning() or "")
    fine = SizingReport("offsite", "/var", 10, 15, 10**9, 0, 10**9, True, None, None)
    assert fine.warning() is None


def test_used_bytes_is_counted_once_then_grown_by_backups(tmp_path):
    from sealbox.backends.local import LocalBackend
    from sealbox.destinations.sizing import record_sample, used_bytes

    root = tmp_path / "dest"
    root.mkdir()
    backend = LocalBackend(root)
    backend.put("a", b"x" * 1000)
    state = tmp_path / "state"
    assert used_bytes(state, "offsite", backend) == 1000
    backend.put("b", b"y" * 500)
    assert used_bytes(state, "offsite", backend) == 1000  # cached: no listing
    record_sample(state, "offsite", backend, added=500)
    assert used_bytes(state, "offsite", backend) == 1500  # grown by what the backup added
    backend.delete("a")
    assert used_bytes(state, "offsite", backend, fresh=True) == 500  # a full count
