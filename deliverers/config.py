"""Per-type configuration of an integration, validated at the API edge and read by deliverers.

These models are the single definition of what each `integration_type` needs; the API builds its
validation errors and OpenAPI schemas from them, and a deliverer receives the parsed model.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import unquote, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from yarl import URL

from hub.ssrf import SsrfGuard

IntegrationType = Literal["webhook", "aws_sqs", "stomp", "amqp", "web_push"]
INTEGRATION_TYPES: tuple[IntegrationType, ...] = get_args(IntegrationType)

NonEmpty = Annotated[str, Field(min_length=1, max_length=2048)]

#: What a secret is shown as inside a masked value of its own form (an AMQP URL's password).
HIDDEN = "****"


Endpoint = tuple[str, str, int | None]
"""Where a target URL leads: its scheme, host (normalised: lower case, IDNA) and port (the
scheme's default when it has one and none is written)."""


def endpoint_of(value: str) -> Endpoint | None:
    """The endpoint of a target URL, None when it is not one (validation says why)."""
    try:
        url = URL(value)
    except (TypeError, ValueError):
        return None
    if not url.scheme or not url.raw_host:
        return None
    return url.scheme.lower(), url.raw_host.lower(), url.port


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()
    """Dotted paths of the fields whose values are secrets (`password`, `keys.auth`): stored
    encrypted, answered masked (`mask_secret`), never logged."""

    @classmethod
    def mask_secret(cls, path: str, value: str) -> str:
        """How the secret at `path` is shown: EP's masking (`mask`) unless a type says
        otherwise. A masked value sent back in a `PUT` keeps the stored secret."""
        return mask(value)

    #: Fields naming where deliveries go: a URL, or a list of them. When an update makes them
    #: name an endpoint (`Endpoint`) the stored configuration did not, the stored secrets are
    #: not carried over to it (`hub.services.integrations`): a new type declares both sets and
    #: gets the rule.
    TARGET_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def endpoints(cls, configuration: Mapping[str, Any]) -> frozenset[Endpoint]:
        """Every endpoint the `TARGET_FIELDS` of a (raw, stored or given) configuration name."""
        found: set[Endpoint] = set()
        for name in cls.TARGET_FIELDS:
            value = configuration.get(name)
            for text in value if isinstance(value, list) else [value]:
                endpoint = endpoint_of(text) if isinstance(text, str) else None
                if endpoint is not None:
                    found.add(endpoint)
        return frozenset(found)


#: The validation context's key for the `SsrfGuard` that judges targets at create/update time.
GUARD = "ssrf_guard"


def _check_target(value: str, info: ValidationInfo) -> None:
    """Refuse a target the SSRF guard can judge without DNS (a literal non-public address, a
    name that is internal by definition) when the API validates with a guard in its context;
    the deliverers judge every resolved address again at delivery time."""
    guard = (info.context or {}).get(GUARD)
    if not isinstance(guard, SsrfGuard):
        return
    try:
        host = URL(value).host  # normalised as the deliverers will see it (IDNA, brackets)
    except ValueError:
        raise ValueError("is not a valid URL") from None
    problem = guard.static_problem(host or "")
    if problem is not None:
        raise ValueError(problem)


def _http_target(value: str, info: ValidationInfo) -> str:
    """An absolute http(s) URL without credentials, judged by `_check_target`."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http or https URL")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials in the URL")
    _check_target(value, info)
    return value


#: The URL of a webhook endpoint or an SQS queue.
HttpTarget = Annotated[NonEmpty, AfterValidator(_http_target)]


class WebhookConfig(_Config):
    """`webhook`: POST each job to `url`; `secret_key` is sent as `X-MOLTIN-SECRET-KEY`."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"secret_key"})
    TARGET_FIELDS: ClassVar[frozenset[str]] = frozenset({"url"})

    url: HttpTarget
    secret_key: Annotated[str, Field(max_length=1024)] | None = None


class SqsConfig(_Config):
    """`aws_sqs`: send each job as a CloudEvent to the queue at `url`."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"aws_access_key_id", "aws_secret_access_key"}
    )
    TARGET_FIELDS: ClassVar[frozenset[str]] = frozenset({"url"})

    url: HttpTarget
    aws_access_key_id: NonEmpty
    aws_secret_access_key: NonEmpty
    region: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]
    message_group_key: Annotated[str, Field(max_length=256)] | None = Field(
        default=None,
        description="(beyond EP) FIFO queues: a dotted path into the payload whose value is the "
        "MessageGroupId; default the integration id.",
    )


class StompConfig(_Config):
    """`stomp`: send each job as a CloudEvent to `destination` on the first reachable address."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"password"})
    TARGET_FIELDS: ClassVar[frozenset[str]] = frozenset({"addresses"})

    addresses: Annotated[list[NonEmpty], Field(min_length=1, max_length=16)]
    destination: NonEmpty
    username: Annotated[str, Field(max_length=256)] | None = None
    password: Annotated[str, Field(max_length=1024)] | None = None

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for index, address in enumerate(value):
            parts = urlsplit(address)
            if "@" in parts.netloc:
                # Not echoed: the text would carry the password into answers and logs.
                raise ValueError(
                    f"address {index} must not carry credentials (user:password@); give them "
                    "as username and password, which are stored encrypted and never shown"
                )
            if parts.scheme not in ("stomp", "stomp+ssl") or not parts.hostname or not parts.port:
                raise ValueError(
                    f"{address!r} is not a stomp://host:port or stomp+ssl://host:port address"
                )
            _check_target(address, info)
        return value


#: An AMQP exchange's name, as AMQP 0-9-1 allows it.
_EXCHANGE_NAME = r"^[A-Za-z0-9_.:-]+$"
#: An AMQP header's name: a token (no `$`, so no header can look like an encrypted value).
_HEADER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_AMQP_PORTS = {"amqp": 5672, "amqps": 5671}


def _amqp_url(value: str, info: ValidationInfo) -> str:
    """An `amqp://user:password@host[:port][/vhost]` (or `amqps://`) URL, judged by
    `_check_target`. Query parameters are refused: aio-pika reads connection options (and
    certificate files on the hub's own disk) from them, which an integration must not set."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid amqp:// or amqps:// URL") from None
    if parts.scheme not in _AMQP_PORTS or not parts.hostname:
        raise ValueError("must be an amqp://user:password@host/vhost or amqps:// URL")
    if not parts.username or parts.password is None:
        raise ValueError("must carry the broker user's name and password (amqp://user:pass@host)")
    if parts.query or parts.fragment:
        raise ValueError("must not carry query parameters or a fragment")
    if parts.path.count("/") > 1:
        raise ValueError("names the vhost in one path segment (a / in its name is %2F)")
    if port == 0:
        raise ValueError("has no valid port")
    _check_target(value, info)
    return value


def amqp_vhost(url: str) -> str:
    """The vhost an AMQP URL names (`/` when it names none), as aiormq reads it."""
    path = urlsplit(url).path
    return "/" if path in ("", "/") else unquote(path[1:])


def mask_amqp_url(url: str) -> str:
    """`amqp://user:****@host:port/vhost`: the URL without its password, all else shown."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:{HIDDEN}@{hostport}", parts.path, "", ""))


