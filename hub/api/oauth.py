"""`POST /oauth/access_token`: Elastic Path's token endpoint, served at the root (EP's clients
add `/v2` to their API calls but not to this one).

An EP client sends `grant_type=client_credentials&client_id=…&client_secret=…` form-encoded
before its first call and again whenever a call answers 401; the hub also takes the same fields
as a JSON object. The answer is EP's token body; the token then works as
`Authorization: Bearer <token>` wherever a key does (`hub.services.access`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic import ValidationError

from hub.api.http import is_json, json_response, rate_limit, read_json
from hub.api.schemas import AccessTokenOut
from hub.appkeys import ENGINE, SETTINGS
from hub.errors import BadRequest, UnsupportedMediaType, ValidationFailed
from hub.services import access
from hub.services.inputs import TokenRequest
from hub.services.validation import problems

oauth = web.RouteTableDef()

FORM = "application/x-www-form-urlencoded"
#: A token request has three fields; a body of many more is not one.
MAX_FIELDS = 20


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(
            f"The body is not a form-encoded UTF-8 document of at most {MAX_FIELDS} fields"
        ) from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadRequest(f"{name} is given more than once", source=name)
        fields[name] = value
    return fields


async def _fields(request: web.Request) -> dict[str, Any]:
    """The request's fields, form-encoded (also when no Content-Type is given, as OAuth's
    default) or JSON; any other media type is a 415."""
    given = "Content-Type" in request.headers
    media = request.content_type
    if is_json(media):
        document = await read_json(request)
        if not isinstance(document, dict):
            raise ValidationFailed([("the body must be a JSON object", None)])
        return document
    if media == FORM or not given:
        return _form(await request.read())
    raise UnsupportedMediaType(media, accepted=(FORM, "application/json"))


@oauth.post("/oauth/access_token")
async def access_token(request: web.Request) -> web.Response:
    fields = await _fields(request)
    # Form fields are strings; blank ones count as absent, as OAuth clients send them.
    present = {k: v for k, v in fields.items() if v not in ("", None)}
    try:
        token_request = TokenRequest.model_validate(present)
    except ValidationError as exc:
        raise ValidationFailed(problems(exc)) from None
    ttl = request.app[SETTINGS].token_ttl
    async with request.app[ENGINE].begin() as conn:
        issued = await access.issue_token(conn, token_request, ttl=ttl, admit=rate_limit(request))
    body = AccessTokenOut(
        access_token=issued.token,
        expires=int(issued.expires_at.timestamp()),
        expires_in=int(ttl.total_seconds()),
        identifier="client_credentials",
    )
    response = json_response(body.model_dump(mode="json"))
    # RFC 6749 §5.1: a token answer must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
