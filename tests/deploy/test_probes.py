"""The worker's and beat's probe server, the live queue length, and Flower's refusal to run open."""
from __future__ import annotations

import json

from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from werkzeug.test import Client

from services.cli import main
from services.common.metrics import QueueLengthCollector
from services.common.probes import probe_app


def _client(settings, **overrides):
    registry = CollectorRegistry()
    registry.register(QueueLengthCollector(overrides.get("redis_url", settings.redis_url),
                                           [settings.transform_queue]))
    return Client(probe_app(settings.model_copy(update=overrides), registry))


def test_probes_and_live_queue_length(settings, clean, redis_client):
    client = _client(settings)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and json.loads(ready.data)["checks"] == {"database": "ok", "redis": "ok"}
    redis_client.rpush(settings.transform_queue, b"m1", b"m2", b"m3")
    redis_client.rpush(settings.transform_queue + "\x06\x163", b"m4")   # a priority-3 message
    body = client.get("/metrics").get_data(as_text=True)
    assert f'cafeflow_queue_messages{{queue="{settings.transform_queue}"}} 4.0' in body
    assert "cafeflow_broker_up 1.0" in body
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and json.loads(missing.data)["error"]["code"] == "not_found"


def test_readyz_fails_with_an_unreachable_broker(settings, clean):
    client = _client(settings, redis_url="redis://127.0.0.1:1/0")
    ready = client.get("/readyz")
    assert ready.status_code == 503
    error = json.loads(ready.data)["error"]
    assert error["code"] == "not_ready" and error["details"]["redis"].startswith("unreachable")
    body = client.get("/metrics").get_data(as_text=True)
    assert "cafeflow_broker_up 0.0" in body and "cafeflow_queue_messages{" not in body


def test_flower_refuses_to_start_without_basic_auth(monkeypatch):
    for value in (None, "admin", "admin:short"):
        if value is None:
            monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
        else:
            monkeypatch.setenv("FLOWER_BASIC_AUTH", value)
        result = CliRunner().invoke(main, ["flower"])
        assert result.exit_code == 1 and "FLOWER_BASIC_AUTH" in result.output, (value, result.output)
