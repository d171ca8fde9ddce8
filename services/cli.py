"""The `cafeflow` command: the one entry point compose, Kubernetes and the Makefile call."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import click

from services.admin_commands import ADMIN_GROUPS, load_settings
from services.tools.generate import generate_command
from services.tools.upload_client import DEFAULT_PATIENCE_SECONDS

# Web services and their default ports (DESIGN.md). The app factories are imported by gunicorn in the
# service's own process, so this module imports no service code.
WEB_SERVICES = {
    "ingest": ("services.ingest.app:create_app()", 8001),
    "orders": ("services.orders.app:create_app()", 8002),
    "reporting": ("services.reporting.app:create_app()", 8003),
}


_settings = load_settings


def _multiproc_dir() -> None:
    """prometheus_client aggregates gunicorn workers and Celery children through this directory."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="cafeflow-metrics-")


@click.group()
def main() -> None:
    """cafeflow: branch till files and live orders into one PostgreSQL warehouse."""


main.add_command(generate_command)
for group in ADMIN_GROUPS:
    main.add_command(group)


@main.command()
@click.option("--wait", "wait_seconds", type=float, default=None, metavar="SECONDS",
              help="apply nothing; wait up to SECONDS until another migrate brought every schema to head "
                   "(a Kubernetes init container, so new code never runs on an old schema)")
def migrate(wait_seconds: float | None) -> None:
    """Apply every schema's migrations (idempotent)."""
    from services.common.migrate import behind_head, upgrade_all

    settings = _settings()
    if wait_seconds is None:
        upgrade_all(settings.database_url)
        click.echo("migrations: all schemas at head")
        return
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            behind = behind_head(settings.database_url)
        except Exception as exc:  # noqa: BLE001 - the database may not answer yet: keep waiting
            behind = [f"database unreachable ({type(exc).__name__})"]
        if not behind:
            click.echo("migrations: all schemas at head")
            return
        if time.monotonic() >= deadline:
            raise click.ClickException(f"not at head after {wait_seconds:.0f} s: {', '.join(behind)}")
        click.echo(f"waiting for migrations: {', '.join(behind)}", err=True)
        time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))


@main.command()
@click.argument("service", type=click.Choice(sorted(WEB_SERVICES)))
def openapi(service: str) -> None:
    """Print a service's OpenAPI document (committed under docs/openapi/ and checked by the tests)."""
    import importlib
    import json

    module_name, _, factory = WEB_SERVICES[service][0].partition(":")
    app = getattr(importlib.import_module(module_name), factory.rstrip("()"))(_settings())
    click.echo(json.dumps(app.test_client().get("/openapi.json").get_json(), indent=2, sort_keys=True))


@main.command()
@click.argument("service", type=click.Choice(sorted(WEB_SERVICES)))
@click.option("--port", type=int, default=None, help="default: the service's port from DESIGN.md")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--workers", type=int, default=lambda: int(os.environ.get("WEB_CONCURRENCY", "2")))
@click.option("--threads", type=click.IntRange(min=1), default=lambda: int(os.environ.get("WEB_THREADS", "4")),
              help="threads per worker (gunicorn's gthread workers; 1 = sync workers)  [default: WEB_THREADS or 4]")
def serve(service: str, port: int | None, host: str, workers: int, threads: int) -> None:
    """Run a web service under gunicorn."""
    _settings()
    _multiproc_dir()
    target, default_port = WEB_SERVICES[service]
    _refuse_taken_port(service, host, port or default_port, f"--port (cafeflow up: CAFEFLOW_{service.upper()}_PORT)")
    # Threaded workers keep connections alive (sync workers close each one, so every request through an
    # ingress or a client pays a new TCP connection) and serve other requests while one waits on the database.
    # Idle connections must outlive the proxy's (ingress-nginx keeps upstream ones 60 s): if gunicorn closed
    # first, the proxy could send a request on a closing connection and answer 502 (it does not retry a POST).
    keep_alive = os.environ.get("WEB_KEEPALIVE_SECONDS", "75")
    worker_class = ["--worker-class", "gthread", "--threads", str(threads), "--keep-alive", keep_alive] \
        if threads > 1 else []
    argv = [
        sys.executable, "-m", "gunicorn", target,
        "--bind", f"{host}:{port or default_port}", "--workers", str(workers), *worker_class,
        "--worker-tmp-dir", tempfile.gettempdir(),
        # Recycle workers now and then (leaks), with jitter so they do not all restart at once.
        "--max-requests", "2000", "--max-requests-jitter", "200",
        # Request size bounds, explicit and equal to the proxy's (deploy/nginx: 8 KiB request line and headers),
        # so whatever nginx or the ingress passes on is accepted, and where nothing sits in front nothing larger
        # reaches the app. A request whose headers do not arrive is still a proxy's job: gunicorn has no header
        # timeout, which is why compose puts nginx in front and Kubernetes relies on its ingress.
        "--limit-request-line", "8190", "--limit-request-fields", "100", "--limit-request-field_size", "8190",
        # No gunicorn access log: the app writes one JSON line per request (services/common/web.py) with its
        # route, status, duration and SQL count; a second, gunicorn line per request only doubled the logs.
        "--timeout", "300", "--graceful-timeout", "30",
    ]
    os.execv(sys.executable, argv)


