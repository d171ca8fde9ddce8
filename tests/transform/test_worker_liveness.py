"""The worker's and beat's /healthz follow the loops that do their work, not just their probe threads."""
from __future__ import annotations

import time

import httpx
from prometheus_client import CollectorRegistry
from werkzeug.test import Client

from services.common.probes import probe_app
from services.transform.liveness import BEAT_TICK_SECONDS, TICK_SECONDS, Heartbeat
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

def test_a_running_beat_reports_its_scheduler_ticking(stack):
    port = free_port()
    stack.start_beat(env={"BEAT_METRICS_PORT": str(port)})
    url = f"http://127.0.0.1:{port}/healthz"

    def ticking():
        try:
            return httpx.get(url, timeout=5).json().get("scheduler") == "alive"
        except httpx.HTTPError:
            return False
    wait_until(ticking, 60, "beat's scheduler never ticked")
    time.sleep(2 * BEAT_TICK_SECONDS + 1)
    body = httpx.get(url, timeout=5).json()
    # Beat's next task is a minute away; without the capped loop interval it would sleep until then.
    assert body["status"] == "ok" and body["scheduler"] == "alive"
    assert body["last_tick_seconds_ago"] <= 2 * BEAT_TICK_SECONDS


def test_a_stalled_scheduler_fails_liveness_under_its_own_name(settings):
    heartbeat = Heartbeat(TEST_REDIS_URL, stale_after=0.05, subject="scheduler")
    heartbeat.tick()
    time.sleep(0.1)
    alive, details = heartbeat.check()
    assert alive is False and details["scheduler"] == "stalled" and "consumer" not in details


def test_a_stale_consumer_fails_liveness_while_the_broker_answers(settings):
    heartbeat = Heartbeat(TEST_REDIS_URL, stale_after=0.05)
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
    heartbeat = Heartbeat(f"redis://127.0.0.1:{free_port()}/0", stale_after=0.05)
    heartbeat.tick()
    time.sleep(0.1)
    alive, details = heartbeat.check()
    assert (alive, details["consumer"]) == (True, "waiting for the broker")


def test_a_consumer_that_never_starts_fails_liveness_and_a_shutting_down_one_does_not(settings):
    heartbeat = Heartbeat(TEST_REDIS_URL, stale_after=0.05)
    time.sleep(0.1)
    alive, details = heartbeat.check()
    assert (alive, details["consumer"]) == (False, "never started")
    heartbeat.shutting_down()
    assert heartbeat.check() == (True, {"consumer": "shutting down"})
