"""Retargeting an integration never hands its stored credentials to a new host.

A `manage` key cannot read a stored secret (answers mask it), so pointing the integration at a
host of its own and sending a test event must not reveal it either: when an update makes the
configuration name an endpoint (scheme, host, port) the stored one did not, each stored secret
must be given again in the same request, or removed with `null` (422 otherwise).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from deliverers.config import SqsConfig, StompConfig, WebhookConfig
from deliverers.webhook import WebhookDeliverer
from hub.ssrf import LOOPBACK
from tests.conftest import Tenant, settings_for, webhook_integration
from tests.support.sinks import Recorder, sink_server
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

Client = TestClient[Any, Any]

SECRET = "very-secret-value"
SQS = {
    "url": "http://127.0.0.1:4566/000000000000/orders",
    "aws_access_key_id": "AKIARETARGETTEST0001",
    "aws_secret_access_key": "retarget/Secret+Access+Key0001",
    "region": "eu-west-1",
}
STOMP = {
    "addresses": ["stomp://127.0.0.1:61613", "stomp://127.0.0.2:61613"],
    "destination": "/queue/orders",
    "username": "hub",
    "password": "stomp-password-0001",
}


def body(integration_type: str, configuration: dict[str, Any]) -> dict[str, Any]:
    created = webhook_integration()
    created["data"] |= {"integration_type": integration_type, "configuration": configuration}
    return created


async def create(api: Client, tenant: Tenant, created: dict[str, Any]) -> str:
    resp = await api.post("/v2/integrations", json=created, headers=tenant.auth("manage"))
    assert resp.status == 201, await resp.text()
    integration_id: str = (await resp.json())["data"]["id"]
    return integration_id


async def put(api: Client, tenant: Tenant, integration_id: str, **config: Any) -> ClientResponse:
    change = {"data": {"type": "integration", "configuration": config}}
    return await api.put(
        f"/v2/integrations/{integration_id}", json=change, headers=tenant.auth("manage")
    )


async def refused(resp: ClientResponse) -> dict[str, str]:
    """The 422's details by source."""
    assert resp.status == 422, await resp.text()
    return {e["source"]: e["detail"] for e in (await resp.json())["errors"]}


# --- the rule, type by type ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://attacker.example/hook",  # another host
        "https://example.com:8443/hook",  # another port
        "http://example.com/hook",  # another scheme: the secret would cross the wire in clear
    ],
)
async def test_a_webhook_pointed_elsewhere_must_be_given_its_secret_again(
    api: Client, tenant: Tenant, url: str
) -> None:
    integration_id = await create(api, tenant, webhook_integration("https://example.com/hook"))

    errors = await refused(await put(api, tenant, integration_id, url=url))

    assert set(errors) == {"data.configuration.secret_key"}
    detail = errors["data.configuration.secret_key"]
    assert "give secret_key again in the same request, or null to remove it" in detail
    assert "never sent to a new host" in detail
    # The masked value a GET shows is not "given again".
    masked = "*" * (len(SECRET) - 4) + SECRET[-4:]
    resp = await put(api, tenant, integration_id, url=url, secret_key=masked)
    assert set(await refused(resp)) == {"data.configuration.secret_key"}


async def test_a_webhook_given_its_secret_again_or_none_may_move(
    api: Client, tenant: Tenant
) -> None:
    first = await create(api, tenant, webhook_integration("https://example.com/hook"))
    second = await create(api, tenant, webhook_integration("https://example.com/hook"))

    again = await put(api, tenant, first, url="https://other.example/hook", secret_key="new-one")
    removed = await put(api, tenant, second, url="https://other.example/hook", secret_key=None)

    assert again.status == 200, await again.text()
    assert (await again.json())["data"]["configuration"]["secret_key"] == "***-one"
    assert removed.status == 200, await removed.text()
    assert "secret_key" not in (await removed.json())["data"]["configuration"]


async def test_a_new_path_on_the_same_host_keeps_the_secret(api: Client, tenant: Tenant) -> None:
    integration_id = await create(api, tenant, webhook_integration("https://example.com/hook"))

    resp = await put(api, tenant, integration_id, url="https://EXAMPLE.com:443/other?x=1")

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["configuration"]["secret_key"].endswith(SECRET[-4:])


async def test_a_webhook_without_a_secret_moves_freely(api: Client, tenant: Tenant) -> None:
    created = webhook_integration("https://example.com/hook")
    del created["data"]["configuration"]["secret_key"]
    integration_id = await create(api, tenant, created)

    resp = await put(api, tenant, integration_id, url="https://other.example/hook")

    assert resp.status == 200, await resp.text()


