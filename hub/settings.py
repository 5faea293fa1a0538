"""The hub's one typed settings object.

Built once at the entry point (`hub.cli`) from `HUB_*` environment variables (and a `.env` file)
and passed down; nothing below the entry point reads `os.environ`.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hub.retry import DEFAULT_SCHEDULE, parse_schedule


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
    secret_key: str | None = None
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_event_bytes: int = Field(default=1024 * 1024, gt=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    db_pool_size: int = Field(default=10, ge=1, le=500)

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_schedule(value)
        return value

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(
                ipaddress.ip_network(part.strip(), strict=False)
                for part in value.split(",")
                if part.strip()
            )
        return value

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
