"""What the use cases take: the validated inputs of publishing, integrations, replays and
access tokens.

Every edge builds these: the API from `{"data": …}` bodies, the AMQP ingest from messages, the
console from forms. Pydantic checks shapes and bounds here; the use cases check the rest (event
keys against the catalogue, configurations, conditions) and raise `ValidationFailed`. The API's
OpenAPI document is generated from these models too, so their descriptions are the API's docs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from deliverers.config import IntegrationType

Name = Annotated[str, Field(min_length=1, max_length=255)]
Description = Annotated[str, Field(max_length=4096)]
EventKey = Annotated[str, Field(min_length=1, max_length=128)]
Observes = Annotated[list[EventKey], Field(min_length=1, max_length=200)]
MaxInFlight = Annotated[int, Field(ge=1, le=10_000)]
RateLimit = Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)]
ClientId = Annotated[str, Field(min_length=1, max_length=255)]

MAX_IN_FLIGHT_DOC = (
    "(beyond EP) At most this many attempts to this integration at once, across all workers "
    "(1 to 10000); jobs beyond wait their turn. Absent or null: only the workers' concurrency "
    "limits it."
)
RATE_LIMIT_DOC = (
    "(beyond EP) At most this many attempts per second (a fraction is allowed: 0.5 is one "
    "every 2 s), per worker process. Absent or null: unlimited."
)
CONDITIONS_DOC = (
    "(beyond EP) A filter on the event payload: an observed event creates a job only when it "
    'holds. A leaf `{"field": "data.status", "<operator>": <operand>}` (operators `equals`, '
    "`not_equals`, `in`, `not_in`, `exists`, `gt`, `gte`, `lt`, `lte`; `field` a dotted path "
    'into the payload, digits index arrays) or a combinator `{"all": [...]}`, `{"any": [...]}`, '
    '`{"not": {...}}`. Example: `{"all": [{"field": "data.status", "equals": "paid"}, {"any": '
    '[{"field": "data.total", "gte": 100}, {"field": "data.tags", "exists": true}]}]}`. '
    'Equality is typed (`1` ≠ `"1"` ≠ `true`); a leaf on an absent field, or comparing '
    "different types, does not hold (except `exists: false`). At most 5 levels deep, 50 leaves, "
    "100 values per `in`, 16 KiB; problems are 422s whose `source` points into "
    "`data.conditions`. Absent or null: every observed event matches."
)
ORDERING_KEY_DOC = (
    "(beyond EP) A dotted path into the event payload, such as `data.id` (the conditions' "
    "paths: digits index arrays; at most 255 characters and 16 non-empty segments). Jobs whose "
    "payloads hold the same value there are delivered one at a time, in publish order: a job is "
    "not attempted while an earlier job of its value is unfinished, and other values proceed "
    "meanwhile. Ordered, at least once, gaps visible: a job that ends `failed` (retries "
    "exhausted) or `cancelled` lets the next one of its value proceed. A waiting job shows "
    "`status: pending` and `relationships.blocked_by`. A string or number is a key value (an "
    "integral float as the integer); an event whose payload lacks the path, or holds `null`, a "
    "boolean, an object, an array or an empty string there, is delivered unordered. A retried "
    "or replayed job goes to the end of its value's queue. SQS FIFO queues get the value as "
    "`MessageGroupId` (unless `configuration.message_group_key` is set). Absent or null: "
    "unordered."
)
CONFIGURATION_DOC = (
    "By integration_type: webhook {url, secret_key?}; aws_sqs {url, aws_access_key_id, "
    "aws_secret_access_key, region}; stomp {addresses, destination, username?, password?}; "
    "amqp {url, exchange, routing_key?, headers?, declare?, exchange_type?}; web_push (a "
    "browser's PushSubscription) {endpoint, keys: {p256dh, auth}, expirationTime?, ttl?, "
    "urgency?, topic?}. URLs and addresses must not carry credentials (`user:password@`: a "
    "422), except the AMQP URL, whose password is stored encrypted."
)


MAX_DEPTH = 64
"""How deeply objects and arrays may nest in a document the hub takes (a request body, an AMQP
message): far beyond what any resource needs, and far below what the JSON codec can write back
(orjson reads 1,024 levels but writes only 254), so whatever is accepted can be stored and
answered."""


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON document `body` (well-formed: already parsed) nests objects and arrays
    more than `limit` levels.

    Read from the bytes, at C speed, rather than by walking the parsed document (which cost a
    batch publish of 100 events about a tenth of its CPU): the escaped backslashes and quotes
    are dropped, then everything but brackets and quotes, then what lies between quotes (the
    strings' contents); what is left is the document's brackets alone, and each pass that
    removes the innermost pairs (`{}`, `[]`) peels one level."""
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.translate(None, _NOT_A_MARK).split(b'"')[::2])
    depth = 0
    while brackets:
        depth += 1
        if depth > limit:
            return True
        brackets = _INNERMOST.sub(b"", brackets)
    return False


