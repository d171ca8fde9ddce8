"""Liveness of the worker and of beat: is the loop that does their work still turning?

The probe server answers from a thread of its own, so a plain /healthz stays 200 while the loop is wedged.
The worker's consumer (the event loop that fetches messages, acknowledges them and hands them to the pool)
ticks a timestamp from a bootstep on that loop's own timer; beat's scheduler ticks after each pass over
its schedule (at least every BEAT_TICK_SECONDS). /healthz fails when the tick is older than `stale_after`
seconds *and* the broker answers. When the broker is down the loop is waiting to reconnect or publish,
which a restart would not fix: /readyz reports that, /healthz does not kill the pod for it. A loop that
never starts counts as stalled after the same time; a worker shutting down (draining its tasks) stays
alive. Only the prefork and thread-less pools run the consumer on an event loop whose timer this follows:
`cafeflow worker` uses prefork."""
from __future__ import annotations

import threading
import time

import redis
from celery import bootsteps, signals

from services.common.probes import ping_redis

TICK_SECONDS = 5.0
# Beat sleeps until its next task is due, at most this long, so its loop ticks at least this often.
BEAT_TICK_SECONDS = 5.0


class Heartbeat:
    """Shared by the loop that ticks (the worker's consumer, or beat's scheduler: `subject`) and the probe
    thread."""

    def __init__(self, redis_url: str, stale_after: float, subject: str = "consumer") -> None:
        self.redis_url = redis_url
        self.stale_after = stale_after
        self.subject = subject
        self._last_tick: float | None = None
        self._created = time.monotonic()
        self._shutting_down = False
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self._last_tick = time.monotonic()

    def shutting_down(self) -> None:
        with self._lock:
            self._shutting_down = True

    def age(self) -> float | None:
        with self._lock:
            return None if self._last_tick is None else time.monotonic() - self._last_tick

    def _broker_answers(self) -> bool:
        try:
            ping_redis(self.redis_url)
            return True
        except redis.RedisError:
            return False

    def check(self) -> tuple[bool, dict]:
        """(alive, details) for /healthz."""
        if self._shutting_down:
            return True, {self.subject: "shutting down"}
        age = self.age()
        if age is None:
            waited = time.monotonic() - self._created
            if waited <= self.stale_after:
                return True, {self.subject: "starting"}
            if not self._broker_answers():
                return True, {self.subject: "waiting for the broker", "started_seconds_ago": round(waited, 1)}
            return False, {self.subject: "never started", "started_seconds_ago": round(waited, 1),
                           "stale_after_seconds": self.stale_after}
        if age <= self.stale_after:
            return True, {self.subject: "alive", "last_tick_seconds_ago": round(age, 1)}
        if not self._broker_answers():
            return True, {self.subject: "waiting for the broker", "last_tick_seconds_ago": round(age, 1)}
        return False, {self.subject: "stalled", "last_tick_seconds_ago": round(age, 1),
                       "stale_after_seconds": self.stale_after}


def install(app, heartbeat: Heartbeat) -> None:
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
    # A warm shutdown stops the consumer while tasks drain (up to the grace period): not a stall.
    signals.worker_shutting_down.connect(lambda **_kwargs: heartbeat.shutting_down(), weak=False)


def install_beat(app, heartbeat: Heartbeat) -> None:
    """Makes beat's scheduler tick `heartbeat` after every pass over the schedule."""
    from celery.beat import PersistentScheduler

    class TickingScheduler(PersistentScheduler):
        def tick(self, *args, **kwargs):
            next_in = super().tick(*args, **kwargs)
            heartbeat.tick()
            return next_in

    app.conf.beat_scheduler = TickingScheduler
    app.conf.beat_max_loop_interval = BEAT_TICK_SECONDS
