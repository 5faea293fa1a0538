"""The OpenAPI 3.1 description of the whole API and the routes that serve it.

The schemas come from the same pydantic models that validate requests and render responses
(`hub.api.schemas`, `deliverers.config`); what each route takes and answers comes from the table
in `hub.api.openapi.operations`. `GET /openapi.json` serves the document, `GET /docs` renders it
as a self-contained HTML page (`hub.api.openapi.docs_page`), so the docs work without any network.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import asdict
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import core_schema

from deliverers.config import CONFIG_MODELS
from hub import __version__
from hub.api import schemas as s
from hub.api import status as st
from hub.api.openapi.docs_page import render_docs
from hub.api.openapi.examples import BODY_EXAMPLES, INFO
from hub.api.openapi.operations import OPERATIONS, TAGS, Op, Schema
from hub.api.openapi.parameters import ERRORS, PARAMETERS
from hub.appkeys import SETTINGS
from hub.auth import ROLE_PERMISSIONS, Permission
from hub.errors import ApiError
from hub.services.inputs import TokenRequest

REF = "#/components/schemas/{model}"


class HealthOut(BaseModel):
    """`/healthz` and `/readyz` when all is well."""

    status: Literal["ok"]


class _Generator(GenerateJsonSchema):
    """Responses are dumped without `exclude_none`: every field of an output model is present."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization":
            return True
        return super().field_is_required(field, total)


_REQUESTS: tuple[type[BaseModel], ...] = (
    TokenRequest,
    s.IntegrationCreateRequest,
    s.IntegrationUpdateRequest,
    s.PublishRequest,
    s.ReplayCreateRequest,
    *CONFIG_MODELS.values(),
)
_RESOURCES: tuple[type[BaseModel], ...] = (
    s.IntegrationOut,
    s.JobOut,
    s.LogOut,
    s.EventOut,
    st.IntegrationStatusOut,
    s.ReplayOut,
    s.SecretOut,
    s.VapidKeyOut,
    s.DeletedOut,
    st.DeploymentStatusOut,
)
_OTHERS: tuple[type[BaseModel], ...] = (
    s.ListLinks,
    s.ListMeta,
    s.LogListMeta,
    s.ResultsMeta,
    s.ErrorsOut,
    s.AccessTokenOut,
    HealthOut,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


@functools.cache
def _schemas() -> dict[str, Any]:
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in _REQUESTS]
    pairs += [(m, "serialization") for m in (*_RESOURCES, *_OTHERS)]
    _, top = models_json_schema(pairs, ref_template=REF, schema_generator=_Generator)
    defs: dict[str, Any] = top["$defs"]
    configs = [_ref(model.__name__) for model in CONFIG_MODELS.values()]
    create = defs["IntegrationCreate"]["properties"]
    create["configuration"] = {
        "description": "The configuration of `integration_type`: "
        + ", ".join(f"`{t}` → {m.__name__}" for t, m in CONFIG_MODELS.items())
        + ". Unknown fields are a 422.",
        "oneOf": configs,
    }
    update = defs["IntegrationUpdate"]["properties"]
    update["configuration"]["description"] = (
        "Merged key by key into the stored configuration (fields of "
        + ", ".join(m.__name__ for m in CONFIG_MODELS.values())
        + "): `null` removes an optional field; a secret sent back masked, as a GET shows it, "
        "keeps its stored value. If `integration_type` changes, it replaces the stored "
        "configuration and must be complete for the new type."
    )
    defs["ErrorOut"]["required"].remove("source")  # omitted, not null, when there is none
    defs["ErrorOut"]["properties"]["source"] = {
        "type": "string",
        "description": "The field path (`data.observes[2]`) or query parameter at fault.",
    }
    for props in (create, update):
        for name in ("id", "links", "meta", "disabled_reason", "failing_since"):
            props[name]["description"] = "Read-only; an EP client may echo it back: ignored."
    defs["LogList"] = _envelope(
        {"type": "array", "items": _ref("LogOut")},
        description="A page of logs, with the fields Elastic Path's log lists have besides "
        "the list envelope's: `results` and the page's numbers in `meta`.",
        links=_ref("ListLinks"),
        meta=_ref("LogListMeta"),
        results=_ref("ResultsMeta"),
    )
    defs["PublishResponse"] = _envelope(
        {"oneOf": [_ref("EventOut"), {"type": "array", "items": _ref("EventOut")}]},
        description="`data` is one event, or the array of events in request order for a batch.",
    )
    for op in OPERATIONS:  # `<X>Response` and `<X>List` envelopes of `<X>Out`, as used
        for schema, _ in op.success.values():
            if isinstance(schema, str) and schema not in defs:
                defs[schema] = _envelope_of(schema)
    return dict(sorted(defs.items()))