_NOT_A_MARK = bytes(b for b in range(256) if b not in b'{}[]"')
_INNERMOST = re.compile(rb"\{\}|\[\]")


def nesting_problem(body: bytes) -> str | None:
    """Why the JSON document `body` nests too deeply, or None.

    A body with at most `MAX_DEPTH` brackets cannot nest deeper, so most bodies are not read
    twice.
    """
    if body.count(b"{") + body.count(b"[") <= MAX_DEPTH or not too_deep(body):
        return None
    return DEPTH_PROBLEM


DEPTH_PROBLEM = f"objects and arrays must not nest more than {MAX_DEPTH} levels deep"


TIME_RANGE = "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z once in UTC"
"""The instants the hub takes: what Python's datetime holds once the offset is applied (the
tighter of its range and PostgreSQL's), so `0001-01-01T00:00:00+14:00` is out."""


def in_utc(value: datetime) -> datetime:
    """`value` (aware) in UTC; `ValueError` when that instant is outside `TIME_RANGE`."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"must be {TIME_RANGE}") from None


Instant = Annotated[AwareDatetime, AfterValidator(in_utc)]
"""An RFC 3339 time with a zone, within `TIME_RANGE`, as UTC."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _EchoedReadOnly(_In):
    """Read-only attributes an EP client may send back from a GET: accepted and ignored."""

    id: str | None = None
    links: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    disabled_reason: str | None = None
    failing_since: str | None = None


class IntegrationCreate(_EchoedReadOnly):
    """A new integration (`data` of `POST /v2/integrations`)."""

    type: Literal["integration"]
    name: Name
    description: Description | None = None
    enabled: bool = False
    integration_type: IntegrationType
    observes: Observes
    configuration: dict[str, Any] = Field(description=CONFIGURATION_DOC)
    conditions: dict[str, Any] | None = Field(default=None, description=CONDITIONS_DOC)
    max_in_flight: MaxInFlight | None = Field(default=None, description=MAX_IN_FLIGHT_DOC)
    rate_limit: RateLimit | None = Field(default=None, description=RATE_LIMIT_DOC)
    ordering_key: str | None = Field(default=None, description=ORDERING_KEY_DOC)


class IntegrationUpdate(_EchoedReadOnly):
    """A change to an integration (`data` of `PUT /v2/integrations/{id}`): only the attributes
    given change.

    `configuration` is merged into the stored one key by key (unless `integration_type`
    changes, when it replaces it); a secret sent back in its masked form keeps its value, and
    `null` removes an optional field.
    """

    type: Literal["integration"]
    name: Name | None = None
    description: Description | None = None
    enabled: bool | None = None
    integration_type: IntegrationType | None = None
    observes: Observes | None = None
    configuration: dict[str, Any] | None = None
    conditions: dict[str, Any] | None = Field(
        default=None, description=CONDITIONS_DOC + " `null` removes them."
    )
    max_in_flight: MaxInFlight | None = Field(
        default=None, description=MAX_IN_FLIGHT_DOC + " `null` removes the limit."
    )
    rate_limit: RateLimit | None = Field(
        default=None, description=RATE_LIMIT_DOC + " `null` removes the limit."
    )
    ordering_key: str | None = Field(
        default=None,
        description=ORDERING_KEY_DOC
        + " A change applies to jobs created from then on; queued jobs keep their order. `null` "
        "makes new jobs unordered.",
    )


class EventIn(_In):
    """One event to publish (`POST /v2/events`, or an AMQP message)."""

    type: Literal["event"]
    triggered_by: EventKey
    payload: dict[str, Any] = Field(
        description='The resource document: `{"data": {...}, "included": {...}}`.'
    )
    id: ClientId | None = Field(
        default=None, description="Client id: publishing the same id again creates nothing."
    )


ReplayableStatus = Literal["failed", "succeeded", "cancelled"]


class ReplayCreate(_In):
    """A replay of an integration's finished jobs (`POST /v2/integrations/{id}/replay`)."""

    type: Literal["integration-replay"]
    since: Instant = Field(
        description="Replay jobs created at or after this instant (RFC 3339 with a zone, "
        "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z once in UTC)."
    )
    until: Instant | None = Field(
        default=None, description="…and before this one; default: now. Must be after `since`."
    )
    status: list[ReplayableStatus] = Field(
        default=["failed"],
        min_length=1,
        max_length=3,
        description="Replay events whose latest job of the integration ended in one of these "
        'statuses; default `["failed"]`, all three to replay everything that finished.',
    )


class TokenRequest(BaseModel):
    """An OAuth token request (`POST /oauth/access_token`, form-encoded or JSON), as Elastic
    Path's clients send it: `grant_type=client_credentials&client_id=…&client_secret=…`."""

    model_config = ConfigDict(extra="ignore")

    grant_type: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="`client_credentials`; anything else (`implicit` included) is a 400."
    )
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The key's client id: its first 16 characters, `hub_` and 12 hex digits "
        "(`hub keys create` and `hub keys list` print it)."
    )
    client_secret: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="The API key itself. Required for `client_credentials`."
    )
