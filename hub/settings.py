"""The hub's one typed settings object.

Built once at the entry point (`hub.cli`) from `HUB_*` environment variables (and a `.env` file)
and passed down; nothing below the entry point reads `os.environ`.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hub.retry import DEFAULT_SCHEDULE, parse_schedule

#: A browser origin as `Origin` headers carry it: scheme://host[:port], nothing after.
_ORIGIN_RE = re.compile(r"^https?://[^/\s?#]+$")


class Settings(BaseSettings):
    """Every setting of the hub, read from `HUB_*` variables."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str | None = Field(
        default=None,
        description="postgresql:// or postgresql+asyncpg:// URL; unset: embedded PostgreSQL "
        "under `data_dir`.",
    )
    data_dir: Path = Field(default=Path(".hub"), description="Where the embedded server lives.")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Copies of `hub serve` or `hub worker` one command runs (`--processes`), "
        "one per core; the copies of `hub serve` share the port (SO_REUSEPORT).",
    )
    public_url: str | None = Field(
        default=None, description="Base of absolute links; default http://<host>:<port>."
    )
    retry_schedule: Annotated[tuple[timedelta, ...], NoDecode] = DEFAULT_SCHEDULE
    webhook_timeout: float = Field(default=10.0, gt=0, le=300)
    worker_concurrency: int = Field(default=64, ge=1, le=10_000)
    worker_poll_interval: float = Field(default=1.0, gt=0, le=60)
    worker_lease_seconds: float = Field(default=60.0, gt=0)
    worker_grace_seconds: float = Field(default=10.0, ge=0)
    allowed_networks: Annotated[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode
    ] = ()
    trusted_proxies: Annotated[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode
    ] = Field(
        default=(),
        description="Networks of reverse proxies whose X-Forwarded-For names the client (the "
        "console's sign-in throttle counts per client address).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys, comma-separated: the first encrypts stored secrets, all "
        "decrypt (`hub secrets generate-key`, `hub secrets rotate`).",
    )
    signing_secret_grace: timedelta = Field(
        default=timedelta(hours=24),
        description="How long a rotated-out signing secret still signs webhooks (e.g. 24h).",
    )
    api_rate_limit: float = Field(
        default=50.0,
        ge=0,
        description="API requests per second per key, for the deployment as a whole (each API "
        "process enforces its share); 0 turns it off.",
    )
    api_rate_burst: int = Field(
        default=100, ge=1, description="Requests a key may make at once before the rate applies."
    )
    console_sign_in_rate: float = Field(
        default=10.0,
        ge=0,
        description="Console sign-in attempts per minute per client address, for the deployment "
        "as a whole; 0 turns the throttle off.",
    )
    console_sign_in_burst: int = Field(
        default=10, ge=1, description="Sign-in attempts an address may make at once."
    )
    console_sessions_per_key: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="Console sessions one key may hold; a sign-in beyond ends the oldest.",
    )
    heartbeat_interval: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds between a process's heartbeats in the process registry.",
    )
    heartbeat_stale_after: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="Seconds without a heartbeat after which a process counts as gone (at "
        "least twice the interval).",
    )
    token_ttl: timedelta = Field(
        default=timedelta(seconds=3600),
        description="How long an access token from POST /oauth/access_token lives (a bare "
        "number is seconds; 1 s to 1 day).",
    )
    key_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="How long a web process remembers a key or token it verified, so that a "
        "request need not ask the database (0: never). A revoked key is forgotten by every "
        "process at once, through a notice; this bounds what a lost notice could cost.",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Browser origins that may call the API (comma-separated, e.g. "
        "https://shop.example.com; `*` for any); none by default.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, /metrics needs `Authorization: Bearer <token>`; unset: open.",
    )
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a connection has to send a request's headers, from its opening or "
        "from the previous answer; an idle keep-alive connection is closed after as long.",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a request's body has to arrive once its headers have (408 beyond).",
    )
    listen_backlog: int = Field(
        default=2048,
        ge=1,
        le=65535,
        description="Connections the kernel may hold for the API before it takes them (the "
        "listen queue; capped by net.core.somaxconn). A burst of new connections beyond it is "
        "not refused but stalls: each waits for SYN retransmits, 1 s, 3 s, 7 s…",
    )
    max_connections_per_client: int = Field(
        default=256,
        ge=0,
        description="Connections one client address may hold open at once (more are closed on "
        "arrival); 0 turns the cap off, as behind a proxy that every client comes through.",
    )
    max_event_bytes: int = Field(default=1024 * 1024, gt=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    db_pool_size: int = Field(
        default=10,
        ge=1,
        le=500,
        description="Database connections an API process keeps open (and never more: a "
        "request waits for one rather than opening another).",
    )
    publish_max_wait: float = Field(
        default=0.1,
        gt=0,
        le=60,
        description="Seconds a publish may wait to be written; while the oldest waiting one has "
        "waited longer, new publishes are refused with 503 and Retry-After (admission).",
    )
    publish_max_lag: float = Field(
        default=0.01,
        gt=0,
        le=60,
        description="Seconds the API process's event loop may run late (a running average of "
        "its timers' lateness, where one stall counts little) before new publishes are "
        "refused with 503 and Retry-After (admission): a process running that late has more "
        "requests than CPU, and each waits about that long in its socket before it is read.",
    )
    max_integrations_per_store: int = Field(
        default=1000,
        ge=0,
        description="Integrations a store may have (deleted ones aside); 0 turns the quota off.",
    )
    max_jobs_per_publish: int = Field(
        default=10_000,
        ge=0,
        description="Jobs one publish request (or AMQP message) may create; 0: no limit.",
    )
    # AMQP ingest (hub.ingest): consumed by `hub serve` and `hub worker` when the URL is set.
    amqp_url: str | None = Field(
        default=None, description="amqp:// or amqps:// URL of the broker to ingest events from."
    )
    amqp_exchange: str = Field(default="hub.events", min_length=1, max_length=255)
    amqp_queue: str = Field(default="hub.ingest", min_length=1, max_length=255)
    amqp_binding: str = Field(
        default="#", min_length=1, max_length=255, description="Routing keys the queue takes."
    )
    amqp_dead_letter_exchange: str = Field(default="hub.ingest.dlx", min_length=1, max_length=255)
    amqp_dead_letter_queue: str = Field(default="hub.ingest.dead", min_length=1, max_length=255)
    amqp_prefetch: int = Field(default=256, ge=1, le=10_000)
    amqp_store: str | None = Field(
        default=None,
        description="A store trusted for every message on the queue that carries no x-hub-key "
        "(the broker's own access control is then the gate).",
    )
    amqp_requeue_delay: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Seconds before requeueing a message the database was down for.",
    )
    vapid_subject: str | None = Field(
        default=None,
        description="The VAPID `sub` claim of Web Push deliveries: the operator's contact, "
        "mailto:ops@example.com or https://example.com (push services require one).",
    )
    breaker_after: timedelta = Field(
        default=timedelta(days=5),
        description="How long an integration may fail without a break before the circuit "
        "breaker disables it and holds its jobs (e.g. 5d, 12h); 0 turns the breaker off.",
    )
    retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Logs and finished jobs older than this are purged; 0 keeps them forever.",
    )
    retention_interval: float = Field(
        default=15.0, gt=0, le=3600, description="Seconds between the worker's purge passes."
    )

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_schedule(value)
        return value

    @field_validator("breaker_after", "signing_secret_grace", "token_ttl", mode="before")
    @classmethod
    def _parse_duration(cls, value: object) -> object:
        if isinstance(value, str):
            parsed = parse_schedule(value)
            if len(parsed) != 1:
                raise ValueError("give one duration, e.g. 5d, 24h, 30m or 0s")
            return parsed[0]
        return value

    @field_validator("vapid_subject")
    @classmethod
    def _vapid_subject(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        mail = re.fullmatch(r"mailto:[^@\s]+@[^@\s]+", value)
        web = re.fullmatch(r"https://[^/\s:]+(:\d+)?(/\S*)?", value)
        if mail is None and web is None:
            raise ValueError("give a mailto: address or an https: URL, e.g. mailto:ops@example.com")
        return value

    @field_validator("token_ttl")
    @classmethod
    def _check_token_ttl(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(days=1):
            raise ValueError("must be between 1 s and 1 day, e.g. 3600 or 1h")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(","))
        if isinstance(value, list | tuple):
            origins = tuple(
                str(part).strip().rstrip("/").lower() for part in value if str(part).strip()
            )
            for origin in origins:
                if origin != "*" and not _ORIGIN_RE.match(origin):
                    raise ValueError(
                        f"{origin!r} is not an origin: give scheme://host[:port] (no path), or *"
                    )
            return origins
        return value

    @field_validator("allowed_networks", "trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(
                ipaddress.ip_network(part.strip(), strict=False)
                for part in value.split(",")
                if part.strip()
            )
        return value

    @model_validator(mode="after")
    def _check_heartbeat(self) -> Settings:
        if self.heartbeat_stale_after < 2 * self.heartbeat_interval:
            raise ValueError(
                "HUB_HEARTBEAT_STALE_AFTER must be at least twice HUB_HEARTBEAT_INTERVAL, so "
                "that one late heartbeat does not drop a live process"
            )
        return self

    def base_url(self) -> str:
        """The absolute URL that `links.self` and CloudEvents' `source` start with."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def max_attempts(self) -> int:
        """First attempt plus one per entry of the retry schedule."""
        return len(self.retry_schedule) + 1
