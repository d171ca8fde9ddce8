"""The worker's liveness: is its consumer loop still turning?

The probe server answers from a thread of its own, so a plain /healthz stays 200 while the consumer (the
event loop that fetches messages, acknowledges them and hands them to the pool) is wedged. A consumer
bootstep ticks a timestamp from that loop's own timer; /healthz fails when the tick is older than
`stale_after` seconds *and* the broker answers. When the broker is down the consumer is waiting to
reconnect, which a restart would not fix: /readyz reports that, /healthz does not kill the pod for it."""
from __future__ import annotations

import threading
import time

import redis
from celery import bootsteps

TICK_SECONDS = 5.0


class ConsumerHeartbeat:
    """Shared by the bootstep (which ticks from the consumer's event loop) and the probe thread."""

    def __init__(self, redis_url: str, stale_after: float) -> None:
        self.redis_url = redis_url
        self.stale_after = stale_after
        self._last_tick: float | None = None
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self._last_tick = time.monotonic()

    def age(self) -> float | None:
        with self._lock:
            return None if self._last_tick is None else time.monotonic() - self._last_tick

    def _broker_answers(self) -> bool:
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def check(self) -> tuple[bool, dict]:
        """(alive, details) for /healthz."""
        age = self.age()
        if age is None:
            return True, {"consumer": "starting"}
        if age <= self.stale_after:
            return True, {"consumer": "alive", "last_tick_seconds_ago": round(age, 1)}
        if not self._broker_answers():
            return True, {"consumer": "waiting for the broker", "last_tick_seconds_ago": round(age, 1)}
        return False, {"consumer": "stalled", "last_tick_seconds_ago": round(age, 1),
                       "stale_after_seconds": self.stale_after}


def install(app, heartbeat: ConsumerHeartbeat) -> None:
    """Adds the ticking step to the app's consumer blueprint (started and stopped with the consumer,
    also when it reconnects to the broker)."""

    class HeartbeatStep(bootsteps.StartStopStep):
        def __init__(self, consumer, **kwargs):
            super().__init__(consumer, **kwargs)
            self.timer_ref = None

        def start(self, consumer):
            heartbeat.tick()
            self.timer_ref = consumer.timer.call_repeatedly(TICK_SECONDS, heartbeat.tick)

        def stop(self, consumer):
            if self.timer_ref is not None:
                self.timer_ref.cancel()
                self.timer_ref = None

    app.steps["consumer"].add(HeartbeatStep)
