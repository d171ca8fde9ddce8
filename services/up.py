"""What `cafeflow up` (the README's `make up`) does around starting the processes: check the ports first and
say which setting moves a taken one, supervise the processes (an optional one failing never stops the
platform), and print one "ready" banner with every address once they answer.

The first run fell over on a port clash: the worker's metrics port was briefly held by another process, the
worker died with "[Errno 98] Address already in use" (no port named) and `up` stopped every service. Ports are
now sorted into what the platform needs (a web service's port: refuse to start, naming port and setting) and
what it can run without (metrics, Flower: say so and carry on)."""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import click
import httpx


@dataclass(frozen=True)
class Port:
    what: str           # "ingest", "worker metrics", ...
    number: int
    setting: str        # the environment variable that changes it
    essential: bool     # False: the platform runs without it (metrics, Flower)


def port_in_use(host: str, port: int) -> bool:
    """Whether another process holds host:port (binding it the way a server would, then letting it go)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # as gunicorn does: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def port_taken_message(port: Port, consequence: str) -> str:
    return (f"port {port.number} ({port.what}) is in use by another process: {consequence}; "
            f"set {port.setting} to a free port to use another")


def check_ports(ports: list[Port], host: str) -> tuple[list[str], set[str]]:
    """(why `up` must not start, the optional parts to leave out), each explained on stderr."""
    fatal, skipped = [], set()
    for port in ports:
        if port.number == 0 or not port_in_use(host, port.number):
            continue
        if port.essential:
            fatal.append(port_taken_message(port, "cafeflow up cannot start"))
        else:
            skipped.add(port.what)
            consequence = "Flower is left out" if port.what == "Flower" else \
                f"the {port.what.split()[0]} runs without /metrics and probes (0 turns them off)"
            click.echo("cafeflow up: " + port_taken_message(port, consequence), err=True)
    return fatal, skipped


# Restarted when they exit, as a Deployment or compose's restart policy would: nothing is lost when they die
# (unacknowledged messages, leases), and Celery's Redis transport can end a worker on a broker blip. Given up on
# (and the platform stopped) after RESTART_LIMIT exits within RESTART_WINDOW_SECONDS: a crash loop.
RESTARTED = frozenset({"worker", "beat"})
RESTART_LIMIT = 5
RESTART_WINDOW_SECONDS = 60.0


def supervise(commands: dict[str, list[str]], optional: frozenset[str] = frozenset(),
              on_started: Callable[[], None] | None = None) -> int:
    """Runs the processes until an essential one exits or we are interrupted; then stops them all. An optional
    one (Flower) that exits is reported and left out: the platform does not need it. The worker and beat are
    restarted when they exit (RESTARTED), unless they crash in a loop."""
    children = {name: subprocess.Popen(argv, start_new_session=True) for name, argv in commands.items()}
    exits: dict[str, list[float]] = {name: [] for name in commands}
    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if on_started:
        on_started()
    exit_code = 0
    try:
        while not stopping:
            for name, child in list(children.items()):
                if child.poll() is None:
                    continue
                if name in optional:
                    click.echo(f"cafeflow up: {name} exited with {child.returncode}; the rest keeps running "
                               "without it", err=True)
                    del children[name]
                    continue
                now = time.monotonic()
                exits[name] = [t for t in exits[name] if now - t < RESTART_WINDOW_SECONDS] + [now]
                if name in RESTARTED and len(exits[name]) <= RESTART_LIMIT:
                    click.echo(f"cafeflow up: {name} exited with {child.returncode}; starting it again", err=True)
                    children[name] = subprocess.Popen(commands[name], start_new_session=True)
                    continue
                click.echo(f"cafeflow up: {name} exited with {child.returncode}; stopping the rest", err=True)
                exit_code, stopping = 1, True
                break
            time.sleep(0.5)
    finally:
        for child in children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
    return exit_code


@dataclass(frozen=True)
class Address:
    label: str
    url: str
    probe: str              # the URL that answers when it is up
    auth: tuple[str, str] | None = None
    note: str = ""


def _answers(address: Address) -> int | None:
    try:
        return httpx.get(address.probe, auth=address.auth, timeout=2).status_code
    except httpx.HTTPError:
        return None


def banner(addresses: list[Address], statuses: dict[str, int | None], notes: list[str] = ()) -> str:
    width = max(len(a.label) for a in addresses)
    lines = ["", "cafeflow is ready:"]
    for address in addresses:
        status = statuses.get(address.label)
        missing = "" if status is not None and status < 500 else "   (not answering yet)"
        lines.append(f"  {address.label.ljust(width)}  {address.url}{missing}{address.note}")
    lines += [f"  {note}" for note in notes]
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines) + "\n"


def announce_when_ready(addresses: list[Address], essential: set[str], notes: list[str] = (),
                        patience: float = 120.0) -> threading.Thread:
    """Prints the banner once every address answers (or, after `patience` seconds, once the essential ones do,
    marking the rest), from a daemon thread so supervision goes on meanwhile."""
    def watch() -> None:
        deadline = time.monotonic() + patience
        statuses: dict[str, int | None] = {}
        while True:
            statuses = {a.label: _answers(a) for a in addresses}
            up = {label for label, status in statuses.items() if status is not None and status < 500}
            if up >= {a.label for a in addresses}:
                break
            if time.monotonic() > deadline and up >= essential:
                break
            time.sleep(1)
        click.echo(banner(addresses, statuses, notes), err=True)

    thread = threading.Thread(target=watch, name="ready-banner", daemon=True)
    thread.start()
    return thread
