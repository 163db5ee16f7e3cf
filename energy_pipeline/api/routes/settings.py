"""``/api/settings``: Home Assistant connection, time zone override and tariff.

Everything goes through :class:`SettingsService`, which every process reads on each use, so a saved
change is picked up by the next Dagster run and the stream without a restart. The token is
write-only: responses say whether one is configured, never what it is.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from energy_pipeline.api.errors import ERROR_RESPONSES, ApiError
from energy_pipeline.api.homeassistant import ConnectionResult, test_connection
from energy_pipeline.api.schemas import ConnectionIn, ConnectionOut, SettingsIn, SettingsOut
from energy_pipeline.api.state import ApiState, api_state
from energy_pipeline.storage.secrets import SecretKeyError
from energy_pipeline.tariffs import TariffError, parse_tariff

router = APIRouter(prefix="/api/settings", tags=["settings"], responses=ERROR_RESPONSES)


def public_settings(state: ApiState) -> SettingsOut:
    shown = state.settings.get_public()
    ha_zone = state.documents.get_settings().get("ha_time_zone")
    shown.pop("ha_token", None)  # defensive: the service never returns it
    return SettingsOut(**shown, ha_time_zone=ha_zone if isinstance(ha_zone, str) else None,
                       effective_time_zone=state.time_zone())


@router.get("", response_model=SettingsOut, summary="Current settings (token masked)")
def get_settings(state: ApiState = Depends(api_state)) -> SettingsOut:
    """Each value with its source (``settings`` = saved here, ``environment`` = the default)."""
    return public_settings(state)


@router.put("", response_model=SettingsOut, summary="Save settings")
def put_settings(body: SettingsIn, state: ApiState = Depends(api_state)) -> SettingsOut:
    """Only the fields present change; ``null`` or ``""`` removes the saved value. The tariff is validated
    (every problem listed) and saved normalised; see ``energy_pipeline.tariffs`` for its shape."""
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if changes.get("tariff"):
        try:
            changes["tariff"] = parse_tariff(changes["tariff"]).to_dict()
        except TariffError as exc:
            raise ApiError(400, "invalid_tariff", str(exc)) from None
    if changes:
        try:
            state.settings.update(**changes)
        except ValueError as exc:  # ConfigError names the field; urlparse may refuse a URL on its own
            raise ApiError(400, "invalid_setting", str(exc)) from None
    return public_settings(state)


def _effective(state: ApiState, body: ConnectionIn | None) -> tuple[str | None, str | None]:
    """URL and token to try: the body's, else the saved/environment ones. The saved token is only ever sent
    to the saved URL: testing another URL needs its token in the body (else anyone could ask the API to
    hand the token to a host of their choosing)."""
    saved_url = state.settings.effective_ha_url()
    url = body.ha_url if body and body.ha_url else saved_url
    if body and body.ha_token:
        return url, body.ha_token
    if url != saved_url:
        return url, None
    return url, state.settings.effective_ha_token()


@router.post("/test-connection", response_model=ConnectionOut, summary="Try the Home Assistant connection",
             responses={
                 400: {"model": ConnectionOut, "description": "Not configured, invalid URL or undecryptable token"},
                 401: {"model": ConnectionOut, "description": "Home Assistant rejected the token"},
                 502: {"model": ConnectionOut, "description": "Home Assistant unreachable"},
                 504: {"model": ConnectionOut, "description": "Home Assistant did not answer in time"},
             })
async def post_test_connection(body: ConnectionIn | None = Body(default=None),
                               state: ApiState = Depends(api_state)) -> JSONResponse:
    """Connects with a short timeout and asks for HA's config. Without a body (or for fields left out) the
    saved settings, then the environment, are used. Failures keep the ``{ok: false, error, error_code}``
    shape, with ``error_code`` one of not_configured, invalid_url, auth_invalid, unreachable, timeout."""
    try:
        url, token = await run_in_threadpool(_effective, state, body)
    except SecretKeyError as exc:
        result = ConnectionResult(ok=False, error=str(exc), error_code="secret_key")
    else:
        result = await test_connection(url, token, state.ha_timeout_s)
    return JSONResponse(status_code=result.status, content=ConnectionOut(**result.to_dict()).model_dump())
