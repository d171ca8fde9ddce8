"""Orders service latency and throughput under 32 concurrent clients, against /healthz in the same run.

The service runs as deployed: gunicorn started by `cafeflow serve orders` (2 sync workers, the default;
--workers N to compare).
One server, four phases of --seconds each, every phase with --clients concurrent keep-alive clients:

  healthz    GET /healthz (no database, no auth): the floor of Flask + gunicorn + the client
  create     POST /v1/orders (2 items, a courier), a fresh order per request
  status     POST /v1/orders/<id>/status preparing -> out_for_delivery with If-Match (orders from `create`)
  deliver    POST /v1/orders/<id>/status -> delivered: also writes the outbox row and sends the Celery task

Prints per phase: requests, throughput, p50/p99 latency, and CPU seconds of the server processes and of
the client; then the ratios to /healthz. --profile runs the create + status path in-process under
cProfile and prints where the time goes.

Usage: .venv/bin/python bench/orders_latency.py [--clients 32 --seconds 10 --profile]
Uses its own database (BENCH_DATABASE_URL, default cafeflow_bench_orders) and Redis db 9; the
delivered orders' messages go to queue `transform-bench-orders`, which no worker reads.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEST_DATABASE_URL", os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/cafeflow_bench_orders"))
os.environ.setdefault("TEST_REDIS_URL", os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))

import httpx  # noqa: E402
import psutil  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from services.common.migrate import upgrade_all  # noqa: E402
from tests.support import ADMIN_TOKEN, Stack, ensure_database, reset_state  # noqa: E402

os.environ["TRANSFORM_QUEUE"] = "transform-bench-orders"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def prepare() -> tuple:
    url = os.environ["TEST_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1)
    ensure_database(url)
    upgrade_all(url)
    engine = create_engine(url)
    client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    reset_state(engine, client, branches=("Leeds",))
    return engine, client


def seed(url: str) -> dict:
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as client:
        latte = client.post("/v1/products", json={"name": "Latte", "size": "Large", "flavour": None, "price": "2.45"})
        tea = client.post("/v1/products", json={"name": "Tea", "size": None, "flavour": "Mint", "price": "1.30"})
        courier = client.post("/v1/couriers", json={"name": "Cora", "phone": "07700900001", "branch": "Leeds"})
        assert latte.status_code == tea.status_code == courier.status_code == 201
    return {"branch": "Leeds", "customer_name": "Bench Customer", "customer_address": "1 Bench Road",
            "customer_phone": "07700 900123", "payment_method": "CARD", "courier_id": courier.json()["id"],
            "items": [{"product_id": latte.json()["id"], "quantity": 2},
                      {"product_id": tea.json()["id"], "quantity": 1}]}


def server_cpu(pid: int) -> float:
    """CPU seconds of gunicorn's master and workers: live workers' own times, plus the master's
    children_* times, which hold the workers it already reaped (--max-requests recycles them)."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for proc in root.children(recursive=True):
            times = proc.cpu_times()
            total += times.user + times.system
    except psutil.NoSuchProcess:
        pass
    return total


