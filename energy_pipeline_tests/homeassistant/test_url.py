"""``normalize_url``: the accepted forms of HA_URL and a helpful error for everything else."""

from __future__ import annotations

import pytest

from energy_pipeline.homeassistant.client import normalize_url
from energy_pipeline.homeassistant.models import InvalidHomeAssistantUrlError


@pytest.mark.parametrize("given,expected", [
    ("http://homeassistant.local:8123", "ws://homeassistant.local:8123/api/websocket"),
    ("http://homeassistant.local:8123/", "ws://homeassistant.local:8123/api/websocket"),
    ("https://ha.example.com", "wss://ha.example.com/api/websocket"),
    ("ws://192.168.1.5:8123/api/websocket", "ws://192.168.1.5:8123/api/websocket"),
    ("wss://ha.example.com/api/websocket/", "wss://ha.example.com/api/websocket"),
    ("  HTTP://[::1]:8123  ", "ws://[::1]:8123/api/websocket"),
    ("https://ha.example.com:8443/api/websocket", "wss://ha.example.com:8443/api/websocket"),
])
def test_accepted_forms(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("given", ["", "homeassistant.local:8123", "ftp://ha:8123", "http://", "http://ha:99999",
                                   "http://ha:8123/lovelace", "http://ha:8123/?x=1", "ws://ha:8123/api/websocket#x",
                                   "http://user:secret@ha:8123"])
def test_everything_else_lists_the_accepted_forms(given: str) -> None:
    with pytest.raises(InvalidHomeAssistantUrlError) as caught:
        normalize_url(given)
    message = str(caught.value)
    for form in ("http://HOST:8123", "https://HOST", "ws://HOST:8123/api/websocket", "wss://HOST/api/websocket"):
        assert form in message
    assert "secret" not in message
    assert isinstance(caught.value, ValueError)
