"""Integration use cases: create, change, delete, read the signing secret, report status."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from deliverers import config as transport_config
from deliverers.config import (
    CONFIG_MODELS,
    GUARD,
    Endpoint,
    secret_at,
    secret_fields,
    with_secret,
)
from hub import conditions, ordering
from hub.errors import NotFound, QuotaExceeded, ValidationFailed
from hub.events import EventCatalogue, validate_observed
from hub.services import operational, push
from hub.services.inputs import IntegrationCreate, IntegrationUpdate
from hub.services.validation import problems
from hub.ssrf import SsrfGuard
from hub.store import integrations, logs, ordered
from hub.store.engine import driver_of
from hub.store.records import IntegrationRecord, IntegrationStatusRecord


def masked_configuration(integration_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
    """The configuration as callers may see it: each secret masked as its type shows it (EP's
    masking, or an AMQP URL without its password)."""
    return transport_config.masked_configuration(integration_type, configuration)


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_observes(observes: list[str], catalogue: EventCatalogue) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for index, key in enumerate(observes):
        reason = validate_observed(key, catalogue)
        if reason is not None:
            found.append((reason, f"data.observes[{index}]"))
    if len(set(observes)) != len(observes):
        found.append(("observes lists a key more than once", "data.observes"))
    return found


WEB_PUSH = "web_push"

#: Without a guard of the caller's, targets must be public (no internal network is allowed).
STRICT = SsrfGuard()


def _check_configuration(
    integration_type: str, configuration: dict[str, Any], guard: SsrfGuard
) -> tuple[dict[str, Any], list[tuple[str, str | None]]]:
    try:
        model = CONFIG_MODELS[integration_type].model_validate(
            configuration, context={GUARD: guard}
        )
    except ValidationError as exc:
        return {}, problems(exc, "data.configuration")
    return model.model_dump(exclude_none=True), []


def _check_ordering_key(raw: str | None) -> list[tuple[str, str | None]]:
    if raw is None:
        return []
    try:
        ordering.parse_ordering_key(raw)
    except conditions.InvalidPath as exc:
        return [(f"data.ordering_key {exc}", "data.ordering_key")]
    return []


def _check_conditions(
    raw: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, list[tuple[str, str | None]]]:
    """The canonical form of `raw` (None: no conditions), or one 422 item per problem."""
    if raw is None:
        return None, []
    try:
        return conditions.to_json(conditions.parse(raw)), []
    except conditions.InvalidCondition as exc:
        return None, [
            (f"data.conditions{path}: {message}", f"data.conditions{path}")
            for message, path in exc.problems
        ]


async def create(
    conn: AsyncConnection,
    catalogue: EventCatalogue,
    store_id: UUID,
    data: IntegrationCreate,
    *,
    guard: SsrfGuard = STRICT,
    max_per_store: int = 0,
) -> IntegrationRecord:
    """`guard` judges the targets (what it can without DNS: see `hub.ssrf`); a store with
    `max_per_store` integrations already (0: no quota) gets `QuotaExceeded`, counted under a
    lock of the store so that concurrent creates cannot pass it together."""
    found = _check_observes(data.observes, catalogue)
    configuration, config_problems = _check_configuration(
        data.integration_type, data.configuration, guard
    )
    found += config_problems
    canonical, condition_problems = _check_conditions(data.conditions)
    found += condition_problems
    found += _check_ordering_key(data.ordering_key)
    if found:
        raise ValidationFailed(found)
    if max_per_store:
        count = await integrations.count_live_locked(conn, store_id)
        if count >= max_per_store:
            raise QuotaExceeded(
                f"This store has {count} integrations, the most it may have "
                f"({max_per_store}, HUB_MAX_INTEGRATIONS_PER_STORE): delete one before "
                "creating another"
            )
    if data.integration_type == WEB_PUSH:
        await push.vapid_key(conn, store_id)  # its pushes are signed with the store's key
    return await integrations.insert_integration(
        conn,
        store_id=store_id,
        name=data.name,
        description=data.description,
        enabled=data.enabled,
        integration_type=data.integration_type,
        observes=data.observes,
        configuration=configuration,
        signing_secret=new_signing_secret(),
        conditions=canonical,
        max_in_flight=data.max_in_flight,
        rate_limit=data.rate_limit,
        ordering_key=data.ordering_key,
        secret_fields=secret_fields(data.integration_type),
    )


def _merge_configuration(
    current: IntegrationRecord, new_type: str, given: dict[str, Any]
) -> dict[str, Any]:
    """Key-by-key merge into the stored configuration; see `IntegrationUpdate`."""
    if new_type != current.integration_type:
        return dict(given)
    merged = dict(current.configuration)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    model = CONFIG_MODELS[new_type]
    for path in model.SECRET_FIELDS:
        stored = secret_at(current.configuration, path)
        if isinstance(stored, str) and secret_at(merged, path) == model.mask_secret(path, stored):
            merged = with_secret(merged, path, stored)  # echoed back masked: keep the secret
    return merged


def _spelled(endpoint: Endpoint) -> str:
    scheme, host, port = endpoint
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _retargeting_problems(
    current: IntegrationRecord, new_type: str, given: dict[str, Any], merged: dict[str, Any]
) -> list[tuple[str, str | None]]:
    """Stored secrets that an update would carry over to an endpoint they were not given for.

    A configuration's endpoints are what its `TARGET_FIELDS` name (scheme, host and port; see
    `deliverers.config.Endpoint`). When the update makes them name one the stored configuration
    did not (another host, port or scheme; an address added to a STOMP list), each stored secret
    must be given again in the same request, or removed with `null`: otherwise a `manage` key
    could point an integration at a host of its own and have the hub send it the secret that no
    answer ever shows. Paths are not endpoints: a queue or a path on the same host keeps them.
    """
    if new_type != current.integration_type:
        return []  # the given configuration replaces the stored one whole: nothing carries over
    model = CONFIG_MODELS[new_type]
    added = model.endpoints(merged) - model.endpoints(current.configuration)
    if not added:
        return []
    found: list[tuple[str, str | None]] = []
    where = ", ".join(sorted(_spelled(endpoint) for endpoint in added))
    for name in sorted(model.SECRET_FIELDS - model.TARGET_FIELDS):
        stored = secret_at(current.configuration, name)
        if stored is None or secret_at(merged, name) is None:
            continue  # none stored, or removed by this request
        value = secret_at(given, name)
        masked = isinstance(stored, str) and value == model.mask_secret(name, stored)
        if value is not None and not masked:
            continue  # given anew in this request
        found.append(
            (
                f"data.configuration.{name}: the integration's target changes to {where}, "
                f"which the stored {name} was not given for; stored credentials are never "
                f"sent to a new host: give {name} again in the same request, or null to "
                "remove it",
                f"data.configuration.{name}",
            )
        )
    return found


async def update(
    conn: AsyncConnection,
    catalogue: EventCatalogue,
    store_id: UUID,
    integration_id: UUID,
    data: IntegrationUpdate,
    *,
    guard: SsrfGuard = STRICT,
    key_id: UUID | None = None,
    via: str | None = None,
) -> IntegrationRecord:
    """Change the given attributes. Switching it off or on publishes ``integration.disabled``
    or ``integration.enabled`` (`hub.services.operational`) in the caller's transaction, naming
    the operator's key (`key_id`) and the edge it came through (`via`: "the API", …)."""
    # Disabling cancels waiting jobs: no ordered job may be appended or let go meanwhile; nor
    # may any to the ordered integrations that observe the switch's own event.
    locked = {integration_id}
    if "enabled" in data.model_fields_set:
        locked |= await operational.observers_to_lock(conn, [store_id], operational.AFTER_SWITCHING)
    await ordered.lock_queues(await driver_of(conn), locked)
    current = await integrations.get_integration(conn, store_id, integration_id, for_update=True)
    if current is None:
        raise NotFound()
    given = data.model_fields_set
    changes: dict[str, Any] = {}
    found: list[tuple[str, str | None]] = []
    for field in ("name", "description", "enabled"):
        if field in given:
            value = getattr(data, field)
            if value is None and field != "description":
                found.append((f"data.{field} must not be null", f"data.{field}"))
            changes[field] = value
    for field in ("max_in_flight", "rate_limit"):  # null removes the limit
        if field in given:
            changes[field] = getattr(data, field)
    if "ordering_key" in given:  # null: new jobs are unordered
        found += _check_ordering_key(data.ordering_key)
        changes["ordering_key"] = data.ordering_key
    if "observes" in given:
        if data.observes is None:
            found.append(("data.observes must not be null", "data.observes"))
        else:
            found += _check_observes(data.observes, catalogue)
            changes["observes"] = data.observes
    new_type = data.integration_type or current.integration_type
    if "integration_type" in given and data.integration_type is None:
        found.append(("data.integration_type must not be null", "data.integration_type"))
    if "configuration" in given and data.configuration is None:
        found.append(("data.configuration must not be null", "data.configuration"))
    if data.configuration is not None or new_type != current.integration_type:
        merged = _merge_configuration(current, new_type, data.configuration or {})
        configuration, config_problems = _check_configuration(new_type, merged, guard)
        found += config_problems
        found += _retargeting_problems(current, new_type, data.configuration or {}, merged)
        changes["configuration"] = configuration
        changes["integration_type"] = new_type
    if "conditions" in given:
        canonical, condition_problems = _check_conditions(data.conditions)
        found += condition_problems
        changes["conditions"] = canonical
    if found:
        raise ValidationFailed(found)
    if new_type == WEB_PUSH and current.integration_type != WEB_PUSH:
        await push.vapid_key(conn, store_id)
    if changes.get("enabled") is True:
        changes["disabled_reason"] = None
    if "enabled" in changes and changes["enabled"] != current.enabled:
        changes["failing_since"] = None  # the circuit breaker's clock starts afresh
    record = await integrations.update_integration(
        conn, store_id, integration_id, changes, secret_fields=secret_fields(new_type)
    )
    if record is None:
        raise NotFound()
    if current.enabled and not record.enabled:
        await integrations.cancel_pending(
            conn, integration_id, reason="the integration was disabled"
        )
        await operational.switched_by_operator(conn, record, key_id=key_id, via=via)
    if not current.enabled and record.enabled:
        resumed = await integrations.resume_held(conn, integration_id)  # held by the breaker
        await operational.switched_by_operator(
            conn, record, key_id=key_id, via=via, resumed_jobs=resumed
        )
    return record


STATUS_WINDOW = timedelta(hours=1)
"""How far back the status's `attempts_1h` and `success_rate_1h` look."""


async def status(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID
) -> IntegrationStatusRecord:
    integration = await integrations.get_integration(conn, store_id, integration_id)
    if integration is None:
        raise NotFound()
    return await logs.integration_status(conn, integration, window=STATUS_WINDOW)


async def delete(conn: AsyncConnection, store_id: UUID, integration_id: UUID) -> None:
    await ordered.lock_queues(await driver_of(conn), [integration_id])  # as `update`
    if not await integrations.delete_integration(conn, store_id, integration_id):
        raise NotFound()
    await integrations.cancel_pending(conn, integration_id, reason="the integration was deleted")
