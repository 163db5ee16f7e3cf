"""Electricity tariffs: versioned time-of-use prices plus a fixed daily charge, and the cost they give.

A tariff is stored in the settings document as ``tariff`` (a JSON-able dict)::

    {"currency": "EUR",
     "versions": [
       {"effective_from": "2026-01-01", "daily_charge": 0.40,
        "prices": [{"start": "07:00", "end": "22:00", "price_per_kwh": 0.32,
                    "weekdays": ["mon", "tue", "wed", "thu", "fri"]},
                   {"start": "22:00", "end": "07:00", "price_per_kwh": 0.22,
                    "weekdays": ["mon", "tue", "wed", "thu", "fri"]},
                   {"start": "07:00", "end": "07:00", "price_per_kwh": 0.25, "weekdays": ["sat", "sun"]}]}]}

Rules, chosen so that a cost is always defined and never rewrites the past:

* ``effective_from`` is a *local* date (the house's time zone). A version is in force from its date's
  local midnight until the next version's date; a new version never changes costs before its date.
  Hours before the first version have no price: the cost of a bucket starting before it is ``None``.
* A price window covers local hours ``[start, end)``. ``start == end`` means the whole day; ``end <
  start`` wraps past midnight; ``"24:00"`` is accepted as an end. Consumption is stored per hour, so
  windows start and end on the hour (a price that changes at 07:30 cannot be applied to hourly data).
* ``weekdays`` (``mon`` .. ``sun``; omitted = every day) name the day the window *starts*: a Friday
  ``22:00``-``07:00`` window prices Saturday ``00:00``-``07:00`` too. Within one version every local
  hour of every weekday must have exactly one price: overlaps and gaps are errors naming the hours.
* The price of an hour is the one in force at the hour's local start (date of that local start for
  the version, its weekday and hour for the window). In a DST fall-back the repeated local hour is
  priced twice at that hour's price; in spring-forward the skipped local hour simply does not occur.
* Which entities are priced: energy bought from the grid, i.e. roles ``grid_import`` and ``device`` and
  entities without a role, when their unit is Wh/kWh/MWh (see :func:`priced_factor`).
* Cost of a bucket = sum over its stored hours of (consumption in kWh x that hour's price) + the daily
  charge of every local day lying *entirely* inside the bucket. Daily charges are not prorated: an
  hour bucket never carries one; a day, week or month bucket carries one per local day it spans.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_ALIASES = {name: index for index, name in enumerate(WEEKDAYS)} | {
    full: index for index, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_TIME_RE = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")
MAX_VERSIONS = 500
MAX_PRICE = 1_000_000.0  # per kWh or per day, in any currency: beyond it is a typo, and costs could overflow
MAX_WINDOWS = 200

# Units of energy statistics and their factor to kWh; other units (m³, L, ...) are not priced.
ENERGY_UNIT_FACTORS: dict[str, float] = {"Wh": 0.001, "kWh": 1.0, "MWh": 1000.0, "GWh": 1_000_000.0}

EXAMPLE_TARIFF: dict[str, Any] = {
    "currency": "EUR",
    "versions": [{
        "effective_from": "2026-01-01", "daily_charge": 0.40,
        "prices": [
            {"start": "07:00", "end": "22:00", "price_per_kwh": 0.32},
            {"start": "22:00", "end": "07:00", "price_per_kwh": 0.22},
        ],
    }],
}


class TariffError(ValueError):
    """A tariff is invalid; ``problems`` lists every problem found, each naming where it is."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("invalid tariff: " + "; ".join(self.problems))


