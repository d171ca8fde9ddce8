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
    for index, handler in enumerate(urls.handlers):
        # Flower lists most handlers as (pattern, class[, kwargs]) tuples, some as tornado URLSpecs.
        if isinstance(handler, tuple) and handler[1] is Metrics:
            urls.handlers[index] = (handler[0], AuthenticatedMetrics, *handler[2:])
    assert AuthenticatedMetrics in [handler[1] for handler in urls.handlers if isinstance(handler, tuple)], \
        "Flower's handler list changed: its /metrics would be served without auth"