@main.command()
@click.option("--concurrency", type=int, default=lambda: int(os.environ.get("WORKER_CONCURRENCY", "2")))
@click.option("--loglevel", default="INFO")
def worker(concurrency: int, loglevel: str) -> None:
    """Run a transform worker."""
    settings = _settings()
    _multiproc_dir()
    from services.transform.celery_app import create_celery, zero_worker_metrics

    app = create_celery(settings)
    zero_worker_metrics(app)
    if settings.worker_metrics_port:
        from services.common.metrics import LoopCollector
        from services.common.probes import start_probe_server
        from services.transform import liveness

        heartbeat = liveness.Heartbeat(settings.redis_url, settings.worker_stall_seconds)
        liveness.install(app, heartbeat)
        start_probe_server(settings, settings.worker_metrics_port, settings.metrics_host, "WORKER_METRICS_PORT",
                           liveness=heartbeat.check, collectors=(LoopCollector("consumer", heartbeat.check),))
    app.worker_main(["worker", "--queues", settings.transform_queue, "--concurrency", str(concurrency),
                     "--loglevel", loglevel, "--hostname", "transform@%h", "--task-events"])


@main.command()
@click.option("--schedule", default=lambda: os.environ.get(
    "BEAT_SCHEDULE_FILE", os.path.join(tempfile.gettempdir(), "cafeflow-beat-schedule")))
def beat(schedule: str) -> None:
    """Run Celery beat (exactly one per deployment)."""
    settings = _settings()
    _multiproc_dir()
    from services.transform.celery_app import create_celery

    app = create_celery(settings)
    if settings.beat_metrics_port:
        from services.common.metrics import LoopCollector, QueueLengthCollector, UploadStateCollector
        from services.common.probes import start_probe_server
        from services.transform import liveness

        heartbeat = liveness.Heartbeat(settings.redis_url, settings.beat_stall_seconds, subject="scheduler")
        liveness.install_beat(app, heartbeat)
        # Beat is exactly one process, so the broker's and the uploads table's figures are read here, once.
        start_probe_server(settings, settings.beat_metrics_port, settings.metrics_host, "BEAT_METRICS_PORT",
                           liveness=heartbeat.check,
                           collectors=(LoopCollector("scheduler", heartbeat.check),
                                       QueueLengthCollector(settings.redis_url, [settings.transform_queue]),
                                       UploadStateCollector(settings.psycopg2_dsn, settings.task_time_limit)))
    app.start(["beat", "--schedule", schedule, "--loglevel", "INFO"])


def _refuse_taken_port(what: str, host: str, port: int, how: str) -> None:
    """Stops with the port and what moves it, instead of gunicorn's or Tornado's bare 'Address already in use'."""
    from services.up import port_in_use

    if port and port_in_use(host, port):
        raise click.ClickException(f"port {port} ({what}) is in use by another process: {what} cannot start; "
                                   f"choose another with {how}")


def flower_auth_problem(env: str, host: str, credentials: str) -> str | None:
    """Why Flower must not start, if it must not. Flower reads FLOWER_BASIC_AUTH itself; it is checked here
    so a missing or weak one stops the start instead of serving the task list (upload ids, errors, and a
    button to revoke tasks) to anyone who can reach the port: required on any address but loopback, in
    every environment, and outside development also on loopback."""
    # Flower takes several accounts, comma-separated (compose adds Prometheus's own): each must be strong.
    accounts = [account.partition(":") for account in credentials.split(",")]
    if all(user and len(password) >= 16 for user, _, password in accounts):
        return None
    if env != "development":
        return "FLOWER_BASIC_AUTH must be user:password with a password of at least 16 characters outside development"
    if not _is_loopback(host):
        return (f"FLOWER_BASIC_AUTH (user:password, a password of 16+ characters) is required to listen on {host}; "
                "without it Flower may only listen on loopback (--host 127.0.0.1)")
    return None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False      # a host name could resolve to anything