@dataclass(frozen=True)
class PriceWindow:
    """``price_per_kwh`` for local hours ``[start_hour, end_hour)`` starting on ``weekdays`` (0 = Monday)."""

    start_hour: int
    end_hour: int  # 0..24; equal to start_hour means 24 hours
    price_per_kwh: float
    weekdays: tuple[int, ...] | None = None

    def slots(self) -> list[tuple[int, int]]:
        """The (weekday, hour) slots this window prices; hours past midnight belong to the next weekday."""
        length = (self.end_hour - self.start_hour) % 24 or 24
        out = []
        for weekday in self.weekdays if self.weekdays is not None else range(7):
            for offset in range(length):
                hour = self.start_hour + offset
                out.append(((weekday + hour // 24) % 7, hour % 24))
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": f"{self.start_hour:02d}:00", "end": f"{self.end_hour:02d}:00",
                               "price_per_kwh": self.price_per_kwh}
        if self.weekdays is not None:
            out["weekdays"] = [WEEKDAYS[d] for d in self.weekdays]
        return out

    def label(self) -> str:
        days = "every day" if self.weekdays is None else ",".join(WEEKDAYS[d] for d in self.weekdays)
        return f"{self.start_hour:02d}:00-{self.end_hour:02d}:00 {days}"


@dataclass(frozen=True)
class TariffVersion:
    """Prices in force from ``effective_from`` (local date) until the next version."""

    effective_from: date
    windows: tuple[PriceWindow, ...]
    daily_charge: float = 0.0

    def price_grid(self) -> tuple[tuple[float, ...], ...]:
        """``grid[weekday][hour]`` -> price; the version must be valid (one price per slot)."""
        grid = [[math.nan] * 24 for _ in range(7)]
        for window in self.windows:
            for weekday, hour in window.slots():
                grid[weekday][hour] = window.price_per_kwh
        return tuple(tuple(row) for row in grid)

    def to_dict(self) -> dict[str, Any]:
        return {"effective_from": self.effective_from.isoformat(), "daily_charge": self.daily_charge,
                "prices": [w.to_dict() for w in self.windows]}


@dataclass(frozen=True)
class CostBreakdown:
    """Cost of one bucket: energy (hourly consumption x price) plus daily charges of whole days."""

    energy: float
    fixed: float

    @property
    def total(self) -> float:
        return self.energy + self.fixed


class Tariff:
    """A validated tariff; build it with :func:`parse_tariff`."""

    def __init__(self, currency: str, versions: Sequence[TariffVersion]):
        self.currency = currency
        self.versions = tuple(sorted(versions, key=lambda v: v.effective_from))
        self._dates = [v.effective_from for v in self.versions]
        self._grids = [v.price_grid() for v in self.versions]

    def __repr__(self) -> str:
        return f"Tariff({self.currency!r}, {len(self.versions)} versions)"

    @property
    def first_day(self) -> date:
        return self._dates[0]

    def _index_on(self, day: date) -> int | None:
        index = bisect.bisect_right(self._dates, day) - 1
        return index if index >= 0 else None

    def version_on(self, day: date) -> TariffVersion | None:
        """The version in force on local ``day``; ``None`` before the first version."""
        index = self._index_on(day)
        return None if index is None else self.versions[index]

    def price_at(self, local: datetime) -> float | None:
        """Price per kWh of the local hour starting at ``local`` (an aware local datetime)."""
        index = self._index_on(local.date())
        return None if index is None else self._grids[index][local.weekday()][local.hour]

    def daily_charge_on(self, day: date) -> float | None:
        version = self.version_on(day)
        return None if version is None else version.daily_charge

    def to_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "versions": [v.to_dict() for v in self.versions]}

    # -- cost --

    def bucket_costs(self, bounds: Sequence[datetime], hourly_kwh: Iterable[tuple[datetime, float]],
                     time_zone: str) -> list[CostBreakdown | None]:
        """Cost of each bucket ``[bounds[i], bounds[i+1])`` (aware UTC bounds of local calendar buckets).

        ``hourly_kwh`` holds (UTC hour start, kWh) pairs; hours outside the bounds are ignored. A bucket
        starting before the first version is ``None`` (no price was in force for all of it).
        """
        tz = ZoneInfo(time_zone)
        count = max(len(bounds) - 1, 0)
        energy = [0.0] * count
        for hour, kwh in hourly_kwh:
            index = bisect.bisect_right(bounds, hour) - 1
            if not 0 <= index < count:
                continue
            price = self.price_at(hour.astimezone(tz))
            if price is not None:
                energy[index] += kwh * price
        out: list[CostBreakdown | None] = []
        for index in range(count):
            start, end = bounds[index], bounds[index + 1]
            if start.astimezone(tz).date() < self.first_day:
                out.append(None)
                continue
            out.append(CostBreakdown(energy=energy[index], fixed=self._daily_charges(start, end, tz)))
        return out

    def _daily_charges(self, start: datetime, end: datetime, tz: ZoneInfo) -> float:
        """Daily charges of the local days whose whole span lies in ``[start, end)``."""
        total = 0.0
        day = start.astimezone(tz).date()
        while True:
            day_start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
            following = day + timedelta(days=1)
            day_end = datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)
            if day_start >= end:
                return total
            if day_start >= start and day_end <= end:
                total += self.daily_charge_on(day) or 0.0
            day = following


