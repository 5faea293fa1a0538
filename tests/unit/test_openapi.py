"""The OpenAPI document (hub/api/openapi.py): valid 3.1, complete, consistent, and served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from pydantic import BaseModel

from deliverers.config import CONFIG_MODELS
from hub.api import schemas
from hub.api.oauth import oauth
from hub.api.openapi import build_openapi, openapi_routes
from hub.api.openapi.examples import BODY_EXAMPLES
from hub.api.ops import ops
from hub.api.routes import routes
from hub.appkeys import SETTINGS
from hub.events import OPERATIONAL_KEYS, load_catalogue, validate_observed, validate_published
from hub.services import inputs
from hub.settings import Settings
from hub.store.records import JobRecord, LogRecord

BASE = "http://hub.test:8080"
METHODS = ("get", "put", "post", "delete", "patch")


def _registered(table: web.RouteTableDef) -> list[tuple[str, str]]:
    return [
        (route.method.lower(), route.path) for route in table if isinstance(route, web.RouteDef)
    ]


API_ROUTES = _registered(routes)
ALL_ROUTES = API_ROUTES + _registered(ops) + _registered(openapi_routes) + _registered(oauth)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi(BASE)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    return _resolve(doc, node["$ref"]) if "$ref" in node else node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _schema_validator(doc: dict[str, Any], name: str) -> OAS31Validator:
    root = {"components": doc["components"], "$ref": f"#/components/schemas/{name}"}
    return OAS31Validator(root)


# --- the document as a whole ----------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1.")
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_the_server_is_the_base_url_and_each_base_url_gets_its_own() -> None:
    assert build_openapi(BASE)["servers"] == [{"url": BASE}]
    assert build_openapi("https://other.example")["servers"] == [{"url": "https://other.example"}]


def test_callers_cannot_corrupt_the_cached_document() -> None:
    first = build_openapi(BASE)
    first["paths"].clear()
    assert build_openapi(BASE)["paths"]


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert _resolve(doc, ref) is not None, ref


def test_every_schema_is_used(doc: dict[str, Any]) -> None:
    used = {ref.rsplit("/", 1)[1] for ref in _refs(doc) if ref.startswith("#/components/schemas/")}
    assert set(doc["components"]["schemas"]) <= used


# --- coverage of the routes -----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES, ids=[f"{m} {p}" for m, p in ALL_ROUTES])
def test_every_registered_route_is_documented(doc: dict[str, Any], method: str, path: str) -> None:
    operation = doc["paths"][path][method]
    assert operation["summary"]
    assert operation["description"]
    assert operation["responses"]


def test_nothing_is_documented_that_is_not_served(doc: dict[str, Any]) -> None:
    documented = {(method, path) for method, path, _ in _operations(doc)}
    assert documented == set(ALL_ROUTES)


def test_operation_ids_are_the_handler_names(doc: dict[str, Any]) -> None:
    handlers = {
        (route.method.lower(), route.path): getattr(route.handler, "__name__", "")
        for route in routes
        if isinstance(route, web.RouteDef)
    }
    for method, path, operation in _operations(doc):
        if (method, path) in handlers:
            assert operation["operationId"] == handlers[(method, path)]


def test_path_ids_are_declared_as_required_uuids(doc: dict[str, Any]) -> None:
    for _, path, operation in _operations(doc):
        names = re.findall(r"{(\w+)}", path)
        params = [_deref(doc, p) for p in operation.get("parameters", [])]
        in_path = {p["name"]: p for p in params if p["in"] == "path"}
        assert set(in_path) == set(names), path
        for param in in_path.values():
            assert param["required"] is True
            assert param["schema"] == {"type": "string", "format": "uuid"}


# --- per-operation contract -----------------------------------------------------------------------


def test_authenticated_operations_need_a_bearer_key_and_answer_the_auth_errors(
    doc: dict[str, Any],
) -> None:
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for method, path, operation in _operations(doc):
        if path.startswith("/v2/"):
            assert "security" not in operation, (method, path)
            assert {"401", "403", "404", "503"} <= set(operation["responses"]), (method, path)
            names = {_deref(doc, p)["name"] for p in operation.get("parameters", [])}
            assert "X-Hub-Store" in names
            assert operation["x-hub-roles"]
            assert "admin" in operation["x-hub-roles"]
        else:
            assert operation["security"] == [], (method, path)


def test_every_error_response_is_the_error_envelope(doc: dict[str, Any]) -> None:
    for _, _, operation in _operations(doc):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                content = _deref(doc, response)["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorsOut"}
    for response in doc["components"]["responses"].values():
        example = response["content"]["application/json"]["example"]
        schemas.ErrorsOut.model_validate(example)
        _schema_validator(doc, "ErrorsOut").validate(example)


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/v2/integrations", {"201", "400", "413", "422"}),
        ("put", "/v2/integrations/{id}", {"200", "400", "413", "422"}),
        ("post", "/v2/events", {"200", "202", "400", "413", "422"}),
        ("post", "/v2/integrations/{id}/jobs/{job_id}/retry", {"202", "409"}),
        ("get", "/v2/integrations", {"200", "400"}),
        ("get", "/readyz", {"200", "503"}),
    ],
)
def test_statuses(doc: dict[str, Any], method: str, path: str, statuses: set[str]) -> None:
    assert statuses <= set(doc["paths"][path][method]["responses"])


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v2/integrations", "IntegrationCreateRequest"),
        ("put", "/v2/integrations/{id}", "IntegrationUpdateRequest"),
        ("post", "/v2/events", "PublishRequest"),
    ],
)
def test_request_bodies(doc: dict[str, Any], method: str, path: str, body: str) -> None:
    request_body = doc["paths"][path][method]["requestBody"]
    assert request_body["required"] is True
    media = request_body["content"]["application/json"]
    assert media["schema"] == {"$ref": f"#/components/schemas/{body}"}


def test_publish_and_idempotency_are_documented(doc: dict[str, Any]) -> None:
    operation = doc["paths"]["/v2/events"]["post"]
    names = {_deref(doc, p)["name"] for p in operation["parameters"]}
    assert "Idempotency-Key" in names
    for status in ("200", "202"):
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/PublishResponse"}
    assert "202 if at least one event was new" in operation["description"]


def test_operational_events_are_documented(doc: dict[str, Any]) -> None:
    intro = doc["info"]["description"]
    assert all(f"`{key}`" in intro for key in OPERATIONAL_KEYS)
    assert "**No loops:**" in intro
    publish = doc["paths"]["/v2/events"]["post"]["description"]
    assert "never one of the hub's operational events" in publish
    assert "starting with `hub:`" in publish
    update = doc["paths"]["/v2/integrations/{id}"]["put"]["description"]
    assert "`integration.disabled` or `integration.enabled`" in update


def test_list_operations_page_and_answer_the_list_envelope(doc: dict[str, Any]) -> None:
    lists = 0
    for method, path, operation in _operations(doc):
        names = {_deref(doc, p)["name"] for p in operation.get("parameters", [])}
        if "page[limit]" not in names:
            continue
        lists += 1
        assert "page[offset]" in names
        schema = _deref(doc, operation["responses"]["200"]["content"]["application/json"]["schema"])
        assert schema["properties"]["data"]["type"] == "array"
        assert schema["properties"]["links"] == {"$ref": "#/components/schemas/ListLinks"}
        assert {"filter", "sort"} <= names, (method, path)
        if path.endswith("/logs"):  # with EP's log list fields
            assert schema["required"] == ["data", "links", "meta", "results"], (method, path)
            assert schema["properties"]["meta"] == {"$ref": "#/components/schemas/LogListMeta"}
            assert schema["properties"]["results"] == {"$ref": "#/components/schemas/ResultsMeta"}
        else:
            assert schema["required"] == ["data", "links", "meta"], (method, path)
            assert schema["properties"]["meta"] == {"$ref": "#/components/schemas/ListMeta"}
    assert lists == 5


def test_filters_are_documented(doc: dict[str, Any]) -> None:
    def names(method: str, path: str) -> set[str]:
        operation = doc["paths"][path][method]
        return {_deref(doc, p)["name"] for p in operation["parameters"]}

    assert {"filter[enabled]", "filter[integration_type]", "filter[observes]"} <= names(
        "get", "/v2/integrations"
    )
    assert "filter[status]" in names("get", "/v2/integrations/{id}/jobs")
    assert "filter[succeeded]" in names("get", "/v2/integrations/logs")
    for path in ("/v2/integrations/logs", "/v2/integrations/{id}/logs"):
        assert {"filter[created_at][gte]", "filter[created_at][lte]"} <= names("get", path)


def test_the_token_endpoint_takes_forms_and_json_and_answers_eps_body(
    doc: dict[str, Any],
) -> None:
    operation = doc["paths"]["/oauth/access_token"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
    assert operation["security"] == []
    assert {"200", "400", "401", "415", "422"} <= set(operation["responses"])
    body = _deref(doc, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(body["required"]) == {
        "access_token",
        "token_type",
        "expires",
        "expires_in",
        "identifier",
    }


# --- schemas from the models ----------------------------------------------------------------------

REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "IntegrationCreateRequest": schemas.IntegrationCreateRequest,
    "IntegrationUpdateRequest": schemas.IntegrationUpdateRequest,
    "PublishRequest": schemas.PublishRequest,
    "ReplayCreateRequest": schemas.ReplayCreateRequest,
}


@pytest.mark.parametrize("name", sorted(BODY_EXAMPLES))
def test_body_examples_pass_the_model_and_the_schema(doc: dict[str, Any], name: str) -> None:
    catalogue = load_catalogue()
    for example in BODY_EXAMPLES[name].values():
        parsed = REQUEST_MODELS[name].model_validate(example)
        _schema_validator(doc, name).validate(example)
        data = getattr(parsed, "data", None)
        if isinstance(data, inputs.IntegrationCreate):
            CONFIG_MODELS[data.integration_type].model_validate(data.configuration)
            assert all(validate_observed(key, catalogue) is None for key in data.observes)
        events = data if isinstance(data, list) else [data]
        for event in events:
            if isinstance(event, inputs.EventIn):
                assert validate_published(event.triggered_by, catalogue) is None


def test_configuration_is_one_of_the_type_models(doc: dict[str, Any]) -> None:
    component = doc["components"]["schemas"]
    configuration = component["IntegrationCreate"]["properties"]["configuration"]
    assert configuration["oneOf"] == [
        {"$ref": f"#/components/schemas/{model.__name__}"} for model in CONFIG_MODELS.values()
    ]
    for model in CONFIG_MODELS.values():
        assert component[model.__name__]["additionalProperties"] is False


def test_responses_rendered_by_the_builders_match_their_schemas(doc: dict[str, Any]) -> None:
    """Responses carry every field, null or not, so each one is required in its schema."""
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    log = LogRecord(uuid4(), uuid4(), uuid4(), uuid4(), 1, False, 0.5, None, None, "timeout", now)
    job = JobRecord(
        uuid4(),
        uuid4(),
        uuid4(),
        uuid4(),
        "order.paid",
        "failed",
        8,
        None,
        "boom",
        None,
        now,
        now,
        None,
    )
    rendered = {
        "LogOut": schemas.log_out(log),
        "JobOut": schemas.job_out(BASE, job),
    }
    for name, model in rendered.items():
        _schema_validator(doc, name).validate(model.model_dump(mode="json"))
        required = doc["components"]["schemas"][name]["required"]
        assert set(required) == set(type(model).model_fields)


# --- served -------------------------------------------------------------------------------------


def _app(settings: Settings | None) -> web.Application:
    app = web.Application()
    if settings is not None:
        app[SETTINGS] = settings
    app.add_routes(openapi_routes)
    return app


async def _get(app: web.Application, path: str) -> tuple[int, str, bytes]:
    async with TestClient(TestServer(app)) as client:
        response = await client.get(path)
        return response.status, response.content_type, await response.read()


async def test_openapi_json_is_served_with_the_public_url() -> None:
    settings = Settings(public_url="https://hub.example.com")
    status, content_type, body = await _get(_app(settings), "/openapi.json")
    assert (status, content_type) == (200, "application/json")
    assert orjson.loads(body) == build_openapi("https://hub.example.com")


async def test_without_settings_the_request_host_is_the_server() -> None:
    status, _, body = await _get(_app(None), "/openapi.json")
    assert status == 200
    assert orjson.loads(body)["servers"][0]["url"].startswith("http://127.0.0.1:")


async def test_the_docs_page_lists_every_path_and_needs_no_network() -> None:
    status, content_type, body = await _get(_app(Settings(public_url=BASE)), "/docs")
    assert (status, content_type) == (200, "text/html")
    page = body.decode()
    assert page.startswith("<!doctype html>")
    for _, path in ALL_ROUTES:
        assert f"<code>{path}</code>" in page, path
    for status_code in ("400", "401", "403", "404", "409", "413", "422", "503"):
        assert f"<strong>{status_code}</strong>" in page
    assert "Idempotency-Key" in page
    assert "X-Hub-Store" in page
    assert 'id="schema-ErrorsOut"' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