def _envelope(data: dict[str, Any], description: str | None = None, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "required": ["data", *more],
        "properties": {"data": data, **more},
    }
    if description:
        out["description"] = description
    return out


def _envelope_of(name: str) -> dict[str, Any]:
    """`{"data": <X>Out}` for `<X>Response`; the list envelope for `<X>List`."""
    if name.endswith("Response"):
        return _envelope(_ref(name.removesuffix("Response") + "Out"))
    if name.endswith("List"):
        items = {"type": "array", "items": _ref(name.removesuffix("List") + "Out")}
        return _envelope(items, links=_ref("ListLinks"), meta=_ref("ListMeta"))
    raise KeyError(f"no schema named {name}")


def _error_response(description: str, error: ApiError) -> dict[str, Any]:
    example = {
        "errors": [{k: v for k, v in asdict(i).items() if v is not None} for i in error.items]
    }
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref("ErrorsOut"), "example": example}},
    }
    if error.headers:
        out["headers"] = {
            name: {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            for name in error.headers
        }
    return out


def _body(schema: Schema, description: str, media: str = "application/json") -> dict[str, Any]:
    inline = schema if isinstance(schema, dict) else _ref(schema)
    return {"description": description, "content": {media: {"schema": inline}}}


def _roles(permission: Permission) -> list[str]:
    return [role for role, granted in ROLE_PERMISSIONS.items() if permission in granted]


def _operation(op: Op) -> dict[str, Any]:
    description = op.description
    params = [{"$ref": f"#/components/parameters/{p}"} for p in op.params]
    responses: dict[str, Any] = {
        str(status): _body(schema, text, op.media) for status, (schema, text) in op.success.items()
    }
    errors = set(op.errors)
    extra: dict[str, Any] = {"security": []}
    if op.permission is not None:
        roles = _roles(op.permission)
        description += "\n\nRoles: " + ", ".join(f"`{r}`" for r in roles) + "."
        extra = {"x-hub-roles": roles}
        params.append({"$ref": "#/components/parameters/XHubStore"})
        errors |= {401, 403, 404, 429, 503}
    for status in sorted(errors):
        responses[str(status)] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
        "description": description,
        **extra,
    }
    if params:
        out["parameters"] = params
    if op.body:
        media: dict[str, Any] = {"schema": _ref(op.body)}
        if op.body in BODY_EXAMPLES:
            media["examples"] = {k: {"value": v} for k, v in BODY_EXAMPLES[op.body].items()}
        content = {kind: copy.deepcopy(media) for kind in op.body_media}
        out["requestBody"] = {"required": True, "content": content}
    out["responses"] = dict(sorted(responses.items(), key=lambda item: int(item[0])))
    return out


@functools.lru_cache(maxsize=16)
def _build(base_url: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "hub Integrations API", "version": __version__, "description": INFO},
        "servers": [{"url": base_url}],
        "tags": [{"name": t} for t in TAGS],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "parameters": copy.deepcopy(PARAMETERS),
            "responses": {
                name: _error_response(text, error) for name, text, error in ERRORS.values()
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "hub_<prefix>_<secret> or hubt_<prefix>_<secret>",
                    "description": "An API key from `hub keys create --store NAME --role "
                    "ROLE`, or an access token from `POST /oauth/access_token` (Elastic "
                    "Path's client-credentials flow; the key's store and role, for "
                    "`HUB_TOKEN_TTL`).",
                }
            },
        },
    }


def build_openapi(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document with `base_url` as its server (built once per base URL)."""
    return copy.deepcopy(_build(base_url))


@functools.lru_cache(maxsize=16)
def _rendered(base_url: str) -> tuple[bytes, str]:
    document = _build(base_url)
    return orjson.dumps(document), render_docs(document)


def _base_url(request: web.Request) -> str:
    settings = request.app.get(SETTINGS)
    if settings is not None:
        return settings.base_url()
    return f"{request.scheme}://{request.host}"


openapi_routes = web.RouteTableDef()


@openapi_routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_rendered(_base_url(request))[0], content_type="application/json")


@openapi_routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=_rendered(_base_url(request))[1], content_type="text/html")