async def test_an_sqs_queue_on_another_endpoint_needs_both_keys_again(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await create(api, tenant, body("aws_sqs", SQS))
    moved = "http://127.0.0.2:4566/000000000000/orders"

    errors = await refused(await put(api, tenant, integration_id, url=moved))
    only_one = await refused(
        await put(api, tenant, integration_id, url=moved, aws_access_key_id="AKIANEWKEY0000000001")
    )
    both = await put(
        api,
        tenant,
        integration_id,
        url=moved,
        aws_access_key_id="AKIANEWKEY0000000001",
        aws_secret_access_key="new/secret",
    )
    same_endpoint = await put(
        api, tenant, integration_id, url="http://127.0.0.2:4566/000000000000/other-queue"
    )

    assert set(errors) == {
        "data.configuration.aws_access_key_id",
        "data.configuration.aws_secret_access_key",
    }
    assert set(only_one) == {"data.configuration.aws_secret_access_key"}
    assert both.status == 200, await both.text()
    assert same_endpoint.status == 200, await same_endpoint.text()


async def test_a_stomp_address_list_naming_a_new_host_needs_the_password_again(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await create(api, tenant, body("stomp", STOMP))
    first, second = STOMP["addresses"]

    added = await put(api, tenant, integration_id, addresses=[first, "stomp://127.0.0.3:61613"])
    other_port = await put(api, tenant, integration_id, addresses=["stomp://127.0.0.1:61614"])
    reordered = await put(api, tenant, integration_id, addresses=[second, first])
    fewer = await put(api, tenant, integration_id, addresses=[second])

    assert set(await refused(added)) == {"data.configuration.password"}
    assert set(await refused(other_port)) == {"data.configuration.password"}
    # The same brokers, or fewer of them: nobody new gets the password.
    assert reordered.status == 200, await reordered.text()
    assert fewer.status == 200, await fewer.text()


async def test_changing_the_type_replaces_the_configuration_and_carries_nothing_over(
    api: Client, tenant: Tenant
) -> None:
    integration_id = await create(api, tenant, webhook_integration("https://example.com/hook"))

    change = {"data": {"type": "integration", "integration_type": "aws_sqs", "configuration": SQS}}
    resp = await api.put(
        f"/v2/integrations/{integration_id}", json=change, headers=tenant.auth("manage")
    )

    assert resp.status == 200, await resp.text()
    assert "secret_key" not in (await resp.json())["data"]["configuration"]


def test_every_type_with_secrets_declares_its_target_fields() -> None:
    for model in (WebhookConfig, SqsConfig, StompConfig):
        assert model.TARGET_FIELDS, model
        assert model.TARGET_FIELDS.issubset(model.model_fields)
    assert WebhookConfig.endpoints({"url": "https://Example.com/a"}) == {
        ("https", "example.com", 443)
    }
    assert StompConfig.endpoints(STOMP) == {
        ("stomp", "127.0.0.1", 61613),
        ("stomp", "127.0.0.2", 61613),
    }


# --- what the new host receives ----------------------------------------------------------------


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db)
    async with hub_stack(
        fresh_db, settings, [WebhookDeliverer(timeout=5, allowed_networks=LOOPBACK)]
    ) as stack:
        stack.start_worker()
        yield stack


async def test_a_test_event_to_a_retargeted_webhook_never_carries_the_old_secret(
    stack: Stack,
) -> None:
    owner, intruder = Recorder(), Recorder()
    async with sink_server(owner.handle) as owner_url, sink_server(intruder.handle) as other:
        integration_id = await stack.create_integration(webhook_integration(owner_url))
        auth = stack.tenant.auth("manage")
        path = f"/v2/integrations/{integration_id}"

        sneaky = await put(stack.client, stack.tenant, integration_id, url=other)
        assert sneaky.status == 422, await sneaky.text()
        moved = await put(stack.client, stack.tenant, integration_id, url=other, secret_key=None)
        assert moved.status == 200, await moved.text()
        sent = await stack.client.post(f"{path}/test", headers=auth)
        assert sent.status == 202, await sent.text()

        await eventually(lambda: len(intruder.requests) == 1)
    [(headers, _)] = intruder.requests
    assert "X-MOLTIN-SECRET-KEY" not in headers
    assert owner.requests == []
