"""Example request bodies of the OpenAPI document, and its `info` section."""

from __future__ import annotations

from typing import Any

_WEBHOOK = {"url": "https://example.com/hooks/orders", "secret_key": "s3cr3t-value"}
_ORDER = {"data": {"type": "order", "id": "8d3c2a52-4c1a-4f0e-9a55-1f6f4b0f5c11"}}

BODY_EXAMPLES: dict[str, dict[str, Any]] = {
    "IntegrationCreateRequest": {
        "webhook": {
            "data": {
                "type": "integration",
                "name": "Order notifications",
                "enabled": True,
                "integration_type": "webhook",
                "observes": ["order.paid", "order.*"],
                "configuration": _WEBHOOK,
            }
        },
        "webhook with conditions": {
            "data": {
                "type": "integration",
                "name": "Big paid orders",
                "enabled": True,
                "integration_type": "webhook",
                "observes": ["order.paid"],
                "configuration": _WEBHOOK,
                "conditions": {
                    "all": [
                        {"field": "data.status", "equals": "paid"},
                        {
                            "any": [
                                {"field": "data.total", "gte": 100},
                                {"field": "data.tags", "exists": True},
                            ]
                        },
                    ]
                },
            }
        },
        "amqp": {
            "data": {
                "type": "integration",
                "name": "Orders to the bus",
                "enabled": True,
                "integration_type": "amqp",
                "observes": ["order.*"],
                "configuration": {
                    "url": "amqps://hub:s3cr3t-value@rabbit.example.com/shop",
                    "exchange": "commerce.events",
                    "headers": {"x-source": "shop"},
                },
            }
        },
        "web_push (a browser's subscription)": {
            "data": {
                "type": "integration",
                "name": "Back-office alerts",
                "enabled": True,
                "integration_type": "web_push",
                "observes": ["order.paid"],
                "configuration": {
                    "endpoint": "https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bHqjZ",
                    "expirationTime": None,
                    "keys": {
                        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u"
                        "-Ts1XbjhazAkj7I99e8QcYP7DkM",
                        "auth": "tBHItJI5svbpez7KI4CCXg",
                    },
                    "ttl": 3600,
                    "urgency": "high",
                },
            }
        },
        "stomp": {
            "data": {
                "type": "integration",
                "name": "ERP feed",
                "integration_type": "stomp",
                "observes": ["*"],
                "configuration": {
                    "addresses": ["stomp+ssl://mq1:61614", "stomp+ssl://mq2:61614"],
                    "destination": "/queue/erp",
                    "username": "hub",
                    "password": "hunter22",
                },
            }
        },
    },
    "IntegrationUpdateRequest": {
        "disable": {"data": {"type": "integration", "enabled": False}},
        "new URL, secret kept": {
            "data": {
                "type": "integration",
                "configuration": {
                    "url": "https://example.com/hooks/v2",
                    "secret_key": "********alue",
                },
            }
        },
        "new host, secret given again": {
            "data": {
                "type": "integration",
                "configuration": {
                    "url": "https://hooks.example.net/orders",
                    "secret_key": "n3w-s3cr3t-value",
                },
            }
        },
    },
    "ReplayCreateRequest": {
        "failed since a date": {
            "data": {"type": "integration-replay", "since": "2026-11-20T08:00:00.000Z"}
        },
        "everything in a window": {
            "data": {
                "type": "integration-replay",
                "since": "2026-11-20T08:00:00.000Z",
                "until": "2026-11-20T12:00:00.000Z",
                "status": ["failed", "succeeded", "cancelled"],
            }
        },
    },
    "PublishRequest": {
        "one event": {"data": {"type": "event", "triggered_by": "order.paid", "payload": _ORDER}},
        "batch": {
            "data": [
                {
                    "type": "event",
                    "id": "ord-1001-paid",
                    "triggered_by": "order.paid",
                    "payload": _ORDER,
                },
                {"type": "event", "triggered_by": "wishlist.created", "payload": {"data": {}}},
            ]
        },
    },
}

INFO = (
    "An event-driven integration hub: a superset of Elastic Path Commerce's Integrations API. "
    "An EP client configured with the server's host and protocol works unchanged: EP's SDKs "
    "add `/v2` to their calls themselves and get their token from `/oauth/access_token` at "
    "the root. What is marked **(beyond EP)** is the hub's own.\n\n"
    "**Auth:** `Authorization: Bearer <api key>`, or `Bearer <access token>` from "
    "`POST /oauth/access_token` (EP's `client_credentials` grant: `client_id` the key's first "
    "16 characters, `client_secret` the key). Every key belongs to one store; everything it "
    "creates, lists or publishes is confined to that store, and another store's resources answer "
    "404. Roles: `view` (read), `manage` (read, change integrations, retry jobs), `publish` "
    "(publish events, read them back), `admin` (all stores, via `X-Hub-Store`). A token has "
    "its key's store and role, and dies with the key. Each key is rate limited (429 with "
    "`Retry-After`); bodies over `HUB_MAX_BODY_BYTES` are a 413, bodies that are not JSON a "
    "415. Integration credentials and signing secrets are stored encrypted and answered "
    "masked.\n\n"
    '**Resources:** `{"data": {...}}` with `id`, `type`, `links.self` and `meta.timestamps` '
    '(RFC 3339 UTC with milliseconds and `Z`). **Lists:** `{"data": [...], "links", '
    '"meta"}`, newest first, ties broken by id; EP\'s `filter=eq(field,value):…` and '
    "`sort=[-]key`.\n\n"
    "**Browsers (CORS):** origins listed in `HUB_CORS_ORIGINS` (or `*`) may call the API and "
    "the token endpoint; preflights are answered for `GET`, `POST`, `PUT`, `DELETE` with "
    "`Authorization`, `Content-Type`, `Idempotency-Key`, `X-Hub-Store` and `X-MOLTIN-*` "
    "headers. The console gets no CORS.\n\n"
    "**Operational events (beyond EP):** the hub publishes events of its own into the store, "
    "observable like any key and delivered like any event: `integration.disabled` (`data`: "
    "the integration's `type`, `id`, `name`, `integration_type`, `enabled: false`, `cause` "
    "`circuit_breaker` | `gone` (a 410) | `operator`, `reason`, `key_id` (the operator's key, "
    "else null), `disabled_at`), `integration.enabled` (the same with `enabled: true`, "
    "`resumed_jobs` and `enabled_at`) and `job.failed` (`data`: `type: integration-job`, the "
    "job's `id`, `status`, `triggered_by`, `attempts`, `reason`, `failed_at`, `last_attempt` "
    "with `status_code`, `error_detail` (up to 1,024 characters) and `body` (the answer's "
    "first 256 characters), `integration` {`id`, `name`, `integration_type`} and `event` "
    "{`id`, `triggered_by`}). Each is written in the transaction of the change it reports, "
    "once per change, with the client id `hub:<key>:…`. They are selected by their key or "
    "their resource's wildcard (`job.*`, `integration.*`), not by `*`. **No loops:** a job "
    "of an operational event that fails publishes no `job.failed`; `integration.disabled` "
    "is always published, but never to the integration it is about (which is disabled). "
    "Clients cannot publish these keys, nor client ids starting with `hub:` (422).\n\n"
    '**Errors:** `{"errors": [{"status", "title", "detail", "source"?}]}` (ErrorsOut); '
    "responses carry `X-Request-Id`: the request's own when it is 1 to 128 characters of "
    "`[A-Za-z0-9._:-]`, else a new one (the request's is then neither echoed nor logged)."
)
