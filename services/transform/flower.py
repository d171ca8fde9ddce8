"""Flower's /metrics behind the same basic auth as its pages.

Flower (2.x) serves its Prometheus metrics without asking for credentials while every page does: the
worker names, task counts and their failure reasons were readable by anyone who reached the port. Its
handler list is read when Flower builds its application, so the metrics handler is swapped for one that
authenticates first (Flower's own get_current_user: 401 with a Basic challenge without valid credentials).
/healthcheck stays open: the probes need no credentials and it says only "OK"."""
from __future__ import annotations

import tornado.web
from flower import urls
from flower.views.monitor import Metrics


class AuthenticatedMetrics(Metrics):
    @tornado.web.authenticated
    async def get(self):
        await super().get()


def protect_metrics() -> None:
    """Before Flower starts: /metrics answers only with the credentials its pages ask for."""
    urls.handlers[:] = [(pattern, AuthenticatedMetrics if handler is Metrics else handler, *rest)
                        for pattern, handler, *rest in urls.handlers]
