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