# -- parsing and validation -----------------------------------------------------------------------------


def _number(value: Any, where: str, problems: list[str], default: float | None = None) -> float | None:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{where}: must be a number, got {value!r}")
        return None
    value = float(value)
    if not math.isfinite(value):
        problems.append(f"{where}: must be a finite number")
        return None
    if value < 0:
        problems.append(f"{where}: must not be negative, got {value:g}")
        return None
    if value > MAX_PRICE:
        problems.append(f"{where}: {value:g} is implausibly large (at most {MAX_PRICE:g})")
        return None
    return value


def _hour(value: Any, where: str, problems: list[str], allow_24: bool) -> int | None:
    match = _TIME_RE.match(value) if isinstance(value, str) else None
    if not match:
        problems.append(f"{where}: must be a local time \"HH:MM\", got {value!r}")
        return None
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour == 24 and minute == 0 and second == 0:
        if allow_24:
            return 24
        problems.append(f"{where}: 24:00 is only allowed as an end time")
        return None
    if hour > 23 or minute > 59 or second > 59:
        problems.append(f"{where}: {value!r} is not a time of day")
        return None
    if minute or second:
        problems.append(f"{where}: {value!r} is not on the hour; consumption is hourly, so prices must "
                        "change on the hour")
        return None
    return hour


def _weekdays(value: Any, where: str, problems: list[str]) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: must be a non-empty list of days ({', '.join(WEEKDAYS)}) or omitted")
        return None
    days: list[int] = []
    for item in value:
        index = _WEEKDAY_ALIASES.get(item.strip().lower()) if isinstance(item, str) else None
        if index is None:
            problems.append(f"{where}: {item!r} is not a weekday ({', '.join(WEEKDAYS)})")
            return None
        if index in days:
            problems.append(f"{where}: {WEEKDAYS[index]} is listed twice")
            return None
        days.append(index)
    return tuple(sorted(days))


def _hour_ranges(hours: Sequence[int]) -> str:
    """``[0, 1, 2, 7]`` -> ``"00:00-03:00, 07:00-08:00"``."""
    parts: list[str] = []
    for hour in sorted(hours):
        if parts and parts[-1][1] == hour:
            parts[-1][1] = hour + 1
        else:
            parts.append([hour, hour + 1])
    return ", ".join(f"{a:02d}:00-{b:02d}:00" for a, b in parts)


def _slots_text(slots: Iterable[tuple[int, int]]) -> str:
    by_day: dict[int, list[int]] = {}
    for weekday, hour in slots:
        by_day.setdefault(weekday, []).append(hour)
    return "; ".join(f"{WEEKDAYS[d]} {_hour_ranges(h)}" for d, h in sorted(by_day.items()))


def _check_coverage(windows: Sequence[PriceWindow], where: str, problems: list[str]) -> None:
    owner: dict[tuple[int, int], int] = {}
    overlaps: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for index, window in enumerate(windows):
        for slot in window.slots():
            if slot in owner:
                overlaps.setdefault((owner[slot], index), []).append(slot)
            else:
                owner[slot] = index
    for (first, second), slots in overlaps.items():
        problems.append(f"{where}.prices[{first}] ({windows[first].label()}) and prices[{second}] "
                        f"({windows[second].label()}) overlap on {_slots_text(slots)}")
    missing = [(d, h) for d in range(7) for h in range(24) if (d, h) not in owner]
    if missing:
        problems.append(f"{where}: no price for {_slots_text(missing)} (every local hour of every weekday "
                        "needs exactly one price)")


