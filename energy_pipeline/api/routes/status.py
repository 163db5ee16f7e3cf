"""``/api/health`` (for load balancers and compose healthchecks) and ``/api/status`` (for people).

Health is strict and cheap: 200 only when both stores answer. Status never fails because something
is down: it reports what is down, so the chart page can show it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from energy_pipeline.api.errors import ErrorResponse, redact
from energy_pipeline.api.homeassistant import HAStatusCache
from energy_pipeline.api.schemas import CheckOut, HealthOut, StatusOut, StoreHealth
from energy_pipeline.api.state import ApiState, GuardedStore, api_state, jsonable, local_iso

router = APIRouter(prefix="/api", tags=["status"])


def _stores(state: ApiState) -> list[tuple[str, str, Any]]:
    """(short name, label as in error messages, unwrapped store) of both stores."""
    out = []
    for name, store in (("timeseries", state.timeseries), ("documents", state.documents)):
        raw = store.raw if isinstance(store, GuardedStore) else store
        label = store.label if isinstance(store, GuardedStore) else f"{name} store ({raw.backend})"
        out.append((name, label, raw))
    return out


def store_health(state: ApiState) -> list[StoreHealth]:
    out = []
    for name, _, raw in _stores(state):
        try:
            raw.health()
            out.append(StoreHealth(name=name, backend=raw.backend, ok=True))
        except Exception as exc:  # any failure means "not healthy"; the message says why
            out.append(StoreHealth(name=name, backend=raw.backend, ok=False,
                                   error=redact(f"{type(exc).__name__}: {exc}", state.known_secrets())))
    return out


@router.get("/health", response_model=HealthOut, summary="Both stores answer",
            responses={503: {"model": ErrorResponse, "description": "A store (named) does not answer"}})
def health(state: ApiState = Depends(api_state)) -> Any:
    stores = store_health(state)
    failed = [s for s in stores if not s.ok]
    if failed:
        labels = {name: label for name, label, _ in _stores(state)}
        message = "; ".join(f"{labels[s.name]} is unavailable: {s.error}" for s in failed)
        return JSONResponse(status_code=503, content={
            "error": {"code": "store_unavailable", "message": message},
            "stores": [s.model_dump() for s in stores],
        })
    return HealthOut(status="ok", stores=stores)


def _safe(call: Any, default: Any) -> tuple[Any, str | None]:
    try:
        return call(), None
    except Exception as exc:  # status reports failures instead of failing
        return default, f"{type(exc).__name__}: {exc}"


def _collect(state: ApiState) -> dict[str, Any]:
    """Everything status shows that comes from the stores (run in a worker thread)."""
    zone, _ = _safe(state.time_zone, "UTC")
    tz = ZoneInfo(zone)
    stores = store_health(state)
    stream, stream_error = _safe(state.documents.get_stream_state, {})
    tracked, _ = _safe(lambda: [e.entity_id for e in state.documents.list_entities(tracked=True)], [])
    latest, latest_error = _safe(lambda: state.timeseries.latest_statistic_ts(tracked) if tracked else {}, {})
    checks, checks_error = _safe(state.documents.latest_check_results, {})

    def as_local(value: datetime) -> str:
        return local_iso(value, tz)

    stream_out = jsonable(dict(stream), as_local)
    if stream_error:
        stream_out["error"] = stream_error
    check_list = []
    for name, result in sorted(checks.items()):
        shown = jsonable(dict(result) if isinstance(result, dict) else {"result": result}, as_local)
        shown.pop("name", None)
        # written by the Dagster checks; shown as is, but the typed fields must not break the response
        passed = shown.pop("passed", None)
        checked_at = shown.pop("checked_at", None)
        check_list.append(CheckOut(name=str(name), passed=passed if isinstance(passed, bool) else None,
                                   checked_at=None if checked_at is None else str(checked_at), **shown))
    if checks_error:
        check_list.append(CheckOut(name="(unavailable)", passed=None, error=checks_error))
    latest_out = {e: (as_local(latest[e]) if e in latest else None) for e in tracked}
    try:
        url, token = state.settings.effective_ha_url(), state.settings.effective_ha_token()
        ha_problem = None
    except Exception as exc:  # undecryptable token or store down: shown, not raised
        url = token = None
        ha_problem = str(exc)
    if latest_error:
        stream_out.setdefault("statistics_error", latest_error)
    return {"time_zone": zone, "stores": stores, "stream": stream_out, "latest": latest_out, "checks": check_list,
            "ha_url": url, "ha_token": token, "ha_problem": ha_problem, "secrets": state.known_secrets()}


@router.get("/status", response_model=StatusOut, summary="Pipeline status at a glance")
async def status(request: Request, state: ApiState = Depends(api_state)) -> StatusOut:
    """HA reachability and version (probed with a short timeout, cached 30 s), the live stream's state,
    the last stored hour per tracked entity, store health and the latest result of each asset check."""
    data = await run_in_threadpool(_collect, state)
    cache: HAStatusCache = request.app.state.ha_status
    if data["ha_problem"]:
        ha: dict[str, Any] = {"configured": True, "reachable": None, "error": data["ha_problem"]}
    else:
        ha = dict(await cache.get(data["ha_url"], data["ha_token"]))
    ha["url"] = data["ha_url"]
    ha = {k: (redact(v, data["secrets"]) if isinstance(v, str) else v) for k, v in ha.items()}
    stream = {k: (redact(v, data["secrets"]) if isinstance(v, str) else v) for k, v in data["stream"].items()}
    return StatusOut(time_zone=data["time_zone"], home_assistant=ha, stream=stream,
                     latest_statistics=data["latest"], stores=data["stores"], checks=data["checks"])
