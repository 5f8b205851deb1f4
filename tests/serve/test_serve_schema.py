"""The service's OpenAPI schema, fuzzed by schemathesis against the live service on 127.0.0.1.

Every operation gets generated requests, valid by the schema and (for those that take
input) invalid; each answer must be no server error, of a documented status and content
type, and match its documented schema; a request outside the schema must be refused (4xx)
and, for ``POST /forecast``, one inside it accepted. Bounded: a few examples per operation
and mode.

Hypothesis drives schemathesis's strategies directly here: schemathesis's own pytest
integration (``from_fixture``) needs a pytest internal that pytest 9 no longer has.
"""

from __future__ import annotations

import json

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

MAX_EXAMPLES = 10
OPERATIONS = [("GET", "/health"), ("GET", "/models"), ("POST", "/forecast"), ("POST", "/forecast/kaggle"),
              ("POST", "/forecast/files")]
CASES = [(m, p, "positive") for m, p in OPERATIONS] + [(m, p, "negative") for m, p in OPERATIONS if m == "POST"]
# Uploaded Kaggle lines and SWAN-SF files are text and bytes to the schema; what makes them
# valid (the layouts of flareseq's readers) no schema states, so "valid by the schema, hence
# accepted" is checked only where the schema states the whole contract.
UPLOADS = ("/forecast/kaggle", "/forecast/files")

# one worker runs them all under xdist: one tiny model trained, one service started
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.xdist_group("serve")]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value):
    """JSON lines are text; a generated non-text body (negative mode) goes as its JSON."""
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else json.dumps(value)).encode()


@pytest.fixture(scope="module")
def api_schema(service):
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


def test_every_operation_of_the_schema_is_fuzzed(api_schema):
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


def one_id_per_sample(case):
    """``ids`` must have as many entries as ``X`` has samples: a constraint between two
    fields that JSON Schema cannot state, kept here for generated valid bodies."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("ids"), list) and isinstance(body.get("X"), list):
        body["ids"] = [str(i) for i in range(len(body["X"]))]
    return case


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_generated_requests_get_documented_answers(api_schema, method, path, mode):
    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
    if mode == "positive":
        strategy = strategy.map(one_id_per_sample)
    excluded = [positive_data_acceptance] if path in UPLOADS else []
    answers = []

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    def check(case):
        answers.append(case.call_and_validate(excluded_checks=excluded, timeout=30).status_code)

    check()
    assert answers and all(status < 500 for status in answers)
    if mode == "negative":
        assert all(400 <= status < 500 for status in answers), answers
    if mode == "positive" and path not in UPLOADS:
        assert all(status == 200 for status in answers), answers
    print(f"{method} {path} {mode}: {len(answers)} requests, statuses {sorted(set(answers))}")
