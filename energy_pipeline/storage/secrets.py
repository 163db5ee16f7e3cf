"""The HA token at rest, and the settings service that hides it.

Encryption: Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key derived from
``ENERGY_PIPELINE_SECRET_KEY`` by PBKDF2-HMAC-SHA256, ``_KDF_ITERATIONS`` iterations, fixed salt
``_KDF_SALT``. The salt is a fixed application constant on purpose: the key must be derivable from the
environment variable alone, in every process, without storing anything next to the ciphertext; Fernet
adds a random IV per value. Changing the salt or the iteration count makes stored tokens unreadable, so
they are part of the stored format, which is ``"fernet:" + <Fernet token>``: the prefix tells an
encrypted value from a plain one (a token saved before a key was configured stays readable).

Settings saved through the API win over environment variables, which are only the defaults; they are
read from the store on every call, so a saved change takes effect without a restart.
"""

from __future__ import annotations

import base64
import functools
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from energy_pipeline.config import Config, ConfigError, validate_http_url, validate_time_zone
from energy_pipeline.storage.documents import DocumentStore

log = logging.getLogger(__name__)

SECRET_KEY_VARIABLE = "ENERGY_PIPELINE_SECRET_KEY"
ENCRYPTED_PREFIX = "fernet:"
_KDF_SALT = b"energy_pipeline/ha_token/fernet/v1"
_KDF_ITERATIONS = 600_000  # OWASP 2023 recommendation for PBKDF2-HMAC-SHA256
HA_URL_SCHEMES = ("http", "https", "ws", "wss")
HA_URL_EXAMPLE = "http://homeassistant.local:8123"


class SecretKeyError(RuntimeError):
    """A stored secret cannot be decrypted: the secret key is missing or not the one used to save it."""

    variable = SECRET_KEY_VARIABLE


@functools.lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    """Derive the Fernet key once per process and key (PBKDF2 is deliberately slow)."""
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=_KDF_SALT, iterations=_KDF_ITERATIONS)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(secret_key.encode("utf-8"))))


def is_encrypted(value: str) -> bool:
    return value.startswith(ENCRYPTED_PREFIX)


def encrypt_token(token: str, secret_key: str) -> str:
    """``"fernet:..."``; each call gives a different value (random IV)."""
    if not secret_key:
        raise SecretKeyError(f"{SECRET_KEY_VARIABLE} is empty: cannot encrypt a token without a key")
    return ENCRYPTED_PREFIX + _fernet(secret_key).encrypt(token.encode("utf-8")).decode("ascii")


def decrypt_token(value: str, secret_key: str | None) -> str:
    """The plain token; a value without the prefix was stored plain and is returned as is."""
    if not is_encrypted(value):
        return value
    if not secret_key:
        raise SecretKeyError(f"the saved Home Assistant token is encrypted but {SECRET_KEY_VARIABLE} is not "
                             "set; set it to the key used when the token was saved, or save the token again")
    try:
        return _fernet(secret_key).decrypt(value[len(ENCRYPTED_PREFIX):].encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError, UnicodeError):
        raise SecretKeyError(
            f"the saved Home Assistant token cannot be decrypted with {SECRET_KEY_VARIABLE}: the key differs "
            "from the one used to save it; restore that key, or save the token again"
        ) from None


_UNSET: Any = object()


class SettingsService:
    """Saved settings over environment defaults; the HA token never leaves except through
    :meth:`effective_ha_token` (for the HA client)."""

    def __init__(self, store: DocumentStore, config: Config):
        self._store = store
        self._config = config

    def __repr__(self) -> str:
        return f"SettingsService(store={self._store.backend!r})"

    # -- reading --

    def get_public(self) -> dict[str, Any]:
        """What the API may show: the token only as configured or not, and where each value comes from."""
        saved = self._store.get_settings()
        ha_url, ha_url_source = self._pick(saved.get("ha_url"), self._config.ha_url)
        _, token_source = self._pick(saved.get("ha_token"), self._config.ha_token)
        time_zone, time_zone_source = self._pick(saved.get("time_zone"), self._config.time_zone)
        return {
            "ha_url": ha_url,
            "ha_url_source": ha_url_source,
            "ha_token_configured": token_source is not None,
            "ha_token_source": token_source,
            "ha_token_encrypted": bool(saved.get("ha_token")) and is_encrypted(saved["ha_token"]),
            "secret_key_configured": bool(self._config.secret_key),
            "time_zone": time_zone,
            "time_zone_source": time_zone_source,
            "tariff": saved.get("tariff"),
        }

    @staticmethod
    def _pick(saved: Any, env: Any) -> tuple[Any, str | None]:
        if saved:
            return saved, "settings"
        if env:
            return env, "environment"
        return None, None

    def effective_ha_url(self) -> str | None:
        return self._store.get_settings().get("ha_url") or self._config.ha_url

    def effective_ha_token(self) -> str | None:
        """The plain token for the HA client; raises :class:`SecretKeyError` if it cannot be decrypted."""
        saved = self._store.get_settings().get("ha_token")
        if saved:
            return decrypt_token(saved, self._config.secret_key)
        return self._config.ha_token

    def effective_time_zone(self, ha_time_zone: str | None) -> str:
        """Saved override, then ``ENERGY_PIPELINE_TIME_ZONE``, then HA's own zone, then UTC."""
        return self._store.get_settings().get("time_zone") or self._config.time_zone or ha_time_zone or "UTC"

    def tariff(self) -> dict[str, Any] | None:
        return self._store.get_settings().get("tariff")

    # -- writing --

    def update(self, *, ha_url: str | None = _UNSET, ha_token: str | None = _UNSET,
               time_zone: str | None = _UNSET, tariff: dict[str, Any] | None = _UNSET) -> dict[str, Any]:
        """Validate and save; an omitted argument is unchanged, ``None`` or ``""`` removes the saved value
        (the environment default applies again). Raises :class:`ConfigError` naming the bad field."""
        changes: dict[str, Any] = {}
        if ha_url is not _UNSET:
            url = (ha_url or "").strip() or None
            if url is not None:
                validate_http_url("ha_url", url, HA_URL_EXAMPLE, HA_URL_SCHEMES)
            changes["ha_url"] = url
        if ha_token is not _UNSET:
            token = (ha_token or "").strip() or None
            if token is not None:
                if self._config.secret_key:
                    token = encrypt_token(token, self._config.secret_key)
                else:
                    log.warning("saving the Home Assistant token unencrypted: set %s to encrypt it at rest",
                                SECRET_KEY_VARIABLE)
            changes["ha_token"] = token
        if time_zone is not _UNSET:
            zone = (time_zone or "").strip() or None
            if zone is not None:
                validate_time_zone("time_zone", zone)
            changes["time_zone"] = zone
        if tariff is not _UNSET:
            if tariff is not None and not isinstance(tariff, dict):
                raise ConfigError("tariff", f"must be an object (a JSON dict), got {type(tariff).__name__}",
                                  '{"currency": "EUR", "price_per_kwh": 0.25}')
            changes["tariff"] = tariff or None
        if changes:
            self._store.update_settings(changes)
        return self.get_public()