@main.command()
@click.option("--port", type=int, default=lambda: int(os.environ.get("FLOWER_PORT", "5555")),
              show_default="$FLOWER_PORT or 5555")
@click.option("--host", default="0.0.0.0", show_default=True)
def flower(port: int, host: str) -> None:
    """Run Flower, Celery's monitoring UI, behind basic auth (FLOWER_BASIC_AUTH=user:password)."""
    settings = _settings()
    problem = flower_auth_problem(settings.env, host, os.environ.get("FLOWER_BASIC_AUTH", ""))
    if problem:
        raise click.ClickException(problem)
    _refuse_taken_port("Flower", host, port, "FLOWER_PORT or --port")
    from services.common.logging import configure_logging
    from services.transform.celery_app import create_celery
    from services.transform.flower import protect_metrics

    protect_metrics()
    # Flower's (and Tornado's) loggers go through the JSON handler like every other process's;
    # --logging=none keeps Tornado from resetting the root level (LOG_LEVEL stands) or adding a handler.
    configure_logging("flower", settings.log_level)
    create_celery(settings).start(["flower", f"--port={port}", f"--address={host}", "--logging=none"])



@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--url", default=lambda: os.environ.get("CAFEFLOW_INGEST_URL", "http://127.0.0.1:8001"),
              show_default="$CAFEFLOW_INGEST_URL or http://127.0.0.1:8001")
@click.option("--token", default=None, help=(
    "branch token or admin token; better left out: it is read from $CAFEFLOW_TOKEN, else $CAFEFLOW_ADMIN_TOKEN "
    "(make up's .env), because a token on the command line is visible to every user of the machine (ps)"))
@click.option("--wait/--no-wait", default=True, show_default=True, help="wait until each file is loaded")
@click.option("--timeout", default=3600.0, show_default=True, help="seconds to wait for outcomes")
@click.option("--parallel", default=4, show_default=True, help="files posted at once")
@click.option("--patience", default=DEFAULT_PATIENCE_SECONDS, show_default=True, help=(
    "seconds to ride out an outage (ingest, its database or Redis down), honouring Retry-After"))
@click.option("--replace", is_flag=True, help=(
    "each file is the complete record of the branch-days it covers: sales earlier files gave those days and "
    "this one lacks are retracted (default: append, which only adds)"))
def upload(paths: tuple[Path, ...], url: str, token: str, wait: bool, timeout: float, parallel: int,
           patience: float, replace: bool) -> None:
    """Post branch files (and folders of them); exit 1 if any row was rejected, 2 on errors."""
    from services.tools.upload_client import run

    token = _upload_token(token)

    sys.exit(run(list(paths), url=url, token=token, wait=wait, timeout=timeout, parallel=parallel,
                 patience=patience, mode="replace" if replace else "append"))


def _upload_token(given: str | None) -> str:
    if given:
        click.echo("cafeflow upload: a token on the command line is visible to other users (ps); "
                   "set CAFEFLOW_TOKEN instead", err=True)
        return given
    token = os.environ.get("CAFEFLOW_TOKEN") or os.environ.get("CAFEFLOW_ADMIN_TOKEN")
    if not token:
        raise click.UsageError("no token: set CAFEFLOW_TOKEN to a branch token (cafeflow branch add) or the admin "
                               "token (after make up: set -a; source .env; set +a)")
    return token


