"""Per-type configuration of an integration, validated at the API edge and read by deliverers.

These models are the single definition of what each `integration_type` needs; the API builds its
validation errors and OpenAPI schemas from them, and a deliverer receives the parsed model.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from yarl import URL

from hub.ssrf import SsrfGuard

IntegrationType = Literal["webhook", "aws_sqs", "stomp"]
INTEGRATION_TYPES: tuple[IntegrationType, ...] = ("webhook", "aws_sqs", "stomp")

NonEmpty = Annotated[str, Field(min_length=1, max_length=2048)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    #: Fields whose values are secrets: masked in responses, never logged.
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()


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

    url: HttpTarget
    secret_key: Annotated[str, Field(max_length=1024)] | None = None


class SqsConfig(_Config):
    """`aws_sqs`: send each job as a CloudEvent to the queue at `url`."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"aws_access_key_id", "aws_secret_access_key"}
    )

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

    addresses: Annotated[list[NonEmpty], Field(min_length=1, max_length=16)]
    destination: NonEmpty
    username: Annotated[str, Field(max_length=256)] | None = None
    password: Annotated[str, Field(max_length=1024)] | None = None

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for address in value:
            parts = urlsplit(address)
            if parts.scheme not in ("stomp", "stomp+ssl") or not parts.hostname or not parts.port:
                raise ValueError(
                    f"{address!r} is not a stomp://host:port or stomp+ssl://host:port address"
                )
            _check_target(address, info)
        return value


AnyConfig = WebhookConfig | SqsConfig | StompConfig

CONFIG_MODELS: dict[str, type[AnyConfig]] = {
    "webhook": WebhookConfig,
    "aws_sqs": SqsConfig,
    "stomp": StompConfig,
}


SECRET_FIELD_NAMES: frozenset[str] = frozenset().union(
    *(model.SECRET_FIELDS for model in CONFIG_MODELS.values())
)
"""Every configuration field that holds a secret, whatever the type: encrypted at rest."""


def mask(value: str) -> str:
    """EP's masking: same length, all but the last 4 characters replaced by `*`."""
    keep = 4 if len(value) > 4 else 0
    return "*" * (len(value) - keep) + value[len(value) - keep :]
