import itertools
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from energy_pipeline.simulator.legacy import make_legacy_database
from energy_pipeline.storage.legacy import LegacyDatabase, LegacyDatabaseError, parse_start_time

START = datetime(2025, 1, 31, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1735689600000", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T01:00:00+01:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01 00:00:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T00:00:00Z", datetime(2025, 1, 1, tzinfo=UTC)),
        (1735689600000, datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_both_start_time_encodings(text, expected):
    assert parse_start_time(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", None, "2025-13-01"])
def test_unreadable_start_time(text):
    with pytest.raises(ValueError):
        parse_start_time(text)


def test_scan_classifies_every_row_and_derives_change(tmp_path):
    spec = make_legacy_database(tmp_path / "energy.db", ["sensor.a", "sensor.b"], START, 72, bad_fraction=0.05)
    with LegacyDatabase(spec.path) as db:
        scan = db.scan()
        assert db.first_instant() <= START
        assert {e["entity_id"] for e in db.entities()} == {"sensor.a", "sensor.b"}
    total_rows = sqlite3.connect(spec.path).execute("SELECT COUNT(*) FROM energy_statistics").fetchone()[0]
    assert len(scan.hourly) + len(scan.rejected) + len(scan.other_periods) + len(scan.duplicates) == total_rows
    assert len(scan.rejected) == spec.bad_rows > 0
    assert len(scan.other_periods) == spec.other_period_rows
    stored = {(r.entity_id, r.ts): r for r in scan.hourly}
    assert {k: v.sum for k, v in stored.items()} == spec.good_hourly
    for entity in ("sensor.a", "sensor.b"):
        rows = sorted((r for r in scan.hourly if r.entity_id == entity), key=lambda r: r.ts)
        assert rows[0].change is None
        for previous, row in itertools.pairwise(rows):
            assert row.change == pytest.approx(row.sum - previous.sum)
            assert row.change > 0
        assert all(r.source == "legacy" for r in rows)
    assert all(r.reason for r, _ in scan.rejected)


def test_same_instant_in_two_encodings_is_merged_later_id_wins(tmp_path):
    spec = make_legacy_database(tmp_path / "energy.db", ["sensor.a"], START, 3, bad_fraction=0, day_rows=False)
    conn = sqlite3.connect(spec.path)
    hour = START + timedelta(hours=1)
    conn.execute("INSERT INTO energy_statistics (entity_id, start_time, sum, state, period) VALUES (?,?,?,?, 'hour')",
                 ("sensor.a", hour.strftime("%Y-%m-%dT%H:%M:%SZ"), 99.0, 1099.0))
    conn.commit()
    with LegacyDatabase(spec.path) as db:
        scan = db.scan()
    assert scan.duplicates == [("sensor.a", hour)]
    assert [r.sum for r in scan.hourly if r.ts == hour] == [99.0]


def test_missing_or_foreign_file_gives_a_clear_error(tmp_path):
    with pytest.raises(LegacyDatabaseError, match="LEGACY_SQLITE_PATH"):
        LegacyDatabase(tmp_path / "nope.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(LegacyDatabaseError, match=r"previous app's energy\.db"):
        LegacyDatabase(other)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LegacyDatabaseError):
        LegacyDatabase(garbage)
