"""MongoDB backend failure modes: server down, server restarted, retry policy, URI options."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError

from energy_pipeline.storage.mongo import MongoDocumentStore, redact_hosts
from energy_pipeline.storage.timeseries import StoreError, StoreUnavailableError
from energy_pipeline_tests.conftest import free_port

PASSWORD = "s3cret-Pa55word"
ServerFactory = Callable[[], Any]  # conftest's secantus_server_factory




def test_redact_hosts_drops_credentials_and_options() -> None:
    assert redact_hosts(f"mongodb://user:{PASSWORD}@db1:27017,db2:27018/energy?authSource=admin") == (
        "db1:27017,db2:27018")
    assert redact_hosts("mongodb+srv://cluster0.example.net/?retryWrites=true") == "cluster0.example.net"
    assert redact_hosts("mongodb://localhost") == "localhost"


def test_server_down_fails_quickly_naming_host_not_password() -> None:
    port = free_port()  # nobody listens there
    store = MongoDocumentStore(f"mongodb://energy:{PASSWORD}@127.0.0.1:{port}/?authSource=admin",
                               timeouts_ms={"serverSelectionTimeoutMS": 1000, "connectTimeoutMS": 1000})
    assert PASSWORD not in repr(store)
    for operation in (store.health, store.get_settings, lambda: store.update_settings({"a": 1}),
                      store.list_entities):
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as caught:
            operation()
        elapsed = time.monotonic() - started
        assert elapsed < 1.0 + 2.0, f"took {elapsed:.1f}s with a 1s server selection timeout (no retries)"
        message = str(caught.value)
        assert f"127.0.0.1:{port}" in message
        assert "MONGODB_URI" in message
        assert PASSWORD not in message
        assert PASSWORD not in repr(caught.value)
        assert caught.value.__cause__ is None  # the driver's error (with its topology dump) is not chained
    store.close()


@pytest.mark.parametrize("uri", [
    f"mongodb://energy:{PASSWORD}@127.0.0.1:99999/",  # pymongo raises ValueError here
    f"mongodb://energy:{PASSWORD}@/",  # ConfigurationError
])
def test_bad_uri_is_a_store_error_without_password(uri: str) -> None:
    store = MongoDocumentStore(uri)
    with pytest.raises(StoreError, match="MONGODB_URI") as caught:
        store.health()
    assert not isinstance(caught.value, StoreUnavailableError)
    assert PASSWORD not in str(caught.value)


def test_server_stopped_and_restarted_operations_recover(
        secantus_server_factory: ServerFactory) -> None:
    server = secantus_server_factory()
    store = MongoDocumentStore(server.uri, database=f"ep_test_{uuid.uuid4().hex[:8]}",
                               timeouts_ms={"serverSelectionTimeoutMS": 1500, "connectTimeoutMS": 1500,
                                            "socketTimeoutMS": 5000})
    store.update_settings({"ha_url": "http://ha:8123"})
    store.update_stream_state({"status": "streaming"}, {"events_total": 1})

    server.stop()
    with pytest.raises(StoreUnavailableError, match=re.escape(f"127.0.0.1:{server.port}")):
        store.get_settings()
    with pytest.raises(StoreUnavailableError):
        store.update_stream_state({}, {"events_total": 1})

    server.start()  # same port, same on-disk storage
    deadline = time.monotonic() + 20
    while True:
        try:
            settings = store.get_settings()
            break
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert settings == {"ha_url": "http://ha:8123"}
    store.update_stream_state({}, {"events_total": 1})
    assert store.get_stream_state() == {"status": "streaming", "events_total": 2}
    store.close()


def test_restart_between_operations_is_absorbed_by_retries(
        secantus_server_factory: ServerFactory) -> None:
    """Pooled connections die with the server; the next idempotent operation reconnects by itself."""
    server = secantus_server_factory()
    store = MongoDocumentStore(server.uri, database=f"ep_test_{uuid.uuid4().hex[:8]}",
                               timeouts_ms={"serverSelectionTimeoutMS": 5000, "socketTimeoutMS": 5000})
    store.update_settings({"time_zone": "Europe/Paris"})
    server.stop()
    server.start()
    assert store.update_settings({"ha_url": "http://ha:8123"}) == {"time_zone": "Europe/Paris",
                                                                   "ha_url": "http://ha:8123"}
    assert store.get_settings()["time_zone"] == "Europe/Paris"
    store.close()


# -- retry policy, without a server ----------------------------------------------------------------------

def _offline_store() -> MongoDocumentStore:
    store = MongoDocumentStore("mongodb://127.0.0.1:1", retry_attempts=3, retry_backoff_s=0.0)
    store._schema_ready = True
    store._db = lambda: None  # type: ignore[method-assign,assignment,return-value]
    return store


def test_auto_reconnect_is_retried_a_bounded_number_of_times() -> None:
    store = _offline_store()
    calls: list[int] = []

    def flaky(_db) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise AutoReconnect("connection reset")
        return "ok"

    assert store._run(flaky) == "ok"
    assert len(calls) == 3

    calls.clear()

    def down(_db) -> None:
        calls.append(1)
        raise AutoReconnect("connection reset")

    with pytest.raises(StoreUnavailableError, match=re.escape("127.0.0.1:1")):
        store._run(down)
    assert len(calls) == 3

    calls.clear()
    with pytest.raises(StoreUnavailableError):
        store._run(down, retry=False)  # non-idempotent operations ($inc) are not retried
    assert len(calls) == 1


def test_server_selection_timeout_is_not_retried() -> None:
    store = _offline_store()
    calls: list[int] = []

    def timeout(_db) -> None:
        calls.append(1)
        raise ServerSelectionTimeoutError("no servers")

    with pytest.raises(StoreUnavailableError):
        store._run(timeout)
    assert len(calls) == 1


def test_authentication_failure_says_what_to_check() -> None:
    store = _offline_store()

    def refused(_db) -> None:
        raise OperationFailure("Authentication failed.", code=18)

    with pytest.raises(StoreError, match="credentials") as caught:
        store._run(refused)
    assert not isinstance(caught.value, StoreUnavailableError)


def test_uri_options_win_over_default_timeouts() -> None:
    store = MongoDocumentStore("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1234&retryWrites=false")
    client = store._db().client
    assert client.options.server_selection_timeout == pytest.approx(1.234)
    assert client.options.retry_writes is False
    assert client.options.pool_options.connect_timeout == pytest.approx(5.0)
    assert client.codec_options.tz_aware is True
    store.close()
    assert store._client is None
