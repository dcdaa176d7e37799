from datetime import timedelta

import pytest

from sealbox.schedule import parse_cron, parse_duration


def test_cron_fields_and_macros():
    spec = parse_cron("*/15 5 * * mon-fri")
    assert spec.minutes == {0, 15, 30, 45} and spec.hours == {5}
    assert spec.weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("@daily") == parse_cron("0 0 * * *")
    assert parse_cron("0 0 * * 7").weekdays == {0}


@pytest.mark.parametrize(
    "bad", ["", "* * * *", "60 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *", "a * * * *"]
)
def test_bad_cron_is_refused(bad):
    with pytest.raises(ValueError):
        parse_cron(bad)


def test_durations():
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("1w 2d") == timedelta(days=9)
    assert parse_duration("5y") == timedelta(days=5 * 365)
    for bad in ("", "30", "3x", "d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_next_run():
    from datetime import UTC, datetime

    from sealbox.schedule import interval, next_run

    at = datetime(2026, 11, 26, 6, 17, 30, tzinfo=UTC)
    assert next_run("0 * * * *", at) == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    assert next_run("*/15 * * * *", at) == datetime(2026, 11, 26, 6, 30, tzinfo=UTC)
    assert next_run("0 5 * * *", at) == datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    assert next_run("0 0 1 1 *", at) == datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
    assert next_run("30 2 * * mon", at) == datetime(
        2026, 11, 30, 2, 30, tzinfo=UTC
    )  # 26 Nov 2026 is a Thursday
    assert next_run("0 0 13 * fri", at) == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)  # either field
    assert next_run("0 0 29 2 *", at) == datetime(2028, 2, 29, 0, 0, tzinfo=UTC)
    assert interval("0 5 * * *", at).total_seconds() == 86400
    assert interval("*/15 * * * *", at).total_seconds() == 900