class AmqpConfig(_Config):
    """`amqp`: publish each job as a CloudEvent to `exchange` on the broker at `url`."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"url"})
    TARGET_FIELDS: ClassVar[frozenset[str]] = frozenset({"url"})

    url: Annotated[NonEmpty, AfterValidator(_amqp_url)] = Field(
        description="amqp://user:password@host[:port][/vhost] or amqps://; stored encrypted, "
        "shown as amqp://user:****@host/vhost."
    )
    exchange: Annotated[str, Field(min_length=1, max_length=255, pattern=_EXCHANGE_NAME)] = Field(
        description="The exchange to publish to; it must exist unless `declare` is true."
    )
    routing_key: Annotated[str, Field(max_length=255)] | None = Field(
        default=None, description="Default: the event key, e.g. `order.created`."
    )
    headers: Annotated[dict[str, Annotated[str, Field(max_length=1024)]], Field(max_length=32)] | (
        None
    ) = Field(
        default=None,
        description="Extra message headers (names of letters, digits, `_`, `.` and `-`, not "
        "starting with `hub-`, which the hub sets).",
    )
    declare: bool = Field(
        default=False,
        description="Declare the exchange (durable, of `exchange_type`) instead of requiring it.",
    )
    exchange_type: Literal["direct", "fanout", "topic", "headers"] = Field(
        default="topic", description="The type a declared exchange gets (with `declare`)."
    )

    @classmethod
    def mask_secret(cls, path: str, value: str) -> str:
        return mask_amqp_url(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in value or {}:
            if not _HEADER_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not a header name (1 to 128 letters, digits, _, . or -)"
                )
            if name.lower().startswith("hub-"):
                raise ValueError(f"{name!r}: headers starting with hub- are the hub's own")
        return value

    @model_validator(mode="after")
    def _declarable(self) -> AmqpConfig:
        if self.declare and self.exchange.startswith("amq."):
            raise ValueError("exchanges named amq.* are the broker's own and cannot be declared")
        return self


def _base64url(value: str) -> bytes:
    """The bytes of a base64url text, padded or not (browsers send it unpadded)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", value):
        raise ValueError("is not base64url")
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("is not base64url") from None