def _parse_version(raw: Any, where: str, problems: list[str]) -> TariffVersion | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be an object with effective_from, prices and daily_charge")
        return None
    unknown = set(raw) - {"effective_from", "prices", "daily_charge"}
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    before = len(problems)
    effective: date | None = None
    raw_date = raw.get("effective_from")
    try:
        if not isinstance(raw_date, str) or len(raw_date) != 10:
            raise ValueError
        effective = date.fromisoformat(raw_date)
    except ValueError:
        problems.append(f"{where}.effective_from: must be a local date YYYY-MM-DD, got {raw_date!r}")
    daily = _number(raw.get("daily_charge"), f"{where}.daily_charge", problems, default=0.0)
    raw_prices = raw.get("prices")
    windows: list[PriceWindow] = []
    if not isinstance(raw_prices, list) or not raw_prices:
        problems.append(f"{where}.prices: must be a non-empty list of price windows")
    elif len(raw_prices) > MAX_WINDOWS:
        problems.append(f"{where}.prices: at most {MAX_WINDOWS} windows")
    else:
        for index, item in enumerate(raw_prices):
            at = f"{where}.prices[{index}]"
            if not isinstance(item, Mapping):
                problems.append(f"{at}: must be an object with start, end, price_per_kwh")
                continue
            extra = set(item) - {"start", "end", "price_per_kwh", "weekdays"}
            if extra:
                problems.append(f"{at}: unknown field(s) {', '.join(sorted(map(str, extra)))}")
            start = _hour(item.get("start"), f"{at}.start", problems, allow_24=False)
            end = _hour(item.get("end"), f"{at}.end", problems, allow_24=True)
            price = _number(item.get("price_per_kwh"), f"{at}.price_per_kwh", problems)
            days = _weekdays(item.get("weekdays"), f"{at}.weekdays", problems)
            if start is not None and end is not None and price is not None and (days or item.get("weekdays") is None):
                windows.append(PriceWindow(start, end, price, days))
        if len(problems) == before:
            _check_coverage(windows, where, problems)
    if len(problems) != before or effective is None or daily is None:
        return None
    return TariffVersion(effective_from=effective, windows=tuple(windows), daily_charge=daily)


def parse_tariff(raw: Any) -> Tariff:
    """Validate a tariff dict (as stored in settings); raises :class:`TariffError` listing every problem."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise TariffError(["tariff: must be an object with currency and versions"])
    unknown = set(raw) - {"currency", "versions"}
    if unknown:
        problems.append(f"tariff: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    currency = raw.get("currency")
    if not isinstance(currency, str) or not _CURRENCY_RE.match(currency):
        problems.append(f"currency: must be an ISO 4217 code of three capital letters (e.g. EUR), got {currency!r}")
    raw_versions = raw.get("versions")
    versions: list[TariffVersion] = []
    if not isinstance(raw_versions, list) or not raw_versions:
        problems.append("versions: must be a non-empty list of tariff versions")
    elif len(raw_versions) > MAX_VERSIONS:
        problems.append(f"versions: at most {MAX_VERSIONS} versions")
    else:
        for index, item in enumerate(raw_versions):
            version = _parse_version(item, f"versions[{index}]", problems)
            if version is not None:
                versions.append(version)
        seen: dict[date, int] = {}
        for version in versions:
            seen[version.effective_from] = seen.get(version.effective_from, 0) + 1
        for day, count in seen.items():
            if count > 1:
                problems.append(f"versions: {count} versions take effect on {day.isoformat()}; dates must differ")
    if problems:
        raise TariffError(problems)
    return Tariff(str(currency), versions)


# Roles whose energy is not bought at the import tariff: production, export, battery flows, other media.
UNPRICED_ROLES = frozenset({"grid_export", "solar", "battery_in", "battery_out", "gas", "water"})


def priced_factor(unit: str | None, role: str | None) -> float | None:
    """Factor to kWh when the tariff applies to an entity (energy bought from the grid), else ``None``.

    Grid import and device consumption are priced; an entity without a role (legacy data) is priced when its
    unit is energy; production, export, battery flows, gas and water are not."""
    if role in UNPRICED_ROLES:
        return None
    return kwh_factor(unit)


def kwh_factor(unit: str | None) -> float | None:
    """Factor from the entity's unit to kWh; unknown unit = kWh (legacy rows carry none); ``None`` = not energy."""
    if unit is None or unit == "":
        return 1.0
    return ENERGY_UNIT_FACTORS.get(unit)
