"""The worker's /healthz follows its consumer loop, not just its probe thread."""
from __future__ import annotations

import time

import httpx
from prometheus_client import CollectorRegistry
from werkzeug.test import Client

from services.common.probes import probe_app
from services.transform.liveness import TICK_SECONDS, ConsumerHeartbeat
from tests.support import TEST_REDIS_URL, free_port, wait_until


def test_a_running_worker_reports_its_consumer_ticking(stack):
    port = free_port()
    stack.start_worker(env={"WORKER_METRICS_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/healthz"
    wait_until(lambda: httpx.get(url, timeout=5).json().get("consumer") == "alive", 30, "consumer never ticked")
    time.sleep(2 * TICK_SECONDS + 1)
    body = httpx.get(url, timeout=5).json()
    # Had the ticks stopped after the first, the last would be over 2 intervals old by now.
    assert body["status"] == "ok" and body["consumer"] == "alive"
    assert body["last_tick_seconds_ago"] <= 2 * TICK_SECONDS

def test_a_stale_consumer_fails_liveness_while_the_broker_answers(settings):
    heartbeat = ConsumerHeartbeat(TEST_REDIS_URL, stale_after=0.05)
    assert heartbeat.check() == (True, {"consumer": "starting"})
    heartbeat.tick()
    assert heartbeat.check()[0] is True
    time.sleep(0.1)
    alive, details = heartbeat.check()
    assert (alive, details["consumer"]) == (False, "stalled")

    response = Client(probe_app(settings, CollectorRegistry(), liveness=heartbeat.check)).get("/healthz")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "not_alive" and response.json["error"]["details"]["consumer"] == "stalled"


def test_a_consumer_waiting_for_a_down_broker_is_not_restarted(settings):
    """Restarting the pod would not bring Redis back; /readyz reports the outage instead."""
    heartbeat = ConsumerHeartbeat(f"redis://127.0.0.1:{free_port()}/0", stale_after=0.05)
    heartbeat.tick()
    time.sleep(0.1)
    alive, details = heartbeat.check()
    assert (alive, details["consumer"]) == (True, "waiting for the broker")


def test_a_consumer_that_never_starts_fails_liveness_and_a_shutting_down_one_does_not(settings):
    heartbeat = ConsumerHeartbeat(TEST_REDIS_URL, stale_after=0.05)
    time.sleep(0.1)
    alive, details = heartbeat.check()
    assert (alive, details["consumer"]) == (False, "never started")
    heartbeat.shutting_down()
    assert heartbeat.check() == (True, {"consumer": "shutting down"})
