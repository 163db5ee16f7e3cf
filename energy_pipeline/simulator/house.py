"""A deterministic simulated house whose statistics, history and live events agree with each other.

Everything derives from one cumulative meter function per entity: power is piecewise constant on
5-minute slots (seeded, counter-based noise, so any slot can be computed without the ones before
it), and the energy from the start of the history to ``t`` is a prefix sum plus a linear term.
Meters "tick" on a fixed grid per entity (a phase per entity, an interval per time segment); the
reading at a tick is the meter value rounded to the segment's precision, and HA only records a
state when it changes. Statistics are then what HA's recorder would compile from exactly those
readings: ``state`` is the last numeric reading of the bucket, ``sum`` is continuous across the
meter reset, ``change`` is the difference of sums. So the differences of the readings inside an
hour (with HA's reset rule) add up to that hour's ``change``, and live events, history and
statistics can be checked against each other in tests.

Computation is vectorised (numpy): a year of hourly rows for 20 entities takes well under a second.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from energy_pipeline.homeassistant.periods import (
    CALENDAR_PERIODS,
    FIXED_PERIOD_SECONDS,
    add_periods,
    aligned_window,
    bucket_start,
)

HA_VERSION = "2025.4.4"
US = 1_000_000
SLOT_S = 300
SLOT_US = SLOT_S * US
SLOTS_PER_DAY = 288
DAY_US = 86_400 * US
HOUR_US = 3_600 * US
NUMERIC, UNAVAILABLE, UNKNOWN = 0, 1, 2
STATE_NAMES = {UNAVAILABLE: "unavailable", UNKNOWN: "unknown"}

#: Unit conversions from the statistics unit, as HA's ``units`` parameter applies them.
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "energy": {"Wh": 1000.0, "kWh": 1.0, "MWh": 0.001, "GWh": 1e-6, "MJ": 3.6, "GJ": 0.0036, "TJ": 3.6e-6,
               "cal": 860420.65, "kcal": 860.42065, "Mcal": 0.86042065, "Gcal": 0.00086042065},
    "volume": {"m³": 1.0, "L": 1000.0, "mL": 1e6, "ft³": 35.3146667, "CCF": 0.353146667,
               "gal": 264.172052, "fl. oz.": 33814.0227},
}
_TEMPERATURE_UNITS = ("°C", "°F", "K")


def _uniform(seed: int, stream: int, index: np.ndarray | int) -> np.ndarray:
    """Counter-based uniform noise in [0, 1): the same (seed, stream, index) always gives the same value."""
    x = np.asarray(index, dtype=np.int64).astype(np.uint64)
    key = np.uint64((seed * 0x100000001B3 + stream * 0x9E3779B1 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = x * np.uint64(0x9E3779B97F4A7C15) + key
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    distance = np.abs(((hour - centre) + 12.0) % 24.0 - 12.0)
    return np.exp(-0.5 * (distance / width) ** 2)


def to_us(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no time zone")
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


def format_state(value: float) -> str:
    """HA renders a float state with ``str``: ``12.5``, ``0.0``."""
    return repr(float(value))


@dataclass(frozen=True)
class SimEntity:
    """One simulated sensor (and its statistic: the statistic id is the entity id)."""

    entity_id: str
    friendly_name: str
    role: str | None
    unit: str
    unit_class: str | None
    device_class: str
    state_class: str = "total_increasing"
    initial: float = 0.0
    precision: int | None = None  # fixed precision (temperature); meters follow the tick segments

    @property
    def has_sum(self) -> bool:
        return self.state_class != "measurement"

    @property
    def has_mean(self) -> bool:
        return self.state_class == "measurement"

    def attributes(self) -> dict[str, Any]:
        return {"state_class": self.state_class, "unit_of_measurement": self.unit,
                "device_class": self.device_class, "friendly_name": self.friendly_name}

    def metadata(self) -> dict[str, Any]:
        """Shape of ``recorder/list_statistic_ids`` and ``get_statistics_metadata`` (fixtures 05a, 06)."""
        return {"statistic_id": self.entity_id, "display_unit_of_measurement": self.unit,
                "has_mean": self.has_mean, "mean_type": 1 if self.has_mean else 0, "has_sum": self.has_sum,
                "name": None, "source": "recorder", "statistics_unit_of_measurement": self.unit,
                "unit_class": self.unit_class}


@dataclass(frozen=True, slots=True)
class Reading:
    """A state the house produced (a state change, as HA would record it)."""

    entity_id: str
    time: datetime
    state: str
    value: float | None


@dataclass(frozen=True)
class _Window:
    start: int
    end: int
    kind: int


class SimulatedHouse:
    """Grid import/export, solar, battery, gas, two devices (+N extra), a temperature sensor.

    Deterministic for a given ``seed`` and clock. ``now``/``clock`` fix time for tests; by default
    it follows the wall clock, so a live simulator keeps producing readings.
    """

    def __init__(self, *, seed: int = 1, days: float = 30, tz: str = "Europe/Berlin", now: datetime | None = None,
                 clock: Callable[[], float] | None = None, extra_devices: int = 0, water: bool = False,
                 history_interval: float = 60.0, precision: int = 4, energy_configured: bool = True,
                 grid_format: str = "flow", reset_entity: str | None = "sensor.heat_pump_energy",
                 reset_at: datetime | None = None, missing_hours: Iterable[datetime] = (),
                 compile_delay: float = 12.0, short_term_days: float = 10.0, purge_keep_days: float = 10.0,
                 unavailable_probability: float = 0.3, ensure_dst_in_history: bool = True,
                 start: datetime | None = None):
        if grid_format not in ("flow", "single"):
            raise ValueError("grid_format is 'flow' (flow_from/flow_to lists) or 'single'")
        self.seed = int(seed)
        self.tz_name = tz
        self.tz = ZoneInfo(tz)
        if now is not None:
            fixed = now.timestamp()
            self._clock: Callable[[], float] = lambda: fixed
        else:
            self._clock = clock or time.time
        self.compile_delay_us = int(compile_delay * US)
        self.short_term_us = int(short_term_days * DAY_US)
        self.purge_keep_us = int(purge_keep_days * DAY_US)
        self.unavailable_probability = unavailable_probability
        self.energy_configured = energy_configured
        self.grid_format = grid_format
        self._lock = threading.RLock()

        now_us = self.now_us()
        if start is not None:
            t0 = to_us(start) // HOUR_US * HOUR_US
        else:
            t0 = (now_us - int(days * DAY_US)) // HOUR_US * HOUR_US
            if ensure_dst_in_history:
                t0 = min(t0, self._before_last_transition(now_us))
        self.t0_us = t0
        self._base_day = t0 // DAY_US
        self._longitude = self._guess_longitude()

        self.entities: list[SimEntity] = self._build_entities(extra_devices, water)
        self._index = {e.entity_id: i for i, e in enumerate(self.entities)}
        n = len(self.entities)
        self._phase_fraction = _uniform(self.seed, 7, np.arange(n)) * 0.9

        self._seg_start = np.array([t0], dtype=np.int64)
        self._seg_dt = np.array([max(1, int(history_interval * US))], dtype=np.int64)
        self._seg_prec = np.array([precision], dtype=np.int64)

        self._power = np.zeros((n, 0))
        self._cum = np.zeros((n, 1))
        self._days_ready = 0
        self._windows: list[list[_Window]] = [[] for _ in range(n)]
        self._window_arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._missing_hours = {to_us(h) // HOUR_US * HOUR_US for h in missing_hours}
        self._prefs_override: dict[str, Any] | None = None

        self.reset_index = self._index.get(reset_entity) if reset_entity else None
        self._reset_us: int | None = None
        if self.reset_index is not None:
            wanted = to_us(reset_at) if reset_at else t0 + int((now_us - t0) * 0.6) // HOUR_US * HOUR_US + 17 * 60 * US
            wanted = min(max(wanted, t0 + HOUR_US), now_us - HOUR_US)
            self._reset_us = int(self._first_tick_at_or_after(self.reset_index, np.array([wanted]))[0])
        self._ensure(max(now_us, t0) + 2 * DAY_US)
        self._r_first = np.array([self._reading_values(i, np.array([self.first_tick(i)]))[0] for i in range(n)])
        self._reset_offset = 0.0
        if self.reset_index is not None and self._reset_us is not None:
            i = self.reset_index
            before = self._last_numeric_tick_before(i, np.array([self._reset_us]))
            self._reset_offset = float(self._reading_values(i, before)[0] - self._r_first[i])

    # -- time ------------------------------------------------------------------------------------

    def now_us(self) -> int:
        return int(self._clock() * US)

    def now(self) -> datetime:
        return from_us(self.now_us())

    @property
    def start(self) -> datetime:
        """First hour of the history."""
        return from_us(self.t0_us)

    @property
    def reset_time(self) -> datetime | None:
        return None if self._reset_us is None else from_us(self._reset_us)

    def _before_last_transition(self, now_us: int) -> int:
        """Two local days before the latest DST change within a year, so the history contains one."""
        probe = from_us(now_us)
        offset = probe.astimezone(self.tz).utcoffset()
        for _ in range(370):
            earlier = probe - timedelta(days=1)
            if earlier.astimezone(self.tz).utcoffset() != offset:
                local = (earlier - timedelta(days=1)).astimezone(self.tz)
                midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
                return to_us(midnight.replace(tzinfo=self.tz)) // HOUR_US * HOUR_US
            probe = earlier
        return now_us

    def _guess_longitude(self) -> float:
        january = datetime(2025, 1, 15, 12, tzinfo=self.tz).utcoffset() or timedelta(0)
        return 15.0 * january.total_seconds() / 3600.0 - 1.6

    def set_tick_interval(self, interval: float, *, precision: int | None = None,
                          start: datetime | None = None) -> None:
        """From ``start`` (default now) on, every entity ticks every ``interval`` seconds (the event rate)."""
        with self._lock:
            begin = max(self.now_us(), to_us(start) if start else 0, int(self._seg_start[-1]) + 1)
            self._seg_start = np.append(self._seg_start, np.int64(begin))
            self._seg_dt = np.append(self._seg_dt, np.int64(max(1, int(interval * US))))
            self._seg_prec = np.append(self._seg_prec, np.int64(self._seg_prec[-1] if precision is None
                                                                else precision))

    # -- entities ---------------------------------------------------------------------------------

    def _build_entities(self, extra_devices: int, water: bool) -> list[SimEntity]:
        def meter(entity_id: str, name: str, role: str, unit: str = "kWh", unit_class: str = "energy",
                  device_class: str = "energy", stream: int = 0) -> SimEntity:
            initial = round(float(_uniform(self.seed, 900 + stream, 0)) * 4000 + 100, 3)
            return SimEntity(entity_id, name, role, unit, unit_class, device_class, initial=initial)

        entities = [
            meter("sensor.grid_import_energy", "Grid import energy", "grid_import", stream=1),
            meter("sensor.grid_export_energy", "Grid export energy", "grid_export", stream=2),
            meter("sensor.solar_production_energy", "Solar production energy", "solar", stream=3),
            meter("sensor.battery_charge_energy", "Battery charge energy", "battery_in", stream=4),
            meter("sensor.battery_discharge_energy", "Battery discharge energy", "battery_out", stream=5),
            meter("sensor.gas_meter", "Gas meter", "gas", unit="m³", unit_class="volume", device_class="gas",
                  stream=6),
            meter("sensor.heat_pump_energy", "Heat pump energy", "device", stream=7),
            meter("sensor.dishwasher_energy", "Dishwasher energy", "device", stream=8),
        ]
        if water:
            entities.append(meter("sensor.water_meter", "Water meter", "water", unit="L", unit_class="volume",
                                  device_class="water", stream=9))
        for k in range(1, extra_devices + 1):
            entities.append(meter(f"sensor.extra_device_{k:02d}_energy", f"Extra device {k:02d} energy", "device",
                                  stream=100 + k))
        entities.append(SimEntity("sensor.outdoor_temperature", "Outdoor temperature", None, "°C", "temperature",
                                  "temperature", state_class="measurement", precision=1))
        return entities

    @property
    def meters(self) -> list[SimEntity]:
        return [e for e in self.entities if e.has_sum]

    def entity(self, entity_id: str) -> SimEntity | None:
        index = self._index.get(entity_id)
        return None if index is None else self.entities[index]

    def energy_prefs(self) -> dict[str, Any] | None:
        """``energy/get_prefs`` result (fixture 04c shape), or None when energy is not configured."""
        if self._prefs_override is not None:
            return copy.deepcopy(self._prefs_override)
        if not self.energy_configured:
            return None
        by_role: dict[str, list[SimEntity]] = {}
        for e in self.meters:
            by_role.setdefault(e.role or "", []).append(e)
        first = {role: items[0].entity_id for role, items in by_role.items()}
        if self.grid_format == "flow":
            grid: dict[str, Any] = {
                "type": "grid",
                "flow_from": [{"stat_energy_from": first["grid_import"], "stat_cost": None,
                               "entity_energy_price": None, "number_energy_price": 0.32}],
                "flow_to": [{"stat_energy_to": first["grid_export"], "stat_compensation": None,
                             "entity_energy_price": None, "number_energy_price": 0.08}],
                "cost_adjustment_day": 0.0}
        else:
            grid = {"type": "grid", "stat_energy_from": first["grid_import"], "stat_energy_to": first["grid_export"],
                    "stat_cost": None, "stat_compensation": None, "entity_energy_price": None,
                    "number_energy_price": 0.32, "entity_energy_price_export": None,
                    "number_energy_price_export": 0.08, "cost_adjustment_day": 0.0}
        sources: list[dict[str, Any]] = [
            grid,
            {"type": "solar", "stat_energy_from": first["solar"], "config_entry_solar_forecast": None},
            {"type": "battery", "stat_energy_from": first["battery_out"], "stat_energy_to": first["battery_in"]},
            {"type": "gas", "stat_energy_from": first["gas"], "stat_cost": None, "entity_energy_price": None,
             "number_energy_price": None},
        ]
        if "water" in first:
            sources.append({"type": "water", "stat_energy_from": first["water"], "stat_cost": None,
                            "entity_energy_price": None, "number_energy_price": None})
        devices: list[dict[str, Any]] = []
        for e in by_role.get("device", []):
            item: dict[str, Any] = {"stat_consumption": e.entity_id}
            if e.entity_id != "sensor.dishwasher_energy":  # HA omits name when it was not set
                item["name"] = e.friendly_name.removesuffix(" energy")
            devices.append(item)
        return {"energy_sources": sources, "device_consumption": devices}

    def save_energy_prefs(self, prefs: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            current = self.energy_prefs() or {"energy_sources": [], "device_consumption": []}
            for key in ("energy_sources", "device_consumption", "device_consumption_water"):
                if key in prefs:
                    current[key] = _coerce_prices(copy.deepcopy(prefs[key]))
            self._prefs_override = current
            return copy.deepcopy(current)

    # -- power model ------------------------------------------------------------------------------

    def _ensure(self, until_us: int) -> None:
        """Generate whole UTC days of 5-minute power until ``until_us`` is covered."""
        needed_days = int((until_us - self._base_day * DAY_US) // DAY_US) + 2
        if needed_days <= self._days_ready:
            return
        with self._lock:
            if needed_days <= self._days_ready:
                return
            first, last = self._base_day + self._days_ready, self._base_day + needed_days
            power = self._generate(first, last)
            energy = power * (SLOT_S / 3600.0)
            cum = self._cum[:, -1:] + np.cumsum(energy, axis=1)
            self._power = np.concatenate([self._power, power], axis=1)
            self._cum = np.concatenate([self._cum, cum], axis=1)
            self._generate_windows(first, last)
            self._days_ready = needed_days

    def _generate(self, first_day: int, last_day: int) -> np.ndarray:
        slots = np.arange(first_day * SLOTS_PER_DAY, last_day * SLOTS_PER_DAY, dtype=np.int64)
        n_days = last_day - first_day
        t = slots.astype(np.float64) * SLOT_S + SLOT_S / 2
        local = pd.to_datetime(t, unit="s", utc=True).tz_convert(self.tz_name)
        hour = np.asarray(local.hour, dtype=float) + np.asarray(local.minute, dtype=float) / 60.0
        local_day = np.asarray(local.year, dtype=np.int64) * 1000 + np.asarray(local.dayofyear, dtype=np.int64)
        utc_day = slots // SLOTS_PER_DAY
        winter = np.cos(2 * np.pi * ((t / 86400.0) % 365.2425 - 15.0) / 365.2425)
        seed = self.seed

        def u(stream: int, index: np.ndarray = slots) -> np.ndarray:
            return _uniform(seed, stream, index)

        temperature = self._temperature(t)
        base = 0.17 + 0.35 * _bump(hour, 7.3, 1.0) + 0.85 * _bump(hour, 19.5, 1.8) + 0.12 * u(11)
        demand = np.clip((16.0 - temperature) / 18.0, 0.0, 1.3)
        heat_pump = 0.012 + demand * 2.6 * (u(12) < 0.3 + 0.55 * np.minimum(demand, 1.0))
        heat_pump = heat_pump + 1.4 * (_bump(hour, 6.0, 0.35) > 0.5) * (u(13) < 0.8)
        run_today = u(14, local_day) < 0.7
        start_hour = 19.25 + 2.0 * u(15, local_day)
        rel = hour - start_hour
        running = run_today & (rel >= 0) & (rel < 2.0)
        dishwasher = np.where(running, np.where(rel < 0.4, 1.9, np.where(rel > 1.6, 1.5, 0.12)), 0.0005)
        extras = []
        for k in range(len([e for e in self.entities if e.entity_id.startswith("sensor.extra_device_")])):
            level = 0.03 + 0.17 * float(_uniform(seed, 300 + k, 0))
            peak = 24.0 * float(_uniform(seed, 400 + k, 0))
            extras.append(level * (0.7 + 0.6 * u(500 + k)) + 0.25 * level * _bump(hour, peak, 2.0))
        solar_hour = (t / 3600.0 + self._longitude / 15.0) % 24.0
        day_length = 12.0 - 4.2 * winter
        x = (solar_hour - (12.0 - day_length / 2)) / day_length
        shape = np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1)) ** 1.5, 0.0)
        clouds = 0.25 + 0.75 * u(16, utc_day)
        solar = 6.0 * (0.4 + 0.6 * (1 - winter) / 2) * shape * clouds * (0.85 + 0.15 * u(17))
        consumption = base + heat_pump + dishwasher + (np.sum(extras, axis=0) if extras else 0.0)
        surplus = solar - consumption
        slot_h = SLOT_S / 3600.0
        charge_e = (np.clip(surplus, 0.0, 3.0) * slot_h).reshape(n_days, SLOTS_PER_DAY)
        cum_charge = np.minimum(np.cumsum(charge_e, axis=1), 8.0)
        charge_e = np.diff(cum_charge, axis=1, prepend=0.0)
        evening = (hour >= 16.0) | (hour < 1.0)
        want_e = (np.clip(-surplus, 0.0, 2.5) * evening * slot_h).reshape(n_days, SLOTS_PER_DAY)
        cum_discharge = np.minimum(np.cumsum(want_e, axis=1), 0.92 * cum_charge)
        cum_discharge = np.maximum.accumulate(cum_discharge, axis=1)
        discharge_e = np.diff(cum_discharge, axis=1, prepend=0.0)
        charge = charge_e.reshape(-1) / slot_h
        discharge = discharge_e.reshape(-1) / slot_h
        net = consumption + charge - discharge - solar
        gas = 0.02 + (0.35 * _bump(hour, 7.0, 0.6) + 0.5 * _bump(hour, 18.5, 0.8)) * (0.7 + 0.3 * winter) * 2 * u(18)
        water = 0.003 + 0.9 * _bump(hour, 7.0, 0.4) * (u(19) < 0.6) + 0.5 * _bump(hour, 20.0, 0.7) * (u(20) < 0.5)
        series = {
            "sensor.grid_import_energy": np.maximum(net, 0.0),
            "sensor.grid_export_energy": np.maximum(-net, 0.0),
            "sensor.solar_production_energy": solar,
            "sensor.battery_charge_energy": charge,
            "sensor.battery_discharge_energy": discharge,
            "sensor.gas_meter": gas,
            "sensor.heat_pump_energy": heat_pump,
            "sensor.dishwasher_energy": dishwasher,
            "sensor.water_meter": water * 1000.0,  # L per hour
            "sensor.outdoor_temperature": np.zeros_like(t),
        }
        rows = []
        extra_k = 0
        for e in self.entities:
            if e.entity_id.startswith("sensor.extra_device_"):
                rows.append(extras[extra_k])
                extra_k += 1
            else:
                rows.append(series[e.entity_id])
        return np.vstack(rows)

    def _temperature(self, t: np.ndarray) -> np.ndarray:
        """Outdoor temperature (°C): season, day/night swing and a smooth day-to-day drift."""
        winter = np.cos(2 * np.pi * ((t / 86400.0) % 365.2425 - 15.0) / 365.2425)
        solar_hour = (t / 3600.0 + self._longitude / 15.0) % 24.0
        day = np.floor(t / 86400.0)
        frac = t / 86400.0 - day
        drift = (1 - frac) * _uniform(self.seed, 21, day.astype(np.int64)) + frac * _uniform(
            self.seed, 21, day.astype(np.int64) + 1)
        return 10.0 - 9.0 * winter + 4.5 * np.sin(2 * np.pi * (solar_hour - 9.0) / 24.0) + 6.0 * (drift - 0.5)

    def _generate_windows(self, first_day: int, last_day: int) -> None:
        """A few short unavailable/unknown spells, always inside minutes 20-42 of an hour."""
        days = np.arange(first_day, last_day, dtype=np.int64)
        reset_day = None if self._reset_us is None else self._reset_us // DAY_US
        for i, entity in enumerate(self.entities):
            if not entity.has_sum:
                continue
            chance = _uniform(self.seed, 600 + i, days)
            hours = np.floor(_uniform(self.seed, 700 + i, days) * 24).astype(np.int64)
            minutes = 20 + np.floor(_uniform(self.seed, 800 + i, days) * 14).astype(np.int64)
            lengths = 1 + np.floor(_uniform(self.seed, 1000 + i, days) * 8).astype(np.int64)
            kinds = np.where(_uniform(self.seed, 1100 + i, days) < 0.3, UNKNOWN, UNAVAILABLE)
            for d, c, h, m, n, k in zip(days.tolist(), chance.tolist(), hours.tolist(), minutes.tolist(),
                                        lengths.tolist(), kinds.tolist(), strict=True):
                if c >= self.unavailable_probability or d <= self._base_day:
                    continue
                if i == self.reset_index and reset_day is not None and abs(d - reset_day) <= 1:
                    continue
                start = d * DAY_US + h * HOUR_US + m * 60 * US
                self._windows[i].append(_Window(start, start + n * 60 * US, k))
        self._window_arrays = None

    def windows(self, entity_id: str) -> list[tuple[datetime, datetime, str]]:
        """Unavailable/unknown spells of an entity as (start, end, state) (for tests and docs)."""
        i = self._index[entity_id]
        return [(from_us(w.start), from_us(w.end), STATE_NAMES[w.kind]) for w in self._windows[i]]

    def _window_array(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arrays = self._window_arrays
        if arrays is None:
            arrays = [(np.array([w.start for w in ws], dtype=np.int64), np.array([w.end for w in ws], dtype=np.int64),
                       np.array([w.kind for w in ws], dtype=np.int64)) for ws in self._windows]
            self._window_arrays = arrays
        return arrays[i]

    # -- ticks --------------------------------------------------------------------------------------

    def _phase(self, i: int, seg: np.ndarray) -> np.ndarray:
        return (self._phase_fraction[i] * self._seg_dt[seg]).astype(np.int64)

    def first_tick(self, i: int) -> int:
        return int(self._seg_start[0] + self._phase(i, np.array([0]))[0])

    def _last_tick_before(self, i: int, limit: np.ndarray) -> np.ndarray:
        """Latest tick strictly before each ``limit`` (int64 µs); -1 where there is none."""
        limit = np.asarray(limit, dtype=np.int64)
        seg = np.searchsorted(self._seg_start, limit, side="left") - 1
        valid = seg >= 0
        seg_c = np.maximum(seg, 0)
        first = self._seg_start[seg_c] + self._phase(i, seg_c)
        dt = self._seg_dt[seg_c]
        k = np.floor_divide(limit - 1 - first, dt)
        out = first + k * dt
        early = valid & (k < 0)
        if early.any():
            prev = seg_c[early] - 1
            has_prev = prev >= 0
            prev_c = np.maximum(prev, 0)
            pfirst = self._seg_start[prev_c] + self._phase(i, prev_c)
            pk = np.floor_divide(self._seg_start[seg_c[early]] - 1 - pfirst, self._seg_dt[prev_c])
            cand = pfirst + pk * self._seg_dt[prev_c]
            out[early] = np.where(has_prev & (pk >= 0), cand, -1)
        out[~valid] = -1
        return out

    def _first_tick_at_or_after(self, i: int, limit: np.ndarray) -> np.ndarray:
        limit = np.asarray(limit, dtype=np.int64)
        seg = np.maximum(np.searchsorted(self._seg_start, limit, side="right") - 1, 0)
        first = self._seg_start[seg] + self._phase(i, seg)
        dt = self._seg_dt[seg]
        k = np.maximum(0, -np.floor_divide(first - limit, dt))
        out = first + k * dt
        nxt = seg + 1
        beyond = nxt < len(self._seg_start)
        if beyond.any():
            nxt_c = np.minimum(nxt, len(self._seg_start) - 1)
            seg_end = self._seg_start[nxt_c]
            over = beyond & (out >= seg_end)
            out = np.where(over, seg_end + self._phase(i, nxt_c), out)
        return out

    def _ticks_in(self, i: int, start: int, end: int) -> np.ndarray:
        """Tick times in ``[start, end)``."""
        parts = []
        bounds = np.append(self._seg_start, np.iinfo(np.int64).max)
        for s in range(len(self._seg_start)):
            lo, hi = max(start, int(bounds[s])), min(end, int(bounds[s + 1]))
            if lo >= hi:
                continue
            first = int(self._seg_start[s] + self._phase(i, np.array([s]))[0])
            dt = int(self._seg_dt[s])
            k0 = max(0, -((first - lo) // dt))
            k1 = max(0, -((first - hi) // dt))
            if k1 > k0:
                parts.append(first + np.arange(k0, k1, dtype=np.int64) * dt)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    # -- values -------------------------------------------------------------------------------------

    def _energy(self, i: int, t: np.ndarray) -> np.ndarray:
        """Meter energy from the start of the history to ``t`` (kWh or the meter's unit)."""
        if t.size == 0:
            return np.zeros(0)
        self._ensure(int(t.max()))
        offset = t - self._base_day * DAY_US
        slot = offset // SLOT_US
        frac = (offset - slot * SLOT_US) / SLOT_US
        start_slot = (self.t0_us - self._base_day * DAY_US) // SLOT_US
        cum = self._cum[i]
        power = self._power[i]
        return cum[slot] - cum[start_slot] + power[slot] * frac * (SLOT_S / 3600.0)

    def _precision_at(self, i: int, t: np.ndarray) -> np.ndarray:
        entity = self.entities[i]
        if entity.precision is not None:
            return np.full(t.shape, entity.precision, dtype=np.int64)
        seg = np.maximum(np.searchsorted(self._seg_start, t, side="right") - 1, 0)
        return self._seg_prec[seg]

    def _reading_values(self, i: int, t: np.ndarray) -> np.ndarray:
        """Rounded reading at tick times ``t``, ignoring unavailable spells."""
        t = np.asarray(t, dtype=np.int64)
        entity = self.entities[i]
        if entity.has_mean:
            raw = self._temperature(t / US)
        else:
            energy = self._energy(i, t)
            raw = entity.initial + energy
            if i == self.reset_index and self._reset_us is not None:
                at_reset = self._energy(i, np.array([self._reset_us], dtype=np.int64))[0]
                raw = np.where(t >= self._reset_us, energy - at_reset, raw)
        scale = 10.0 ** self._precision_at(i, t)
        return np.round(raw * scale) / scale

    def _kinds(self, i: int, t: np.ndarray) -> np.ndarray:
        starts, ends, kinds = self._window_array(i)
        out = np.zeros(t.shape, dtype=np.int64)
        if starts.size == 0 or t.size == 0:
            return out
        w = np.searchsorted(starts, t, side="right") - 1
        inside = (w >= 0) & (t < ends[np.maximum(w, 0)])
        out[inside] = kinds[np.maximum(w, 0)][inside]
        return out

    def _last_numeric_tick_before(self, i: int, limit: np.ndarray) -> np.ndarray:
        ticks = self._last_tick_before(i, limit)
        starts, ends, _ = self._window_array(i)
        if starts.size:
            w = np.searchsorted(starts, ticks, side="right") - 1
            inside = (ticks >= 0) & (w >= 0) & (ticks < ends[np.maximum(w, 0)])
            if inside.any():
                ticks = ticks.copy()
                ticks[inside] = self._last_tick_before(i, starts[w[inside]])
        return ticks

    def _sums(self, i: int, ticks: np.ndarray, readings: np.ndarray) -> np.ndarray:
        """HA's running ``sum`` at numeric ticks: continuous across the meter reset."""
        sums = readings - self._r_first[i]
        if i == self.reset_index and self._reset_us is not None:
            sums = np.where(ticks >= self._reset_us, readings + self._reset_offset, sums)
        return sums

    def _states(self, i: int, ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._kinds(i, ticks), self._reading_values(i, ticks)

    # -- readings (live events, history) -------------------------------------------------------------

    def _changes(self, i: int, start: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, float]:
        """State changes in ``[start, end)``: times, kinds, values, plus the state before ``start``."""
        ticks = self._ticks_in(i, start, end)
        before = self._last_tick_before(i, np.array([start], dtype=np.int64))[0]
        if before >= 0:
            ticks = np.concatenate([[before], ticks])
        kinds, values = self._states(i, ticks)
        if ticks.size == 0:
            return ticks, kinds, values, -1, math.nan
        changed = np.ones(ticks.shape, dtype=bool)
        changed[1:] = (kinds[1:] != kinds[:-1]) | ((kinds[1:] == NUMERIC) & (values[1:] != values[:-1]))
        if before >= 0:
            # the state in force at ``start`` is the last change at or before ``before``
            prev_kind, prev_value = int(kinds[0]), float(values[0])
            ticks, kinds, values, changed = ticks[1:], kinds[1:], values[1:], changed[1:]
            code = prev_kind
        else:
            code, prev_value = -1, math.nan
        keep = changed
        return ticks[keep], kinds[keep], values[keep], code, prev_value

    def readings(self, entity_ids: Iterable[str] | None = None, start: datetime | None = None,
                 end: datetime | None = None) -> list[Reading]:
        """State changes produced in ``[start, end)`` (default: the whole history up to now), by time."""
        now = self.now_us()
        lo = self.t0_us if start is None else max(self.t0_us, to_us(start))
        hi = now + 1 if end is None else min(to_us(end), now + 1)
        out: list[Reading] = []
        for entity_id in entity_ids if entity_ids is not None else [e.entity_id for e in self.entities]:
            i = self._index[entity_id]
            ticks, kinds, values, _, _ = self._changes(i, lo, hi)
            out.extend(Reading(entity_id, from_us(t), STATE_NAMES.get(k) or format_state(v),
                               None if k else float(v))
                       for t, k, v in zip(ticks.tolist(), kinds.tolist(), values.tolist(), strict=True))
        out.sort(key=lambda r: (r.time, r.entity_id))
        return out

    def changes_between(self, start_us: int, end_us: int) -> list[tuple[int, int, str, str | None]]:
        """Live feed: ``(time_us, entity index, new state, previous state)`` for changes in ``(start, end]``."""
        out: list[tuple[int, int, str, str | None]] = []
        for i in range(len(self.entities)):
            ticks, kinds, values, code, prev_value = self._changes(i, start_us + 1, end_us + 1)
            if ticks.size == 0:
                continue
            previous = None if code < 0 else (STATE_NAMES.get(code) or format_state(prev_value))
            for t, k, v in zip(ticks.tolist(), kinds.tolist(), values.tolist(), strict=True):
                state = STATE_NAMES.get(k) or format_state(v)
                out.append((t, i, state, previous))
                previous = state
        out.sort(key=lambda item: (item[0], item[1]))
        return out

    def next_tick_after(self, t_us: int) -> int:
        """Earliest tick of any entity after ``t_us`` (to sleep exactly until the next event)."""
        probe = np.array([t_us + 1], dtype=np.int64)
        return int(min(self._first_tick_at_or_after(i, probe)[0] for i in range(len(self.entities))))

    def state_at(self, entity_id: str, at: datetime | None = None) -> tuple[str, datetime] | None:
        """The state in force at ``at`` (default now) and when it was set."""
        i = self._index[entity_id]
        limit = (self.now_us() if at is None else to_us(at)) + 1
        seg = max(0, int(np.searchsorted(self._seg_start, limit, side="right")) - 1)
        span = 2_000 * int(self._seg_dt[seg])
        while True:  # widen the look-back until a change is found (fast ticks make a day huge)
            lo = max(self.t0_us, limit - span)
            ticks, kinds, values, _, _ = self._changes(i, lo, limit)
            if ticks.size:
                return STATE_NAMES.get(int(kinds[-1])) or format_state(values[-1]), from_us(int(ticks[-1]))
            if lo <= self.t0_us:
                return None
            span *= 10

    def history(self, entity_ids: Iterable[str], start: datetime, end: datetime | None, *,
                include_start_time_state: bool = True, minimal_response: bool = False,
                no_attributes: bool = False) -> dict[str, list[dict[str, Any]]]:
        """``history/history_during_period`` result in HA's compressed format (fixtures 09a/09b).

        Raw states older than ``purge_keep_days`` are gone, as after HA's nightly purge.
        """
        now = self.now_us()
        lo = max(to_us(start), now - self.purge_keep_us)
        hi = now + 1 if end is None else min(to_us(end), now + 1)
        result: dict[str, list[dict[str, Any]]] = {}
        if lo > now or lo >= hi:
            return result
        for entity_id in entity_ids:
            i = self._index.get(entity_id)
            if i is None:
                continue
            entity = self.entities[i]
            attributes = {} if no_attributes else entity.attributes()
            ticks, kinds, values, code, prev_value = self._changes(i, max(lo, self.t0_us), hi)
            entries: list[dict[str, Any]] = []
            if include_start_time_state and code >= 0:
                entries.append({"s": STATE_NAMES.get(code) or format_state(prev_value), "a": attributes,
                                "lu": lo / US})
            for t, k, v in zip(ticks.tolist(), kinds.tolist(), values.tolist(), strict=True):
                entries.append({"s": STATE_NAMES.get(k) or format_state(v), "a": attributes, "lu": t / US})
            if minimal_response:
                entries = [entries[0]] + [{"s": e["s"], "lu": e["lu"]} for e in entries[1:]] if entries else []
                if no_attributes and entries:
                    entries[0] = {"s": entries[0]["s"], "lu": entries[0]["lu"]}
            if entries:
                result[entity_id] = entries
        return result

    # -- statistics ---------------------------------------------------------------------------------

    def metadata(self, statistic_ids: Iterable[str] | None = None,
                 statistic_type: str | None = None) -> list[dict[str, Any]]:
        wanted = None if statistic_ids is None else set(statistic_ids)
        out = []
        for e in self.entities:
            if wanted is not None and e.entity_id not in wanted:
                continue
            if (statistic_type == "sum" and not e.has_sum) or (statistic_type == "mean" and not e.has_mean):
                continue
            out.append(e.metadata())
        return out

    def _table_rows(self, i: int, period_us: int, first: int, last: int) -> dict[str, np.ndarray]:
        """Rows of the hourly (or 5-minute) table with start in ``[first, last]`` (aligned)."""
        starts = np.arange(first, last + 1, period_us, dtype=np.int64) if last >= first else np.zeros(
            0, dtype=np.int64)
        entity = self.entities[i]
        first_tick = self.first_tick(i)
        ends = starts + period_us
        exists = ends > first_tick
        if period_us == HOUR_US and self._missing_hours:
            exists &= ~np.isin(starts, np.fromiter(self._missing_hours, dtype=np.int64))
        if entity.has_mean:
            minute = 60 * US
            samples = starts[:, None] + (np.arange(period_us // minute, dtype=np.int64) * minute)[None, :]
            temps = np.round(self._temperature(samples / US) * 10) / 10 if starts.size else np.zeros((0, 1))
            return {"start": starts[exists], "mean": temps.mean(axis=1)[exists], "min": temps.min(axis=1)[exists],
                    "max": temps.max(axis=1)[exists]}
        ticks = self._last_numeric_tick_before(i, ends)
        exists &= ticks >= first_tick
        starts_w, ends_w, _ = self._window_array(i)
        if starts_w.size and starts.size:
            at_start = self._last_tick_before(i, starts + 1)
            w = np.searchsorted(starts_w, at_start, side="right") - 1
            wc = np.maximum(w, 0)
            unavailable_at_start = (w >= 0) & (at_start >= 0) & (at_start < ends_w[wc])
            resumes = self._first_tick_at_or_after(i, ends_w[wc])
            exists &= ~(unavailable_at_start & (resumes >= ends))
        ticks, starts = ticks[exists], starts[exists]
        readings = self._reading_values(i, ticks)
        return {"start": starts, "state": readings, "sum": self._sums(i, ticks, readings)}

    def _table_bounds(self, period_us: int) -> tuple[int, int]:
        """First and last row start present in a table now (compile delay, 5-minute retention)."""
        now = self.now_us()
        compiled_end = (now - self.compile_delay_us) // period_us * period_us
        first = self.t0_us
        if period_us != HOUR_US:
            first = max(first, (now - self.short_term_us) // period_us * period_us + period_us)
        return first, compiled_end - period_us

    def statistics_during_period(self, statistic_ids: Iterable[str], start: datetime, end: datetime | None,
                                 period: str, types: Iterable[str] | None = None,
                                 units: dict[str, str] | None = None) -> dict[str, list[dict[str, Any]]]:
        """``recorder/statistics_during_period`` as HA 2025.4 answers it (fixtures 07a-07j)."""
        requested = [e for sid in dict.fromkeys(statistic_ids) if (e := self.entity(sid)) is not None]
        if not requested:
            return {}
        wanted = {"change", "last_reset", "max", "mean", "min", "state", "sum"} if types is None else set(types)
        columns = {"sum" if t == "change" else t for t in wanted}
        if not any(e.has_mean for e in requested):
            columns -= {"mean", "min", "max"}
        if not any(e.has_sum for e in requested):
            columns -= {"sum", "state"}
        start_a, end_a = aligned_window(start, end, period, self.tz)
        period_us = FIXED_PERIOD_SECONDS.get(period, 3600) * US
        lo = to_us(start_a)
        hi = to_us(end_a) if end_a is not None else None
        table_first, table_last = self._table_bounds(period_us)
        first = max(table_first, -(-lo // period_us) * period_us)
        last = table_last if hi is None else min(table_last, -(-hi // period_us) * period_us - period_us)
        result: dict[str, list[dict[str, Any]]] = {}
        for entity in requested:
            i = self._index[entity.entity_id]
            rows = self._table_rows(i, period_us, first, last)
            if rows["start"].size == 0:
                continue
            if period in CALENDAR_PERIODS:
                rows = self._reduce(rows, period)
            prev_sum = 0.0
            if "change" in wanted and entity.has_sum:
                prev_sum = self._sum_before(i, period_us, lo, table_first)
            result[entity.entity_id] = self._render(entity, rows, period, period_us, columns, wanted, prev_sum,
                                                    units or {})
        return result

    def _sum_before(self, i: int, period_us: int, limit: int, table_first: int) -> float:
        """Sum of the last table row starting before ``limit`` (HA's ``_statistics_at_time``), else 0."""
        last = -(-limit // period_us) * period_us - period_us
        first = max(table_first, last - 64 * period_us)
        if last < first:
            return 0.0
        rows = self._table_rows(i, period_us, first, last)
        return float(rows["sum"][-1]) if rows["start"].size else 0.0

    def _reduce(self, rows: dict[str, np.ndarray], period: str) -> dict[str, np.ndarray]:
        """HA's ``_reduce_statistics``: last state/sum per local bucket, mean of means, min, max."""
        starts = rows["start"]
        local = pd.to_datetime(starts // US, unit="s", utc=True).tz_convert(self.tz_name)
        keys = np.asarray(local.year, dtype=np.int64) * 10000 + np.asarray(local.month, dtype=np.int64) * 100 + \
            np.asarray(local.day, dtype=np.int64)
        unique_days, inverse = np.unique(keys, return_inverse=True)
        day_bucket = np.array([to_us(bucket_start(datetime(k // 10000, k // 100 % 100, k % 100, 12, tzinfo=self.tz),
                                                  period, self.tz)) for k in unique_days.tolist()], dtype=np.int64)
        bucket = day_bucket[inverse]
        change_at = np.flatnonzero(np.diff(bucket)) + 1
        group_first = np.concatenate([[0], change_at])
        group_last = np.concatenate([change_at - 1, [bucket.size - 1]])
        out = {"start": bucket[group_first]}
        for key in ("state", "sum"):
            if key in rows:
                out[key] = rows[key][group_last]
        if "mean" in rows:
            out["mean"] = np.add.reduceat(rows["mean"], group_first) / np.diff(np.append(group_first, bucket.size))
            out["min"] = np.minimum.reduceat(rows["min"], group_first)
            out["max"] = np.maximum.reduceat(rows["max"], group_first)
        return out

    def _render(self, entity: SimEntity, rows: dict[str, np.ndarray], period: str, period_us: int,
                columns: set[str], wanted: set[str], prev_sum: float,
                units: dict[str, str]) -> list[dict[str, Any]]:
        starts = rows["start"]
        if period in CALENDAR_PERIODS:
            ends = np.array([to_us(add_periods(from_us(s), period, 1, self.tz)) for s in starts.tolist()],
                            dtype=np.int64)
        else:
            ends = starts + period_us
        convert = self._converter(entity, units)
        n = starts.size
        none = [None] * n
        values: dict[str, list[Any]] = {}
        for key in ("mean", "min", "max", "state", "sum"):
            if key in columns:
                values[key] = [convert(v) for v in rows[key].tolist()] if key in rows else none
        if "last_reset" in columns:
            values["last_reset"] = none
        change: list[Any] = none
        if "change" in wanted and "sum" in rows:
            sums = rows["sum"]
            diffs = np.diff(sums, prepend=prev_sum)
            change = [convert(v) for v in diffs.tolist()]
            if convert is not _identity:  # HA converts the sums, then subtracts
                converted = [convert(v) for v in sums.tolist()]
                previous = convert(prev_sum)
                change = []
                for value in converted:
                    change.append(value - previous)
                    previous = value
        start_ms = (starts // 1000).tolist()
        end_ms = (ends // 1000).tolist()
        keys = [k for k in ("sum", "state", "mean", "min", "max", "last_reset") if k in values]
        out = []
        include_change = "change" in wanted
        for r in range(n):
            row: dict[str, Any] = {"start": start_ms[r], "end": end_ms[r]}
            for key in keys:
                row[key] = values[key][r]
            if include_change:
                row["change"] = change[r]
            out.append(row)
        if "sum" not in wanted:
            for row in out:
                row.pop("sum", None)
        return out

    def _converter(self, entity: SimEntity, units: dict[str, str]) -> Callable[[float | None], float | None]:
        target = units.get(entity.unit_class or "")
        if not target or target == entity.unit:
            return _identity
        if entity.unit_class in UNIT_FACTORS and target in UNIT_FACTORS[entity.unit_class]:
            factor = UNIT_FACTORS[entity.unit_class][target] / UNIT_FACTORS[entity.unit_class][entity.unit]
            return lambda v: None if v is None else v * factor
        if entity.unit_class == "temperature" and target in _TEMPERATURE_UNITS:
            if target == "°F":
                return lambda v: None if v is None else v * 9 / 5 + 32
            return lambda v: None if v is None else v + 273.15
        return _identity

    def statistic_during_period(self, statistic_id: str, start: datetime | None, end: datetime | None,
                                types: Iterable[str] | None = None,
                                units: dict[str, str] | None = None) -> dict[str, Any]:
        """``recorder/statistic_during_period`` (one aggregate; fixture 10)."""
        wanted = set(types) if types is not None else {"max", "mean", "min", "change"}
        entity = self.entity(statistic_id)
        result: dict[str, Any] = {}
        if entity is None:
            return result
        i = self._index[statistic_id]
        convert = self._converter(entity, units or {})
        now = self.now_us()
        lo = self.t0_us if start is None else to_us(start)
        hi = now if end is None else min(to_us(end), now)
        if wanted & {"max", "mean", "min"}:
            if entity.has_mean and hi > lo:
                samples = np.arange(lo, hi, 60 * US, dtype=np.int64)
                temps = np.round(self._temperature(samples / US) * 10) / 10
                stats = {"max": temps.max(), "mean": temps.mean(), "min": temps.min()}
            else:
                stats = {"max": None, "mean": None, "min": None}
            for key in ("max", "mean", "min"):
                if key in wanted:
                    result[key] = convert(None if stats[key] is None else float(stats[key]))
        if "change" in wanted:
            if not entity.has_sum:
                result["change"] = None
            else:
                compiled = (now - self.compile_delay_us) // SLOT_US * SLOT_US
                newest = self._sum_at(i, min(hi, compiled))
                oldest = self._sum_at(i, lo)
                result["change"] = convert(newest - oldest)
        return result

    def _sum_at(self, i: int, limit_us: int) -> float:
        ticks = self._last_numeric_tick_before(i, np.array([limit_us], dtype=np.int64))
        if ticks[0] < self.first_tick(i):
            return 0.0
        readings = self._reading_values(i, ticks)
        return float(self._sums(i, ticks, readings)[0])


def _identity(value: float | None) -> float | None:
    return value


_FLOAT_KEYS = frozenset({"cost_adjustment_day", "number_energy_price", "number_energy_price_export"})


def _coerce_prices(value: Any) -> Any:
    """HA stores prices and the daily cost adjustment as floats (``0`` comes back as ``0.0``)."""
    if isinstance(value, list):
        return [_coerce_prices(v) for v in value]
    if isinstance(value, dict):
        return {k: float(v) if k in _FLOAT_KEYS and isinstance(v, int | float) and not isinstance(v, bool)
                else _coerce_prices(v) for k, v in value.items()}
    return value