def _p256dh(value: str) -> str:
    raw = _base64url(value)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError("is not an uncompressed P-256 public key in base64url") from None
    if len(raw) != 65:
        raise ValueError("is not an uncompressed P-256 public key (65 bytes) in base64url")
    return value


def _auth_secret(value: str) -> str:
    if len(_base64url(value)) != 16:
        raise ValueError("is not a 16-byte authentication secret in base64url")
    return value


def _push_endpoint(value: str, info: ValidationInfo) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be the push service's https:// URL")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials in the URL")
    _check_target(value, info)
    return value


class PushKeys(BaseModel):
    """A `PushSubscription`'s `keys`: the browser's ECDH public key and authentication secret."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    p256dh: Annotated[str, Field(max_length=128), AfterValidator(_p256dh)]
    auth: Annotated[str, Field(max_length=64), AfterValidator(_auth_secret)]


class WebPushConfig(_Config):
    """`web_push`: a browser's push subscription (`PushSubscription.toJSON()`), plus options.

    Each job is sent encrypted (RFC 8291, aes128gcm) with a VAPID signature (RFC 8292) of the
    store's key pair.
    """

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"keys.auth"})
    TARGET_FIELDS: ClassVar[frozenset[str]] = frozenset({"endpoint"})

    endpoint: Annotated[NonEmpty, AfterValidator(_push_endpoint)]
    keys: PushKeys
    expirationTime: int | None = Field(  # the browser's own name
        default=None,
        ge=0,
        description="As the browser gives it (ms since the epoch, or null); kept, not acted on: "
        "the push service's 404 or 410 ends a subscription.",
    )
    ttl: int = Field(
        default=86_400,
        ge=0,
        le=2_419_200,
        description="Seconds the push service keeps an undelivered message (`TTL`); default 24 h.",
    )
    urgency: Literal["very-low", "low", "normal", "high"] | None = Field(
        default=None, description="The `Urgency` header; absent: the push service's `normal`."
    )
    topic: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] | None = Field(
        default=None,
        description="The `Topic` header: a newer message with the same topic replaces an "
        "undelivered one (up to 32 base64url characters).",
    )


AnyConfig = WebhookConfig | SqsConfig | StompConfig | AmqpConfig | WebPushConfig

CONFIG_MODELS: dict[str, type[AnyConfig]] = {
    "webhook": WebhookConfig,
    "aws_sqs": SqsConfig,
    "stomp": StompConfig,
    "amqp": AmqpConfig,
    "web_push": WebPushConfig,
}


def secret_fields(integration_type: str) -> frozenset[str]:
    """The dotted paths of a type's secrets, stored encrypted (`hub.crypto.seal_configuration`).

    Per type, never a union of all types': `url` is a secret of `amqp` (it carries the
    password) and not of `webhook`.
    """
    model = CONFIG_MODELS.get(integration_type)
    return frozenset() if model is None else model.SECRET_FIELDS


def mask(value: str) -> str:
    """EP's masking: same length, all but the last 4 characters replaced by `*`."""
    keep = 4 if len(value) > 4 else 0
    return "*" * (len(value) - keep) + value[len(value) - keep :]


def secret_at(configuration: Mapping[str, Any], path: str) -> Any:
    """The value at the dotted `path` of a configuration, or None when there is none."""
    value: Any = configuration
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def with_secret(configuration: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `configuration` with `value` at the dotted `path` (made where it is absent)."""
    head, _, rest = path.partition(".")
    out = dict(configuration)
    if rest:
        inner = out.get(head)
        out[head] = with_secret(inner if isinstance(inner, Mapping) else {}, rest, value)
    else:
        out[head] = value
    return out


def masked_configuration(integration_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
    """The configuration as callers may see it: each secret masked as its type shows it."""
    model = CONFIG_MODELS[integration_type]
    out = configuration
    for path in model.SECRET_FIELDS:
        value = secret_at(configuration, path)
        if isinstance(value, str):
            out = with_secret(out, path, model.mask_secret(path, value))
    return out