async def run_phase(url: str, clients: int, seconds: float, make_request) -> tuple[list[float], int]:
    """Each client sends requests back to back until the phase ends; returns latencies and errors."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=60, limits=limits) as client:
        async def one_client(number: int) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                request = make_request(number)
                if request is None:
                    return
                method, path, kwargs, expected = request
                started = time.perf_counter()
                response = await client.request(method, path, **kwargs)
                latencies.append(time.perf_counter() - started)
                if response.status_code != expected:
                    errors += 1
                elif make_request.on_response is not None:
                    make_request.on_response(number, response)
        await asyncio.gather(*(one_client(n) for n in range(clients)))
    return latencies, errors


class Requests:
    """Request factories sharing the orders created in the `create` phase."""

    def __init__(self, order: dict) -> None:
        self.order = order
        self.created: list[tuple[int, str]] = []       # (id, etag) ready for the next status change
        self.next_ready: list[tuple[int, str]] = []

    def phase(self, name: str):
        def make(_number: int):
            if name == "healthz":
                return "GET", "/healthz", {}, 200
            if name == "create":
                return "POST", "/v1/orders", {"json": self.order}, 201
            source = self.created
            if not source:
                return None
            order_id, etag = source.pop()
            target = "out_for_delivery" if name == "status" else "delivered"
            return "POST", f"/v1/orders/{order_id}/status", {"json": {"status": target},
                                                             "headers": {"If-Match": etag}}, 200

        def on_response(_number: int, response) -> None:
            if name in ("create", "status"):
                body = response.json()
                self.next_ready.append((body["id"], response.headers["ETag"]))
        make.on_response = on_response if name in ("create", "status") else None
        return make

    def rotate(self) -> None:
        self.created, self.next_ready = self.next_ready, []


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def measure(args) -> None:
    engine, _redis = prepare()
    workdir = Path(tempfile.mkdtemp(prefix="orders-bench-"))
    stack = Stack(workdir)
    results: dict[str, dict] = {}
    try:
        url = stack.start_orders(workers=args.workers)
        order = seed(url)
        gunicorn_pid = stack.processes[-1].popen.pid
        requests = Requests(order)
        me = psutil.Process()
        # Warm-up: connections, imports, caches in both workers.
        asyncio.run(run_phase(url, args.clients, 1.0, requests.phase("healthz")))
        for name in ("healthz", "create", "status", "deliver"):
            if name in ("status", "deliver"):
                requests.rotate()
            server_before, client_before = server_cpu(gunicorn_pid), sum(me.cpu_times()[:2])
            started = time.perf_counter()
            latencies, errors = asyncio.run(run_phase(url, args.clients, args.seconds, requests.phase(name)))
            wall = time.perf_counter() - started
            results[name] = {
                "requests": len(latencies), "errors": errors, "wall": wall, "rps": len(latencies) / wall,
                "p50": percentile(latencies, 0.50) * 1000, "p99": percentile(latencies, 0.99) * 1000,
                "mean": statistics.fmean(latencies) * 1000,
                "server_cpu": server_cpu(gunicorn_pid) - server_before,
                "client_cpu": sum(me.cpu_times()[:2]) - client_before,
            }
    finally:
        stack.stop()
    with engine.connect() as conn:
        counts = conn.execute(text("""SELECT (SELECT count(*) FROM orders.customer_order),
                                             (SELECT count(*) FROM orders.outbox)""")).one()
    print(f"orders service under gunicorn (cafeflow serve orders, {args.workers} workers), "
          f"{args.clients} concurrent clients, "
          f"{args.seconds:.0f} s per phase; {counts[0]} orders created, {counts[1]} delivered")
    print(f"{'phase':<9} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'server CPU-ms/req':>18} {'client CPU-ms/req':>18}")
    for name, r in results.items():
        print(f"{name:<9} {r['requests']:>8} {r['errors']:>6} {r['rps']:>8.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
              f"{r['server_cpu'] * 1000 / max(1, r['requests']):>18.2f} "
              f"{r['client_cpu'] * 1000 / max(1, r['requests']):>18.2f}")
    base = results["healthz"]
    print("ratios to /healthz (throughput healthz/phase; p50 and p99 phase/healthz; server CPU per request "
          "phase/healthz):")
    for name in ("create", "status", "deliver"):
        r = results[name]
        print(f"  {name:<8} throughput {base['rps'] / r['rps']:.1f}x lower, p50 {r['p50'] / base['p50']:.1f}x, "
              f"p99 {r['p99'] / base['p99']:.1f}x, server CPU/request "
              f"{(r['server_cpu'] / r['requests']) / (base['server_cpu'] / base['requests']):.1f}x")


def profile(args) -> None:
    """create + two status changes in-process, under cProfile, against the bench database."""
    import cProfile
    import pstats

    from services.common.settings import Settings
    from services.orders.app import create_app

    prepare()
    app = create_app(Settings(log_level="WARNING"))
    client = app.test_client()
    latte = client.post("/v1/products", json={"name": "Latte", "size": "Large", "flavour": None, "price": "2.45"},
                        headers=ADMIN).get_json()
    courier = client.post("/v1/couriers", json={"name": "Cora", "phone": "07700900001", "branch": "Leeds"},
                          headers=ADMIN).get_json()
    order = {"branch": "Leeds", "customer_name": "Bench Customer", "customer_address": "1 Bench Road",
             "customer_phone": "07700 900123", "payment_method": "CARD", "courier_id": courier["id"],
             "items": [{"product_id": latte["id"], "quantity": 2}]}

    def work(count: int) -> None:
        for _ in range(count):
            created = client.post("/v1/orders", json=order, headers=ADMIN)
            out = client.post(f"/v1/orders/{created.get_json()['id']}/status", json={"status": "out_for_delivery"},
                              headers={**ADMIN, "If-Match": created.headers["ETag"]})
            assert out.status_code == 200, out.get_json()

    work(20)   # warm-up
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    work(args.profile_orders)
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"\nprofile: {args.profile_orders} x (create + status change) in-process: {elapsed:.2f} s, "
          f"{elapsed * 1000 / args.profile_orders / 2:.2f} ms per request (profiler overhead included)")
    stats = pstats.Stats(profiler)
    waits = {name: (calls, seconds) for (_file, _line, name), (_cc, calls, _tt, seconds, _callers)
             in stats.stats.items() if "psycopg2.extensions" in name}
    executes = waits.get("<method 'execute' of 'psycopg2.extensions.cursor' objects>", (0, 0.0))
    commits = waits.get("<method 'commit' of 'psycopg2.extensions.connection' objects>", (0, 0.0))
    requests = args.profile_orders * 2
    print(f"database round trips: {executes[0] / requests:.1f} statements per request (pool pre-ping included) "
          f"taking {executes[1] / elapsed:.0%} of the time, commits {commits[1] / elapsed:.0%}; the rest is "
          "Python (Flask, webargs/marshmallow, SQLAlchemy ORM, our code)")
    stats.sort_stats(args.profile_sort).print_stats(args.profile_lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (cafeflow serve's default is 2)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", action="store_true", help="also profile create + status in-process")
    parser.add_argument("--profile-only", action="store_true")
    parser.add_argument("--profile-orders", type=int, default=300)
    parser.add_argument("--profile-lines", type=int, default=45)
    parser.add_argument("--profile-sort", default="cumulative", help="pstats order: cumulative, tottime, ...")
    args = parser.parse_args()
    if not args.profile_only:
        measure(args)
    if args.profile or args.profile_only:
        profile(args)


if __name__ == "__main__":
    main()
