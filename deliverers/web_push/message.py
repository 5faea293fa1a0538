"""What a push message carries: the EP webhook body (`deliverers.webhook.body_document`),
trimmed to fit a push message, and the request's headers.

**The size limit.** Every push service accepts 4096 bytes of encrypted body; the aes128gcm
header and tag leave `MAX_PLAINTEXT` (3993) bytes of JSON. A body over it is trimmed, one step at
a time until it fits, and the parts dropped are listed in a top-level `trimmed` array, so that
the receiving page knows to fetch the resource itself:

1. `resources` (EP's copy of `payload` as a string) goes: `"trimmed": ["resources"]`;
2. then `payload.included`: `["resources", "payload.included"]`;
3. then the body becomes a stub with ids only: `id`, `triggered_by`, `attempt`,
   `integration: {id, integration_type}`, and `payload: {"data": {"type", "id"}}`:
   `["resources", "payload.included", "payload.data", "integration"]`.

A stub that still does not fit (ids of kilobytes) fails the attempt without sending.
"""

from __future__ import annotations

from typing import Any

import orjson

from deliverers.base import Delivery
from deliverers.config import WebPushConfig
from deliverers.webhook import body_document

#: The most bytes of JSON a push message may carry (4096 less 86 of header, 16 of tag, 1 delimiter).
MAX_PLAINTEXT = 3993

TRIMMED = "trimmed"


class TooLarge(ValueError):
    """Even the stub of the body does not fit a push message."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"The event does not fit a push message even as a stub of ids ({size} bytes; "
            f"at most {MAX_PLAINTEXT})"
        )
        self.size = size


def push_document(delivery: Delivery) -> tuple[bytes, tuple[str, ...]]:
    """The body to encrypt, and what was trimmed from it (see the module docstring)."""
    document = body_document(delivery)
    encoded = orjson.dumps(document)
    if len(encoded) <= MAX_PLAINTEXT:
        return encoded, ()
    trimmed: list[str] = []
    for step in (_without_resources, _without_included, _stub):
        document, dropped = step(document)
        trimmed += dropped
        encoded = orjson.dumps({**document, TRIMMED: trimmed})
        if len(encoded) <= MAX_PLAINTEXT:
            return encoded, tuple(trimmed)
    raise TooLarge(len(encoded))


def _without_resources(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    rest = {key: value for key, value in document.items() if key != "resources"}
    return rest, ["resources"]


def _without_included(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    payload = document.get("payload")
    if not isinstance(payload, dict) or "included" not in payload:
        return document, []
    rest = {key: value for key, value in payload.items() if key != "included"}
    return {**document, "payload": rest}, ["payload.included"]


def _stub(document: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    payload = document.get("payload")
    data = payload.get("data", payload) if isinstance(payload, dict) else None
    ids = {key: data[key] for key in ("type", "id") if isinstance(data, dict) and key in data}
    integration = document["integration"]
    stub = {
        "id": document["id"],
        "triggered_by": document["triggered_by"],
        "attempt": document["attempt"],
        "integration": {
            "id": integration["id"],
            "integration_type": integration["integration_type"],
        },
        "payload": {"data": ids},
    }
    return stub, ["payload.data", "integration"]


def build_headers(config: WebPushConfig, *, authorization: str) -> dict[str, str]:
    """The push request's headers (RFC 8030, 8291, 8292)."""
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Encoding": "aes128gcm",
        "TTL": str(config.ttl),
        "Authorization": authorization,
    }
    if config.urgency is not None:
        headers["Urgency"] = config.urgency
    if config.topic is not None:
        headers["Topic"] = config.topic
    return headers


__all__ = ["MAX_PLAINTEXT", "TRIMMED", "TooLarge", "build_headers", "push_document"]
