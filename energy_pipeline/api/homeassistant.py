"""Talking to Home Assistant from the API: the connection test and the cached "is HA up" of the status.

Both connect with short timeouts (a page must not hang on a dead house) and turn every failure into a
distinct ``error_code`` with a message a person can act on. The token is never part of a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from energy_pipeline.api.errors import redact

log = logging.getLogger(__name__)

# HTTP status of the connection test per outcome: input problems are 4xx, a house that does not
# answer is a gateway problem (502/504).
STATUS_BY_CODE: dict[str | None, int] = {
    None: 200, "not_configured": 400, "invalid_url": 400, "secret_key": 400, "auth_invalid": 401,
    "unreachable": 502, "ha_error": 502, "timeout": 504, "client_unavailable": 503,
}


@dataclass
class ConnectionResult:
    ok: bool
    ha_version: str | None = None
    time_zone: str | None = None
    location_name: str | None = None
    error: str | None = None
    error_code: str | None = None

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.error_code, 502)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _failure(code: str, message: str, token: str | None) -> ConnectionResult:
    return ConnectionResult(ok=False, error=redact(message, (token,) if token else ()), error_code=code)


async def test_connection(url: str | None, token: str | None, timeout_s: float) -> ConnectionResult:
    """Connect, authenticate and ask ``get_config``; every way this can fail has its own code."""
    if not url:
        return _failure("not_configured", "no Home Assistant URL: set HA_URL or save ha_url in the settings",
                        token)
    if not token:
        return _failure("not_configured", "no Home Assistant token for this URL: set HA_TOKEN or save ha_token "
                        "in the settings, or pass ha_token (the saved token is only sent to the saved URL; "
                        "create one in HA under profile -> Security -> Long-lived access tokens)", token)
    try:
        from energy_pipeline.homeassistant import models
        from energy_pipeline.homeassistant.client import HomeAssistantClient
        from energy_pipeline.homeassistant.models import (
            CommandError,
            HomeAssistantAuthError,
            HomeAssistantConnectionError,
            HomeAssistantError,
            InvalidHomeAssistantUrlError,
        )
    except ImportError as exc:  # the client module is part of the package; this is a broken install
        return _failure("client_unavailable", f"the Home Assistant client cannot be loaded: {exc}", token)
    command_timeout: type[BaseException] | tuple[()] = getattr(models, "CommandTimeoutError", ())

    try:
        async with asyncio.timeout(timeout_s * 2 + 1):
            client = HomeAssistantClient(url, token, connect_timeout=timeout_s, command_timeout=timeout_s)
            async with client:
                config = await client.get_config()
                version = getattr(client, "ha_version", None) or config.version
        return ConnectionResult(ok=True, ha_version=version, time_zone=config.time_zone,
                                location_name=config.location_name)
    except InvalidHomeAssistantUrlError as exc:
        return _failure("invalid_url", str(exc), token)
    except HomeAssistantAuthError:
        return _failure("auth_invalid", "Home Assistant rejected the access token (auth_invalid): it is wrong, "
                        "expired or revoked; create a new long-lived access token", token)
    except TimeoutError:
        return _failure("timeout", f"Home Assistant at {url} did not answer within {timeout_s:g} s", token)
    except HomeAssistantConnectionError as exc:
        if isinstance(exc, command_timeout):
            return _failure("timeout", f"Home Assistant at {url} did not answer within {timeout_s:g} s: {exc}",
                            token)
        return _failure("unreachable", str(exc), token)
    except CommandError as exc:
        return _failure("ha_error", f"Home Assistant at {url} answered with an error: {exc}", token)
    except HomeAssistantError as exc:
        return _failure("unreachable", str(exc), token)
    except OSError as exc:
        return _failure("unreachable", f"cannot reach Home Assistant at {url}: {exc}", token)
    except ValueError as exc:  # a URL the parser refuses before the client's own check
        return _failure("invalid_url", f"invalid Home Assistant URL {url!r}: {exc}", token)


class HAStatusCache:
    """Remembers the last probe per (url, token) for ``ttl_s`` so that status polling does not hammer HA."""

    def __init__(self, ttl_s: float, timeout_s: float):
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    async def get(self, url: str | None, token: str | None) -> dict[str, Any]:
        if not url or not token:
            return {"configured": False, "reachable": None, "ha_version": None, "time_zone": None,
                    "error": "Home Assistant URL or token not configured", "checked_at": None}
        key = (url, hashlib.sha256(token.encode()).hexdigest())
        async with self._lock:
            cached = self._cache.get(key)
            if cached and time.monotonic() - cached[0] < self.ttl_s:
                return cached[1]
            result = await test_connection(url, token, self.timeout_s)
            shown = {"configured": True, "reachable": result.ok, "ha_version": result.ha_version,
                     "time_zone": result.time_zone, "error": result.error, "error_code": result.error_code,
                     "checked_at": datetime.now(UTC).isoformat()}
            self._cache = {key: (time.monotonic(), shown)}
            return shown
