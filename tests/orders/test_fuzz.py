"""Schema-driven fuzzing of the orders OpenAPI document (schemathesis), in-process against the Flask
app on the real test database: no generated request may cause a 5xx. Bounded to a few dozen examples
per operation (well under a minute here)."""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from tests.orders.conftest import order_body

EXAMPLES_PER_OPERATION = 40


def test_fuzzing_the_openapi_document_finds_no_server_error(orders_app, admin, menu, api):
    # Real rows for the generated ids to hit (ids 1..3 exist for products, 1..2 for couriers, 1 for orders).
    assert api.post("/v1/orders", json=order_body(menu), headers=admin).status_code == 201
    schema = schemathesis.from_wsgi("/openapi.json", orders_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    failures: list[str] = []

    for operation in operations:
        @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call_wsgi(headers=admin)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                f"{response.get_data(as_text=True)[:300]}")
            case.validate_response(response, checks=(not_a_server_error,))
            if response.status_code >= 400:
                assert set(response.get_json()["error"]) == {"code", "message", "details", "request_id"}

        try:
            check()
        except AssertionError:
            pass                      # collected above; report every failing operation together
        except Exception as exc:      # schemathesis' own check failures
            failures.append(f"{operation.verbose_name}: {type(exc).__name__}: {str(exc)[:300]}")
    assert failures == [], "\n".join(sorted(set(f.split(" -> ")[0] + " " + f[-150:] for f in failures))[:40])
