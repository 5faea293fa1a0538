"""What a webhook request carries: EP's JSON body and EP's headers, signed the Standard Webhooks
way (`deliverers.webhook.signing`)."""

from __future__ import annotations

from typing import Any

import orjson

from deliverers.base import Delivery
from deliverers.config import WebhookConfig
from deliverers.webhook.signing import signature_header


def build_body(delivery: Delivery, *, msg_id: str | None = None) -> bytes:
    """The JSON document EP posts to a webhook (`body_document`), as bytes."""
    return orjson.dumps(body_document(delivery, msg_id=msg_id))


def body_document(delivery: Delivery, *, msg_id: str | None = None) -> dict[str, Any]:
    """The JSON document EP posts to a webhook (`msg_id`: the job id as text).

    `resources` is EP's deprecated copy of `payload`: a JSON-encoded *string* of it, except for
    `*.deleted` events, where EP sends the payload object itself. We do the same, so consumers
    written against EP parse both shapes unchanged.
    """
    target = delivery.target
    payload = delivery.payload
    resources: object
    if delivery.triggered_by.endswith(".deleted"):
        resources = payload
    else:
        resources = orjson.dumps(payload).decode()
    document = {
        "id": msg_id if msg_id is not None else str(delivery.job_id),
        "triggered_by": delivery.triggered_by,
        "attempt": delivery.attempt,
        "integration": {
            "id": str(target.id),
            "integration_type": target.integration_type,
            "name": target.name,
            "description": target.description,
        },
        "payload": payload,
        "resources": resources,
    }
    return document


def build_headers(
    delivery: Delivery,
    config: WebhookConfig,
    body: bytes,
    *,
    timestamp: int,
    user_agent: str,
    msg_id: str | None = None,
) -> dict[str, str]:
    """EP's headers plus the Standard Webhooks signature headers (`msg_id`: the job id as text).

    Raises `ValueError` if a signing secret is not a valid `whsec_` secret.
    """
    if msg_id is None:
        msg_id = str(delivery.job_id)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        "X-MOLTIN-INTEGRATION-TRIGGER": delivery.triggered_by,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    if config.secret_key:
        headers["X-MOLTIN-SECRET-KEY"] = config.secret_key
    secrets = delivery.target.signing_secrets
    if secrets:
        headers["webhook-signature"] = signature_header(
            secrets, msg_id=msg_id, timestamp=timestamp, body=body
        )
    return headers


__all__ = ["body_document", "build_body", "build_headers"]
