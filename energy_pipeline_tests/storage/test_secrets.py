"""Token encryption at rest and the settings service (saved settings over environment defaults)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from energy_pipeline.config import Config, ConfigError
from energy_pipeline.storage.secrets import (
    ENCRYPTED_PREFIX,
    SecretKeyError,
    SettingsService,
    decrypt_token,
    encrypt_token,
)
from energy_pipeline.storage.sqlite_documents import SQLiteDocumentStore

KEY = "a-long-random-secret-key-for-tests"
OTHER_KEY = "another-long-random-secret-key-xyz"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.super-secret-ha-token"
ENV_TOKEN = "env-token-from-HA_TOKEN-abcdef"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteDocumentStore:
    return SQLiteDocumentStore(tmp_path / "documents.sqlite3")


def test_round_trip_and_format() -> None:
    first, second = encrypt_token(TOKEN, KEY), encrypt_token(TOKEN, KEY)
    assert first.startswith(ENCRYPTED_PREFIX)
    assert TOKEN not in first
    assert first != second  # random IV per value
    assert decrypt_token(first, KEY) == TOKEN
    assert decrypt_token(second, KEY) == TOKEN
    assert decrypt_token("plain-token", KEY) == "plain-token"  # saved before a key was configured
    assert decrypt_token("plain-token", None) == "plain-token"


def test_wrong_or_missing_key_is_a_clear_error() -> None:
    stored = encrypt_token(TOKEN, KEY)
    with pytest.raises(SecretKeyError, match="ENERGY_PIPELINE_SECRET_KEY") as caught:
        decrypt_token(stored, OTHER_KEY)
    assert TOKEN not in str(caught.value) and OTHER_KEY not in str(caught.value)
    with pytest.raises(SecretKeyError, match=r"ENERGY_PIPELINE_SECRET_KEY.*not set"):
        decrypt_token(stored, None)
    with pytest.raises(SecretKeyError, match="ENERGY_PIPELINE_SECRET_KEY"):
        decrypt_token(ENCRYPTED_PREFIX + "garbage", KEY)
    with pytest.raises(SecretKeyError):
        encrypt_token(TOKEN, "")


def test_token_encrypted_at_rest_and_never_public(store: SQLiteDocumentStore,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    service = SettingsService(store, Config(secret_key=KEY))
    public = service.update(ha_url="http://ha.local:8123", ha_token=TOKEN)
    stored = store.get_settings()["ha_token"]
    assert stored.startswith(ENCRYPTED_PREFIX) and TOKEN not in stored
    assert service.effective_ha_token() == TOKEN
    for shown in (public, service.get_public()):
        assert TOKEN not in repr(shown) and stored not in repr(shown)
        assert shown["ha_token_configured"] is True
        assert shown["ha_token_source"] == "settings"
        assert shown["ha_token_encrypted"] is True
        assert "ha_token" not in shown
    assert TOKEN not in repr(service) and KEY not in repr(service)
    assert TOKEN not in caplog.text


def test_without_secret_key_token_is_stored_plain_with_a_warning(
        store: SQLiteDocumentStore, caplog: pytest.LogCaptureFixture) -> None:
    service = SettingsService(store, Config())
    with caplog.at_level(logging.WARNING):
        service.update(ha_token=TOKEN)
    assert "ENERGY_PIPELINE_SECRET_KEY" in caplog.text and TOKEN not in caplog.text
    assert store.get_settings()["ha_token"] == TOKEN
    assert service.effective_ha_token() == TOKEN
    public = service.get_public()
    assert TOKEN not in repr(public)
    assert public["ha_token_encrypted"] is False and public["secret_key_configured"] is False

    # A key configured later still reads the plain value; saving again encrypts it.
    keyed = SettingsService(store, Config(secret_key=KEY))
    assert keyed.effective_ha_token() == TOKEN
    keyed.update(ha_token=TOKEN)
    assert store.get_settings()["ha_token"].startswith(ENCRYPTED_PREFIX)


def test_changed_secret_key_is_reported_but_public_view_still_works(store: SQLiteDocumentStore) -> None:
    SettingsService(store, Config(secret_key=KEY)).update(ha_token=TOKEN)
    other = SettingsService(store, Config(secret_key=OTHER_KEY))
    with pytest.raises(SecretKeyError, match="ENERGY_PIPELINE_SECRET_KEY"):
        other.effective_ha_token()
    assert other.get_public()["ha_token_configured"] is True


def test_environment_defaults_and_saved_settings_precedence(store: SQLiteDocumentStore) -> None:
    config = Config(ha_url="http://env-ha:8123", ha_token=ENV_TOKEN, time_zone="Europe/Berlin",
                    secret_key=KEY)
    service = SettingsService(store, config)
    assert service.effective_ha_url() == "http://env-ha:8123"
    assert service.effective_ha_token() == ENV_TOKEN
    assert service.effective_time_zone("America/New_York") == "Europe/Berlin"
    public = service.get_public()
    assert (public["ha_url"], public["ha_url_source"]) == ("http://env-ha:8123", "environment")
    assert public["ha_token_source"] == "environment" and ENV_TOKEN not in repr(public)
    assert (public["time_zone"], public["time_zone_source"]) == ("Europe/Berlin", "environment")

    # Saved settings win, without a restart (a fresh read on every call).
    service.update(ha_url="https://saved-ha:8123", ha_token=TOKEN, time_zone="Europe/Paris")
    assert service.effective_ha_url() == "https://saved-ha:8123"
    assert service.effective_ha_token() == TOKEN
    assert service.effective_time_zone("America/New_York") == "Europe/Paris"
    assert service.get_public()["ha_url_source"] == "settings"

    # An omitted argument is unchanged; None or "" removes the saved value: the env default is back.
    service.update(time_zone=None)
    assert service.effective_ha_url() == "https://saved-ha:8123"
    assert service.effective_time_zone("America/New_York") == "Europe/Berlin"
    service.update(ha_url="", ha_token=None)
    assert service.effective_ha_url() == "http://env-ha:8123"
    assert service.effective_ha_token() == ENV_TOKEN
    assert "ha_token" not in store.get_settings()


def test_time_zone_falls_back_to_home_assistant_then_utc(store: SQLiteDocumentStore) -> None:
    service = SettingsService(store, Config())
    assert service.effective_time_zone("America/New_York") == "America/New_York"
    assert service.effective_time_zone(None) == "UTC"
    assert service.effective_ha_url() is None and service.effective_ha_token() is None
    assert service.get_public()["ha_token_configured"] is False


def test_validation_names_the_field(store: SQLiteDocumentStore) -> None:
    service = SettingsService(store, Config())
    with pytest.raises(ConfigError, match="ha_url"):
        service.update(ha_url="ftp://ha.local")
    with pytest.raises(ConfigError, match="ha_url"):
        service.update(ha_url="not a url")
    with pytest.raises(ConfigError, match="time_zone"):
        service.update(time_zone="Mars/Olympus_Mons")
    with pytest.raises(ConfigError, match="tariff"):
        service.update(tariff=[0.25])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tariff"):
        service.update(tariff="0.25")  # type: ignore[arg-type]
    assert store.get_settings() == {}

    assert service.update(ha_url="ws://ha.local:8123/api/websocket", tariff={"price_per_kwh": 0.25})[
        "tariff"] == {"price_per_kwh": 0.25}
    assert service.tariff() == {"price_per_kwh": 0.25}
    service.update(tariff=None)
    assert service.tariff() is None
