"""The reverse proxy of docker-compose.yml (deploy/nginx/): checked statically, and run on this machine
with Debian's nginx (make test installs it: scripts/ensure-nginx.sh) in front of real gunicorn processes
started by `cafeflow serve`, with the file's upstream names and ports mapped to them, as test_host_run.py
does for the compose services.

Against gunicorn alone (what compose exposed before) a malformed request got gunicorn's HTML page and ten
clients sending their headers slowly held every thread, so /healthz timed out."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from services.ingest.app import MULTIPART_OVERHEAD
from tests.deploy.manifests import load_compose
from tests.support import ADMIN_TOKEN, REAL_FILES, ROOT, free_port, wait_until

pytestmark = pytest.mark.e2e

NGINX = os.environ.get("NGINX_PATH") or shutil.which("nginx") or "/usr/sbin/nginx"
CONF_DIR = ROOT / "deploy" / "nginx"
COMPOSE_CONF_DIR = "/etc/nginx/cafeflow"
SERVICES = {"ingest": 8001, "orders": 8002, "reporting": 8003}
ERROR_CODES = {400: "bad_request", 408: "request_timeout", 413: "payload_too_large", 414: "uri_too_long",
               431: "request_header_fields_too_large", 500: "internal_error", 502: "bad_gateway",
               503: "service_unavailable", 504: "gateway_timeout"}


def host_config(upstreams: dict[str, int], listen: dict[int, int], workdir: Path) -> Path:
    """nginx.conf as this machine runs it: upstream host names -> 127.0.0.1 and the given ports, each listen
    port -> a free loopback port, every temporary path -> `workdir`. Anything else is the file as it is."""
    text = (CONF_DIR / "nginx.conf").read_text()
    for name, port in upstreams.items():
        text, count = re.subn(rf"server {name}:{SERVICES[name]};", f"server 127.0.0.1:{port};", text)
        assert count == 1, name
    for port, host_port in listen.items():
        text, count = re.subn(rf"listen {port};", f"listen 127.0.0.1:{host_port};", text)
        assert count == 1, port
    text = text.replace("/tmp/", f"{workdir}/").replace("/var/cache/nginx/", f"{workdir}/")
    for name in ("nginx.conf", "errors.conf"):
        (workdir / name).write_text(text if name == "nginx.conf" else (CONF_DIR / name).read_text())
    return workdir / "nginx.conf"


@pytest.fixture
def workdir():
    # nginx's workers run as an unprivileged user: its folder must be reachable (pytest's tmp_path is not).
    path = Path(tempfile.mkdtemp(prefix="cafeflow-nginx-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_proxy_is_the_only_service_publishing_ports_and_is_pinned():
    services = load_compose()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}, published
    proxy = services["proxy"]
    assert re.fullmatch(r"nginx:[\d.]+-bookworm@sha256:[0-9a-f]{64}", proxy["image"]), proxy["image"]
    assert proxy["command"][:3] == ["nginx", "-c", f"{COMPOSE_CONF_DIR}/nginx.conf"]
    assert f"./deploy/nginx:{COMPOSE_CONF_DIR}:ro" in proxy["volumes"]
    assert proxy["read_only"] is True and proxy["cap_drop"] == ["ALL"]
    ports = {str(p).rpartition(":")[2] for p in proxy["ports"]}
    assert {str(p) for p in SERVICES.values()} <= ports
    assert "127.0.0.1:9090:9090" in proxy["ports"], "Prometheus has no login: this machine only"
    for name in SERVICES:
        assert services[name]["environment"]["TRUSTED_PROXIES"] == "1", name


def test_the_upload_limit_matches_upload_max_bytes(settings):
    ingest_server = (CONF_DIR / "nginx.conf").read_text().split("listen 8001;")[1].split("server {")[0]
    size = re.search(r"client_max_body_size (\d+)m;", ingest_server).group(1)
    assert int(size) * 1024 * 1024 == settings.upload_max_bytes + MULTIPART_OVERHEAD
    default = re.search(r"^    client_max_body_size (\d+)m;", (CONF_DIR / "nginx.conf").read_text(), re.M).group(1)
    assert int(default) * 1024 * 1024 == settings.json_max_bytes


def test_the_kubernetes_ingress_buffers_and_bounds_requests_the_same_way(settings):
    from tests.deploy.manifests import by_kind, render_overlay

    for overlay in ("dev", "prod"):
        (ingress,) = by_kind(render_overlay(overlay), "Ingress")
        notes = ingress["metadata"]["annotations"]
        body = notes["nginx.ingress.kubernetes.io/proxy-body-size"]
        assert int(body.rstrip("m")) * 1024 * 1024 == settings.upload_max_bytes + MULTIPART_OVERHEAD, overlay
        assert notes["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "on", overlay
        assert notes["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "300", overlay


def test_nginx_t_accepts_the_configuration(workdir):
    conf = host_config({name: free_port() for name in SERVICES}, {p: free_port() for p in SERVICES.values()}, workdir)
    result = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(workdir)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_every_error_the_proxy_answers_itself_is_json_in_the_error_shape():
    errors = (CONF_DIR / "errors.conf").read_text()
    for status, code in ERROR_CODES.items():
        block = errors.split(f"location = /_cafeflow_error/{status} {{")[1].split("\n}\n")[0]
        body = json.loads(re.search(r"return \d+ '(.*)\\n';", block).group(1).replace("$request_id", "r1"))
        assert set(body["error"]) == {"code", "message", "details", "request_id"}
        assert body["error"]["code"] == code and "application/json" in block
        assert "internal;" in block, status
    assert "error_page 494 =431 /_cafeflow_error/431;" in errors


class Proxied:
    def __init__(self, urls: dict[str, str], ports: dict[str, int], process: subprocess.Popen, log: Path) -> None:
        self.urls, self.ports, self.process, self.log = urls, ports, process, log

    def raw(self, service: str, payload: bytes, wait: float = 10) -> bytes:
        """Sends raw bytes and returns the whole answer (the proxy closes the connection after an error)."""
        with socket.create_connection(("127.0.0.1", self.ports[service]), timeout=wait) as conn:
            conn.sendall(payload)
            data = b""
            try:
                while chunk := conn.recv(65536):
                    data += chunk
            except ConnectionResetError:
                pass      # a refused body is not read: the proxy may reset the connection after its answer
        return data


@pytest.fixture
def proxied(stack, workdir):
    """ingest and orders under gunicorn (orders with one worker of two threads, so that two slow clients
    would be enough to hold it), reporting's upstream left closed (the proxy's 502), nginx in front."""
    ingest = stack.start_ingest()
    orders = stack.start_orders(env={"WEB_THREADS": "2"}, workers=1)
    upstreams = {"ingest": int(ingest.rsplit(":", 1)[1]), "orders": int(orders.rsplit(":", 1)[1]),
                 "reporting": free_port()}
    ports = {name: free_port() for name in SERVICES}
    conf = host_config(upstreams, {SERVICES[name]: port for name, port in ports.items()}, workdir)
    log = workdir / "nginx.log"
    with log.open("wb") as out:
        process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(workdir), "-g", "daemon off;"],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

    def up() -> bool:
        try:
            return httpx.get(f"{urls['orders']}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    try:
        wait_until(up, 30, lambda: f"nginx did not start:\n{log.read_text()}")
        yield Proxied(urls, ports, process, log)
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def error_of(answer: bytes, status: int) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:300]
    assert b"content-type: application/json" in head.lower(), head
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "details", "request_id"} and error["code"] == ERROR_CODES[status]
    return error


def test_malformed_requests_get_json_errors_from_the_proxy(proxied):
    host = b"Host: cafeflow\r\n"
    error_of(proxied.raw("orders", b"NOT A REQUEST\r\n\r\n"), 400)
    error_of(proxied.raw("orders", b"GET /healthz HTTP/1.1\r\n\r\n"), 400)          # HTTP/1.1 needs a Host
    error_of(proxied.raw("orders", b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n" + host + b"\r\n"), 414)
    error_of(proxied.raw("orders", b"GET /healthz HTTP/1.1\r\n" + host + b"X-Big: " + b"b" * 10_000 + b"\r\n\r\n"),
             431)
    error_of(proxied.raw("reporting", b"GET /healthz HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n"), 502)


def test_a_browser_opening_a_page_of_a_service_that_is_down_gets_a_page(proxied):
    """Orders (the sign-in page) or any service down behind the proxy: a person gets a page saying so, with
    Retry-After; an API client still gets the JSON error shape."""
    url = proxied.urls["reporting"] + "/dashboard"
    page = httpx.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, timeout=10)
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert page.headers["retry-after"] == "5" and "unavailable for a moment" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    api = httpx.get(url, headers={"Accept": "application/json"}, timeout=10)
    assert api.status_code == 502 and api.json()["error"]["code"] == "bad_gateway"


def test_what_the_proxy_lets_through_gunicorn_accepts(proxied):
    """gunicorn's limits (cafeflow serve) are the proxy's: a 7 KiB request line or header that nginx passes on
    reaches the app (whose answers are JSON) instead of gunicorn's HTML 400."""
    long_query = "/healthz?pad=" + "a" * 7000
    assert httpx.get(proxied.urls["orders"] + long_query, timeout=10).status_code == 200
    response = httpx.get(proxied.urls["orders"] + "/healthz", headers={"X-Pad": "p" * 7000}, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"


def test_an_oversize_upload_is_refused_with_413_json_before_it_is_sent(proxied, settings):
    too_big = settings.upload_max_bytes + MULTIPART_OVERHEAD + 1
    head = (f"POST /v1/uploads HTTP/1.1\r\nHost: cafeflow\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {too_big}\r\n\r\n").encode()
    error_of(proxied.raw("ingest", head + b"--x\r\n"), 413)
    # A JSON body over JSON_MAX_BYTES is refused by the proxy of orders as well.
    head = (f"POST /v1/auth/token HTTP/1.1\r\nHost: cafeflow\r\nContent-Type: application/json\r\n"
            f"Content-Length: {settings.json_max_bytes + 1}\r\n\r\n").encode()
    error_of(proxied.raw("orders", head + b"{"), 413)


def test_ten_slow_clients_do_not_block_healthz(proxied):
    """Each client sends half a request and then nothing; gunicorn behind never sees them."""
    slow = []
    try:
        for _ in range(10):
            conn = socket.create_connection(("127.0.0.1", proxied.ports["orders"]), timeout=30)
            conn.sendall(b"POST /v1/auth/token HTTP/1.1\r\nHost: cafeflow\r\nContent-Type: application/json\r\n")
            slow.append(conn)
        time.sleep(0.5)
        for _ in range(5):
            response = httpx.get(f"{proxied.urls['orders']}/healthz", timeout=5)
            assert response.status_code == 200
    finally:
        for conn in slow:
            conn.close()


def test_a_real_upload_and_the_request_id_pass_through(proxied):
    path = REAL_FILES / "leeds_25-08-2021_09-00-00.csv"
    with path.open("rb") as handle:
        response = httpx.post(f"{proxied.urls['ingest']}/v1/uploads", files={"file": (path.name, handle, "text/csv")},
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Request-ID": "via-proxy-1"},
                              timeout=60)
    assert response.status_code == 202, response.text
    assert response.headers["X-Request-ID"] == "via-proxy-1"
    generated = httpx.get(f"{proxied.urls['orders']}/healthz", timeout=5).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)            # nginx's own id, passed to the service
    assert "Server" not in response.headers or "nginx/" not in response.headers["Server"]
