"""Fuzzed request bodies never get a 500: any JSON value, any bytes, and near-valid bodies that reach the real search."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pagelens.retrieve import MODES
from pagelens.settings import Settings
from pagelens.tokens import create_token
from query_api import create_app

pytestmark = pytest.mark.integration
ENDPOINTS = st.sampled_from(["/v1/search", "/v1/query"])
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
# Bodies shaped like the real one, so the fuzzing gets past the type checks into retrieval and answering.
NEAR_VALID = st.fixed_dictionaries(
    {"question": st.text(min_size=1, max_size=300) | JSON_VALUES,
     "namespace": st.sampled_from(["finance", "ops", "empty", "secret", "x-y", ""]) | st.text(max_size=70)},
    optional={"k": st.integers(-3, 60) | JSON_VALUES,
              "mode": st.sampled_from(MODES) | st.text(max_size=10),
              "filters": st.fixed_dictionaries({}, optional={
                  "doc": st.text(max_size=40) | st.sampled_from(["acme_annual_report.pdf", 'a" or namespace != "']),
                  "kind": st.sampled_from(["text", "table", "figure", "ocr"]) | JSON_VALUES,
                  "page_from": st.integers(-2**70, 2**70), "page_to": st.integers(-5, 10)}) | JSON_VALUES,
              "unexpected": JSON_VALUES})


# Bodies of the right types throughout: arbitrary Unicode questions and filter values reach Milvus and the answerer.
WELL_TYPED = st.fixed_dictionaries(
    {"question": st.text(min_size=1, max_size=400), "namespace": st.sampled_from(["finance", "ops"])},
    optional={"k": st.integers(1, 50), "mode": st.sampled_from(MODES),
              "filters": st.fixed_dictionaries({}, optional={
                  "doc": st.text(min_size=1, max_size=60), "kind": st.sampled_from(["text", "table", "figure", "ocr"]),
                  "page_from": st.integers(1, 10**6), "page_to": st.integers(1, 10**6)})})


@pytest.fixture(scope="module")
def fuzz_client(api_settings: Settings) -> tuple[FlaskClient, dict[str, str]]:
    token = create_token(api_settings, ["finance", "ops", "empty"], "fuzz")
    return create_app(api_settings).test_client(), {"Authorization": f"Bearer {token}"}


def assert_contract(response: Any) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        error = response.json["error"]
        assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str) and error["message"]


@settings(FUZZ, max_examples=150)
@given(path=ENDPOINTS, body=JSON_VALUES)
def test_any_json_value(fuzz_client: tuple[FlaskClient, dict[str, str]], path: str, body: Any) -> None:
    client, headers = fuzz_client
    assert_contract(client.post(path, json=body, headers=headers))


@settings(FUZZ, max_examples=100)
@given(path=ENDPOINTS, data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes(fuzz_client: tuple[FlaskClient, dict[str, str]], path: str, data: bytes) -> None:
    client, headers = fuzz_client
    assert_contract(client.post(path, data=data, content_type="application/json", headers=headers))


@settings(FUZZ, max_examples=120)
@given(path=ENDPOINTS, body=NEAR_VALID)
def test_near_valid_bodies(fuzz_client: tuple[FlaskClient, dict[str, str]], path: str, body: dict[str, Any]) -> None:
    client, headers = fuzz_client
    response = client.post(path, json=body, headers=headers)
    event(f"status {response.status_code}")
    assert_contract(response)
    if response.status_code == 200:
        hits = response.json["results"] if path == "/v1/search" else response.json["answer"]["citations"]
        assert {h["doc"] for h in hits} <= {"acme_annual_report.pdf", "warehouse_inspection_scan.png"}


@settings(FUZZ, max_examples=80)
@given(path=ENDPOINTS, body=WELL_TYPED)
def test_well_typed_bodies_with_arbitrary_text(fuzz_client: tuple[FlaskClient, dict[str, str]], path: str,
                                               body: dict[str, Any]) -> None:
    client, headers = fuzz_client
    response = client.post(path, json=body, headers=headers)
    event(f"status {response.status_code}")
    assert_contract(response)
    assert response.status_code in (200, 400)  # 400 only for a blank question or page_from > page_to