@main.command()
@click.option("--workers", type=int, default=2, help="gunicorn workers per web service")
@click.option("--concurrency", type=int, default=2, help="transform worker processes")
@click.option("--host", default="127.0.0.1", show_default=True, help="address the web services listen on")
def up(workers: int, concurrency: int, host: str) -> None:
    """The whole platform on this machine: migrate, then every service, a worker, beat and Flower.
    Logs go to this terminal; a banner lists every address once all answer; Ctrl-C stops everything."""
    from services import up as local

    settings = _settings()
    flower_port = int(os.environ.get("FLOWER_PORT", "5555"))
    ports = [local.Port(name, _port_of(name), f"CAFEFLOW_{name.upper()}_PORT", essential=True) for name in WEB_SERVICES]
    ports += [local.Port("worker metrics", settings.worker_metrics_port, "WORKER_METRICS_PORT", essential=False),
              local.Port("beat metrics", settings.beat_metrics_port, "BEAT_METRICS_PORT", essential=False)]
    flower_problem = flower_auth_problem(settings.env, host, os.environ.get("FLOWER_BASIC_AUTH", ""))
    if flower_problem:
        click.echo(f"cafeflow up: Flower is left out: {flower_problem} (make up writes one to .env)", err=True)
    else:
        ports.append(local.Port("Flower", flower_port, "FLOWER_PORT", essential=False))
    fatal, skipped = local.check_ports(ports, host)
    if fatal:
        raise click.ClickException("; ".join(fatal))

    from services.common.migrate import upgrade_all

    upgrade_all(settings.database_url)
    click.echo("migrations: all schemas at head", err=True)
    me = [sys.executable, "-m", "services.cli"]
    commands = {name: me + ["serve", name, "--workers", str(workers), "--port", str(_port_of(name)), "--host", host]
                for name in WEB_SERVICES}
    commands["worker"] = me + ["worker", "--concurrency", str(concurrency)]
    commands["beat"] = me + ["beat"]
    if not flower_problem and "Flower" not in skipped:
        commands["flower"] = me + ["flower", "--port", str(flower_port), "--host", host]
    # The worker's and beat's metrics listen where the web services do (loopback by default), not on every
    # interface as in a container; METRICS_HOST set by the operator still wins. A taken metrics port is
    # turned off (0) for that process rather than left to fail (check_ports said so above).
    os.environ.setdefault("METRICS_HOST", host)
    for port in ports:
        if port.what in skipped and port.what != "Flower":
            os.environ[port.setting] = "0"
    # The pages send browsers to orders' /signin and back by these addresses: the ports chosen here (an
    # operator's CAFEFLOW_*_URL still wins, say a name other machines use).
    browser_host = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    for name in WEB_SERVICES:
        os.environ.setdefault(f"CAFEFLOW_{name.upper()}_URL", f"http://{browser_host}:{_port_of(name)}")
    addresses, notes = _up_addresses(settings, browser_host, "flower" in commands, flower_port, skipped, ports)
    sys.exit(local.supervise(commands, optional=frozenset({"flower"}), on_started=lambda: local.announce_when_ready(
        addresses, essential={a.label for a in addresses if a.label.endswith("API docs")}, notes=notes)))


def _up_addresses(settings, browser_host: str, flower: bool, flower_port: int, skipped: set[str], ports) -> tuple:
    """What the ready banner lists: the pages, each service's API docs, Flower and the metrics."""
    from services import up as local

    url = {name: os.environ[f"CAFEFLOW_{name.upper()}_URL"] for name in WEB_SERVICES}
    probe = {name: f"http://{browser_host}:{_port_of(name)}" for name in WEB_SERVICES}
    addresses = [
        local.Address("sign in", f"{url['orders']}/signin", f"{probe['orders']}/readyz",
                      note="   (add a user: cafeflow user add NAME --role admin)"),
        local.Address("staff page", f"{url['orders']}/app", f"{probe['orders']}/readyz"),
        local.Address("dashboard", f"{url['reporting']}/dashboard", f"{probe['reporting']}/readyz"),
        local.Address("branch portal", f"{url['ingest']}/portal", f"{probe['ingest']}/readyz"),
    ]
    addresses += [local.Address(f"{name} API docs", f"{url[name]}/docs", f"{probe[name]}/readyz")
                  for name in WEB_SERVICES]
    if flower:
        user, _, password = os.environ.get("FLOWER_BASIC_AUTH", "").partition(":")
        addresses.append(local.Address(
            "Flower", f"http://{browser_host}:{flower_port}", f"http://{browser_host}:{flower_port}/healthcheck",
            auth=(user, password) if user else None,
            note=f"   (user {user!r}, password: FLOWER_BASIC_AUTH in .env)" if user else ""))
    notes = []
    for port in ports:
        if port.what in skipped:
            notes.append(f"{port.what}: not served, port {port.number} is in use by another process ({port.setting})")
        elif port.what.endswith("metrics") and port.number:
            addresses.append(local.Address(port.what, f"http://{browser_host}:{port.number}/metrics",
                                           f"http://{browser_host}:{port.number}/healthz"))
    return addresses, notes


def _port_of(service: str) -> int:
    """CAFEFLOW_<SERVICE>_PORT overrides the default port (DESIGN.md) of a service under `up`."""
    return int(os.environ.get(f"CAFEFLOW_{service.upper()}_PORT", WEB_SERVICES[service][1]))


if __name__ == "__main__":
    main()
