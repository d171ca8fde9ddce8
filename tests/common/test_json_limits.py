"""Every JSON body of every service is bounded in depth and size before anything parses it.

The endpoints come from each app's URL map, so an endpoint added later is covered without editing this
file. No token is sent: the limits hold before authentication (the attack was unauthenticated)."""
from __future__ import annotations

import io

import pytest
from werkzeug.test import EnvironBuilder

from services.common.json_limits import nesting_depth
from tests.common.service_apps import SERVICES, create_apps, every_route


@pytest.fixture(scope="module")
def apps(engine, settings):
    return create_apps(settings)


def assert_json_error(response, status: int, code: str, where: str) -> None:
    assert response.status_code == status, f"{where}: {response.status_code} {response.get_data(as_text=True)[:300]}"
    body = response.get_json()
    assert set(body["error"]) == {"code", "message", "details", "request_id"}, where
    assert body["error"]["code"] == code, where


def test_the_url_maps_list_the_endpoints_of_the_issue(apps):
    orders = set(every_route(apps["orders"]))
    assert {("POST", "/v1/auth/token"), ("POST", "/v1/orders"), ("PATCH", "/v1/products/1")} <= orders
    assert ("POST", "/v1/uploads") in set(every_route(apps["ingest"]))
    assert {("POST", "/signin"), ("POST", "/signout")} <= orders
    assert ("POST", "/dashboard/signout") in set(every_route(apps["reporting"]))


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_deeply_nested_json_is_a_400_on_every_route(apps, service):
    client = apps[service].test_client()
    nested = "[" * 1000 + "]" * 1000
    for method, url in every_route(apps[service]):
        for body in (nested, '{"a":' * 1000 + "1" + "}" * 1000):
            response = client.open(url, method=method, data=body, content_type="application/json")
            assert_json_error(response, 400, "json_too_deep", f"{service} {method} {url}")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_oversize_json_is_a_413_on_every_route(apps, service, settings):
    client = apps[service].test_client()
    body = '{"name": "' + "x" * settings.json_max_bytes + '"}'
    for method, url in every_route(apps[service]):
        for content_type in ("application/json", "application/merge-patch+json"):
            response = client.open(url, method=method, data=body, content_type=content_type)
            assert_json_error(response, 413, "payload_too_large", f"{service} {method} {url} {content_type}")


def test_a_chunked_oversize_body_is_refused_while_streaming(apps, settings):
    """No Content-Length (chunked transfer): the limit applies to what is read."""
    body = b'{"username": "' + b"x" * settings.json_max_bytes + b'", "password": "p"}'
    environ = EnvironBuilder(path="/v1/auth/token", method="POST", input_stream=io.BytesIO(body),
                             content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True        # what gunicorn says of a chunked body
    response = apps["orders"].test_client().open(environ)
    assert_json_error(response, 413, "payload_too_large", "chunked")


def test_bodies_within_the_limits_still_reach_the_endpoint(apps, settings):
    client = apps["orders"].test_client()
    at_limit = "[" * settings.json_max_depth + "]" * settings.json_max_depth
    response = client.post("/v1/auth/token", data=at_limit, content_type="application/json")
    assert response.status_code == 422, response.get_json()       # parsed, then refused by the schema
    wrong = client.post("/v1/auth/token", json={"username": "nobody", "password": "guess"})
    assert wrong.status_code == 401


def test_nesting_depth_skips_brackets_inside_strings():
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": [1, {"c": "\\"]]]"}]}', 10) == 3
    assert nesting_depth(b"42", 10) == 0
    assert nesting_depth(b"[" * 50, 5) == 6        # stops counting past the limit
