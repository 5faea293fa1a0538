"""Contract tests of the AMQP deliverer against the real RabbitMQ (127.0.0.1:5672): what a
message carries, the publisher confirm, and each failure's own readable `error_detail`
(unroutable, missing exchange, wrong password, a vhost refused, a refused address), never
with the password in it."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest
import structlog

from deliverers.amqp import AmqpDeliverer
from deliverers.amqp.deliverer import CONFIRMED
from deliverers.cloudevent import build_cloudevent
from deliverers.config import AmqpConfig
from hub.ssrf import LOOPBACK
from tests.integration.amqp_destinations import (
    Exchange,
    amqp_url,
    delete_exchange,
    delivery,
    own_exchange,
)
from tests.integration.stomp_helpers import broker_user, rabbitmqctl, unique

SOURCE = "http://hub.test"


@pytest.fixture
async def deliverer() -> AsyncIterator[AmqpDeliverer]:
    deliverer = AmqpDeliverer(source=SOURCE, timeout=5, allowed_networks=LOOPBACK)
    await deliverer.open()
    yield deliverer
    await deliverer.aclose()


@pytest.fixture
async def exchange() -> AsyncIterator[Exchange]:
    async with own_exchange() as exchange:
        yield exchange


def config(exchange: str, **extra: object) -> AmqpConfig:
    return AmqpConfig.model_validate({"url": amqp_url(), "exchange": exchange, **extra})


async def test_a_delivery_is_the_cloudevent_confirmed_by_the_broker_with_its_properties(
    deliverer: AmqpDeliverer, exchange: Exchange
) -> None:
    sent = delivery(config(exchange.name, headers={"x-tenant": "acme"}), attempt=2)

    result = await deliverer.deliver(sent)
    [message] = await exchange.take(1)

    assert result.succeeded, result.error_detail
    assert result.body == CONFIRMED
    assert result.duration > 0
    assert json.loads(message.body) == build_cloudevent(sent, source=SOURCE)
    assert message.routing_key == "order.paid"  # the event key by default
    assert message.content_type == "application/cloudevents+json"
    assert message.delivery_mode == 2  # persistent
    assert message.message_id == str(sent.job_id)
    assert message.type == "order.paid"
    assert message.app_id == "hub"
    assert message.headers == {
        "x-tenant": "acme",
        "hub-event-type": "order.paid",
        "hub-job-id": str(sent.job_id),
        "hub-event-id": str(sent.event_id),
        "hub-attempt": 2,
    }


async def test_a_configured_routing_key_replaces_the_event_key(
    deliverer: AmqpDeliverer, exchange: Exchange
) -> None:
    result = await deliverer.deliver(delivery(config(exchange.name, routing_key="order.all")))
    [message] = await exchange.take(1)

    assert result.succeeded, result.error_detail
    assert message.routing_key == "order.all"


async def test_an_unroutable_message_is_a_failed_attempt_naming_exchange_and_key(
    deliverer: AmqpDeliverer, exchange: Exchange
) -> None:
    result = await deliverer.deliver(delivery(config(exchange.name), key="customer.created"))

    assert not result.succeeded
    assert result.error_detail is not None
    assert "returned the message as unroutable" in result.error_detail
    assert f"exchange {exchange.name!r}" in result.error_detail
    assert "routing key 'customer.created'" in result.error_detail
    assert "312 NO_ROUTE" in result.error_detail
    assert await exchange.depth() == 0
    # The channel survives a returned message: the next one is delivered.
    assert (await deliverer.deliver(delivery(config(exchange.name)))).succeeded


async def test_a_missing_exchange_fails_with_its_name_and_other_exchanges_keep_working(
    deliverer: AmqpDeliverer, exchange: Exchange
) -> None:
    missing = unique("hub-no-such-exchange")

    results = await asyncio.gather(
        *(deliverer.deliver(delivery(config(missing))) for _ in range(5)),
        *(deliverer.deliver(delivery(config(exchange.name))) for _ in range(5)),
    )

    failed, delivered = results[:5], results[5:]
    for result in failed:
        assert not result.succeeded
        assert result.error_detail == (
            f"The exchange {missing!r} does not exist in vhost '/' on the AMQP broker at "
            "127.0.0.1:5672 (declare it, or set declare: true)"
        )
    assert all(r.succeeded for r in delivered), [r.error_detail for r in delivered]
    assert len(await exchange.take(5)) == 5


async def test_declare_creates_a_missing_exchange(deliverer: AmqpDeliverer) -> None:
    name = unique("hub-declared")
    try:
        result = await deliverer.deliver(delivery(config(name, declare=True)))
        again = await deliverer.deliver(delivery(config(name)))  # now it exists
    finally:
        await delete_exchange(name)

    # Declared, but no queue is bound to it yet: the message comes back unroutable.
    assert "unroutable" in str(result.error_detail)
    assert "unroutable" in str(again.error_detail)


async def test_a_wrong_password_is_named_as_such_and_never_shown(
    deliverer: AmqpDeliverer, exchange: Exchange
) -> None:
    async with broker_user() as (user, password):
        wrong = f"{password}-Wr0ng"
        sent = delivery(
            AmqpConfig.model_validate({"url": amqp_url(user, wrong), "exchange": exchange.name})
        )
        with structlog.testing.capture_logs() as logs:
            result = await deliverer.deliver(sent)

    assert not result.succeeded
    assert result.error_detail == (
        f"The AMQP broker at 127.0.0.1:5672 refused the login of user {user!r} "
        "(wrong user name or password)"
    )
    assert wrong not in json.dumps(logs, default=str)
    assert any(entry["event"] == "amqp_failed" for entry in logs)


async def test_a_vhost_the_user_may_not_open_is_named(
    deliverer: AmqpDeliverer, exchange: Exchange
) -> None:
    vhost = unique("hub-no-vhost")
    async with broker_user() as (user, password):
        url = amqp_url(user, password, vhost=vhost)
        result = await deliverer.deliver(
            delivery(AmqpConfig.model_validate({"url": url, "exchange": exchange.name}))
        )

    assert result.error_detail == (
        f"The AMQP broker at 127.0.0.1:5672 refused user {user!r} access to vhost {vhost!r} "
        "(it does not exist, or the user has no permissions on it)"
    )


async def test_a_closed_port_is_a_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    deliverer = AmqpDeliverer(source=SOURCE, timeout=5, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        result = await deliverer.deliver(
            delivery(AmqpConfig.model_validate({"url": url, "exchange": "x"}))
        )
    finally:
        await deliverer.aclose()

    assert result.error_detail == f"Connection refused by 127.0.0.1:{port}"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0x7f.1"])
async def test_the_ssrf_guard_refuses_a_loopback_broker_unless_allowed(host: str) -> None:
    deliverer = AmqpDeliverer(source=SOURCE, timeout=5)  # no network allowed
    await deliverer.open()
    try:
        sent = delivery(
            AmqpConfig.model_validate(
                {"url": f"amqp://guest:guest@{host}:5672/", "exchange": "amq.topic"}
            )
        )
        result = await deliverer.deliver(sent)
    finally:
        await deliverer.aclose()

    assert not result.succeeded
    assert result.error_detail is not None
    assert result.error_detail.startswith("Refused to connect to ")
    assert "loopback" in result.error_detail


async def test_one_connection_serves_every_integration_with_the_same_url(
    deliverer: AmqpDeliverer, exchange: Exchange
) -> None:
    async with broker_user() as (user, password):
        url = amqp_url(user, password)
        configs = [
            AmqpConfig.model_validate({"url": url, "exchange": exchange.name, "routing_key": k})
            for k in ("order.a", "order.b")
        ]
        results = await asyncio.gather(
            *(deliverer.deliver(delivery(configs[i % 2])) for i in range(20))
        )
        out = await rabbitmqctl("list_connections", "--no-table-headers", "user")

        assert [r.error_detail for r in results if not r.succeeded] == []
        assert deliverer.is_connected(configs[0])
        assert out.split().count(user) == 1, "one connection for both integrations"
        assert len(await exchange.take(20)) == 20


async def test_200_concurrent_deliveries_are_all_confirmed(
    deliverer: AmqpDeliverer, exchange: Exchange
) -> None:
    cfg = config(exchange.name)
    await deliverer.deliver(delivery(cfg))  # connected, channel open
    await exchange.take(1)
    sent = [delivery(cfg) for _ in range(200)]

    started = time.perf_counter()
    results = await asyncio.gather(*(deliverer.deliver(d) for d in sent))
    elapsed = time.perf_counter() - started
    received = await exchange.take(200, timeout=20)

    assert [r.error_detail for r in results if not r.succeeded] == []
    assert {m.message_id for m in received} == {str(d.job_id) for d in sent}
    print(f"amqp: 200 concurrent confirmed deliveries in {elapsed:.3f} s")
