"""Contract tests of the STOMP deliverer against RabbitMQ's STOMP plugin, plus a tiny fake STOMP
server on loopback for what RabbitMQ will not do on demand (withhold a RECEIPT, stay silent
after CONNECT, present an untrusted certificate)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import structlog

from deliverers.base import DeliveryResult
from deliverers.config import StompConfig, WebhookConfig
from deliverers.stomp import StompDeliverer
from hub.ssrf import LOOPBACK
from tests.integration.stomp_helpers import (
    BROKER,
    PAYLOAD,
    FakeBroker,
    broker_queue,
    broker_user,
    closed_port,
    drop_stomp_connections_of,
    make_delivery,
    stomp_config,
    stomp_connections_of,
    subscribed,
    unique,
)
from tests.support.waiting import eventually
from tests.tls import self_signed_certificate

SOURCE = "http://hub.test"


@pytest.fixture
async def deliverer() -> AsyncIterator[StompDeliverer]:
    deliverer = StompDeliverer(source=SOURCE, timeout=3, allowed_networks=LOOPBACK)
    await deliverer.open()
    yield deliverer
    await deliverer.aclose()


@pytest.fixture
async def queue() -> AsyncIterator[str]:
    async with broker_queue() as destination:
        yield destination


@pytest.fixture(scope="module")
async def user() -> AsyncIterator[tuple[str, str]]:
    """A broker user of this module's own (per xdist worker): its connections are ours alone."""
    async with broker_user() as credentials:
        yield credentials


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("stomp-tls"))


@pytest.fixture(scope="session")
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def failed(result: DeliveryResult) -> str:
    assert result.succeeded is False, result
    assert result.error_detail is not None
    assert result.status_code is None
    return result.error_detail


# --- what arrives ----------------------------------------------------------------------------


async def test_a_delivery_to_a_queue_arrives_as_a_cloudevent_with_the_hub_headers(
    deliverer: StompDeliverer, queue: str
) -> None:
    delivery = make_delivery(stomp_config(queue), triggered_by="order.paid", attempt=2)
    async with subscribed(queue) as subscriber:
        result = await deliverer.deliver(delivery)
        message = await subscriber.next()
        await subscriber.assert_no_more()

    assert result.succeeded is True, result.error_detail
    assert result.body is not None
    assert result.body.startswith("receipt ")
    assert result.error_detail is None
    assert result.status_code is None
    assert result.duration > 0

    document = json.loads(message.body)
    assert document == {
        "specversion": "1.0",
        "id": str(delivery.job_id),
        "type": "order.paid",
        "source": SOURCE,
        "datacontenttype": "application/json",
        "time": delivery.event_time.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{delivery.event_time.microsecond // 1000:03d}Z",
        "integrationid": str(delivery.target.id),
        "storeid": str(delivery.target.store_id),
        "data": PAYLOAD["data"],
        "included": PAYLOAD["included"],
    }
    headers = message.headers
    assert headers["destination"] == queue
    assert headers["content-type"] == "application/json"
    assert headers["persistent"] == "true"
    assert headers["hub-event-type"] == "order.paid"
    assert headers["hub-job-id"] == str(delivery.job_id)
    assert headers["hub-event-id"] == str(delivery.event_id)
    assert headers["hub-attempt"] == "2"


async def test_a_delivery_to_a_topic_reaches_a_subscriber_listening_before_it(
    deliverer: StompDeliverer,
) -> None:
    topic = f"/topic/{unique()}"
    delivery = make_delivery(stomp_config(topic), triggered_by="customer.created")
    async with subscribed(topic) as first, subscribed(topic) as second:
        result = await deliverer.deliver(delivery)
        messages = [await first.next(), await second.next()]

    assert result.succeeded is True, result.error_detail
    for message in messages:
        assert json.loads(message.body)["id"] == str(delivery.job_id)
        assert json.loads(message.body)["type"] == "customer.created"
        assert message.headers["hub-event-type"] == "customer.created"


async def test_a_payload_without_included_is_sent_without_it(
    deliverer: StompDeliverer, queue: str
) -> None:
    payload = {"data": {"type": "customer", "id": "c-1"}}
    async with subscribed(queue) as subscriber:
        result = await deliverer.deliver(make_delivery(stomp_config(queue), payload=payload))
        document = json.loads((await subscriber.next()).body)

    assert result.succeeded is True, result.error_detail
    assert document["data"] == payload["data"]
    assert "included" not in document


# --- connections -----------------------------------------------------------------------------


async def test_concurrent_deliveries_share_one_connection(
    queue: str, user: tuple[str, str]
) -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=5, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        config = stomp_config(queue, username=user[0], password=user[1])
        deliveries = [make_delivery(config) for _ in range(20)]
        async with subscribed(queue) as subscriber:
            results = await asyncio.gather(*map(deliverer.deliver, deliveries))
            received = {json.loads((await subscriber.next()).body)["id"] for _ in deliveries}

        assert [r.error_detail for r in results if not r.succeeded] == []
        assert len({r.body for r in results}) == 20  # a receipt each
        assert received == {str(d.job_id) for d in deliveries}
        await eventually(lambda: _connections_are(user[0], 1), timeout=5)
    finally:
        await deliverer.aclose()


async def test_a_connection_the_broker_drops_is_reopened_by_the_next_delivery(
    queue: str, user: tuple[str, str]
) -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=5, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        config = stomp_config(queue, username=user[0], password=user[1])
        async with subscribed(queue) as subscriber:
            first = await deliverer.deliver(make_delivery(config))
            assert first.succeeded is True, first.error_detail
            await subscriber.next()

            dropped = await drop_stomp_connections_of(user[0])
            assert dropped
            await eventually(lambda: _disconnected(deliverer, config), timeout=5)

            second = make_delivery(config)
            result = await deliverer.deliver(second)
            assert result.succeeded is True, result.error_detail
            assert json.loads((await subscriber.next()).body)["id"] == str(second.job_id)
            [now] = await stomp_connections_of(user[0])
            assert now not in dropped
    finally:
        await deliverer.aclose()


async def _connections_are(user: str, count: int) -> bool:
    return len(await stomp_connections_of(user)) == count


async def _disconnected(deliverer: StompDeliverer, config: StompConfig) -> bool:
    return not deliverer.is_connected(config)


async def test_a_dead_first_address_fails_over_to_the_second(
    deliverer: StompDeliverer, queue: str
) -> None:
    dead = f"stomp://127.0.0.1:{closed_port()}"
    config = stomp_config(queue, addresses=[dead, BROKER])
    async with subscribed(queue) as subscriber:
        result = await deliverer.deliver(make_delivery(config))
        await subscriber.next()

    assert result.succeeded is True, result.error_detail
    assert deliverer.is_connected(config)


async def test_connection_refused_on_every_address_lists_each_address(
    deliverer: StompDeliverer,
) -> None:
    first, second = f"stomp://127.0.0.1:{closed_port()}", f"stomp://127.0.0.1:{closed_port()}"
    config = stomp_config("/queue/never", addresses=[first, second])

    detail = failed(await deliverer.deliver(make_delivery(config)))

    assert detail == (
        "Could not connect to the STOMP broker at any address: "
        f"{first} (connection refused), {second} (connection refused)"
    )


async def test_bad_credentials_are_a_refused_login_and_the_password_shows_nowhere(
    deliverer: StompDeliverer,
) -> None:
    password = unique("pw")
    config = stomp_config("/queue/never", username="nobody-" + unique(), password=password)

    with structlog.testing.capture_logs() as logs:
        detail = failed(await deliverer.deliver(make_delivery(config)))

    assert detail.startswith(f"The STOMP broker at {BROKER} refused the login: ")
    assert "Access refused for user" in detail
    assert password not in detail
    assert logs, "the failure is logged"
    assert all(password not in repr(entry) for entry in logs)
    assert not deliverer.is_connected(config)


async def test_a_destination_the_broker_rejects_is_an_error_frame_failure_with_its_message(
    deliverer: StompDeliverer, queue: str
) -> None:
    good, bad = stomp_config(queue), stomp_config("/invalid/x")
    async with subscribed(queue) as subscriber:
        # Concurrently on one connection: the ERROR must land on the bad one only.
        results = await asyncio.gather(
            deliverer.deliver(make_delivery(good)),
            deliverer.deliver(make_delivery(bad)),
            deliverer.deliver(make_delivery(good)),
        )
        await subscriber.next()
        await subscriber.next()

    ok_before, rejected, ok_after = results
    assert ok_before.succeeded is True, ok_before.error_detail
    assert ok_after.succeeded is True, ok_after.error_detail
    detail = failed(rejected)
    assert detail.startswith("The STOMP broker answered with an ERROR frame: Unknown destination")
    assert "'/invalid/x' is not a valid destination" in detail
    assert rejected.duration < 3  # answered, not timed out


async def test_tls_to_a_plain_stomp_port_is_a_tls_failure(deliverer: StompDeliverer) -> None:
    address = BROKER.replace("stomp://", "stomp+ssl://")
    detail = failed(
        await deliverer.deliver(make_delivery(stomp_config("/queue/x", addresses=[address])))
    )

    assert detail.startswith(f"Could not connect to the STOMP broker at {address} (TLS handshake")


# --- with a fake broker ----------------------------------------------------------------------


async def test_a_send_the_broker_never_confirms_fails_after_the_timeout() -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=0.5, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        async with FakeBroker(confirm=False) as broker:
            config = stomp_config("/queue/orders", addresses=[broker.address])
            result = await deliverer.deliver(make_delivery(config))
            [send] = broker.sent()
    finally:
        await deliverer.aclose()

    detail = failed(result)
    assert detail == (
        f"The STOMP broker at {broker.address} did not confirm the message (no RECEIPT) "
        "within 0.5 s"
    )
    assert 0.5 <= result.duration < 1.5
    assert send.headers["receipt"]


async def test_a_broker_that_never_answers_connect_is_a_timeout() -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=0.5, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        async with FakeBroker(answer_connect=False) as broker:
            config = stomp_config("/queue/orders", addresses=[broker.address])
            result = await deliverer.deliver(make_delivery(config))
            [connect] = broker.frames
    finally:
        await deliverer.aclose()

    detail = failed(result)
    assert detail.startswith(f"Could not connect to the STOMP broker at {broker.address} (no ")
    assert "answer to CONNECT" in detail
    assert connect.command == "CONNECT"
    assert connect.headers["login"] == "guest"
    assert connect.headers["host"] == "/"
    assert connect.headers["heart-beat"] == "10000,10000"
    assert connect.headers["accept-version"] == "1.2"


@pytest.mark.parametrize("names_receipt", [False, True], ids=["rabbitmq-style", "with-receipt-id"])
async def test_an_error_frame_is_pinned_on_the_send_it_is_about_while_others_await_receipts(
    names_receipt: bool,
) -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=3, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        broker = FakeBroker(
            reject=frozenset({"/queue/bad"}), receipt_delay=0.3, error_names_receipt=names_receipt
        )
        async with broker:
            good = stomp_config("/queue/good", addresses=[broker.address])
            bad = stomp_config("/queue/bad", addresses=[broker.address])
            deliveries = [make_delivery(good), make_delivery(bad), make_delivery(good)]
            results = await asyncio.gather(*map(deliverer.deliver, deliveries))
            assert broker.accepted == 1
    finally:
        await deliverer.aclose()

    assert [r.succeeded for r in results] == [True, False, True]
    assert failed(results[1]) == (
        "The STOMP broker answered with an ERROR frame: "
        "Unknown destination (/queue/bad is not allowed)"
    )
    assert results[1].duration < 2


async def test_an_untrusted_certificate_is_a_tls_failure(server_tls: ssl.SSLContext) -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=2, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        async with FakeBroker(ssl_context=server_tls) as broker:
            config = stomp_config("/queue/orders", addresses=[broker.address])
            detail = failed(await deliverer.deliver(make_delivery(config)))
    finally:
        await deliverer.aclose()

    assert detail.startswith(
        f"Could not connect to the STOMP broker at {broker.address} "
        "(TLS handshake failed: certificate verify failed: "
    )
    assert "self-signed certificate" in detail


async def test_a_tls_broker_with_a_trusted_certificate_receives_the_message(
    server_tls: ssl.SSLContext, certificate: tuple[Path, Path]
) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    deliverer = StompDeliverer(
        source=SOURCE, timeout=2, ssl_context=trust, allowed_networks=LOOPBACK
    )
    await deliverer.open()
    try:
        async with FakeBroker(ssl_context=server_tls) as broker:
            config = stomp_config("/queue/orders", addresses=[broker.address])
            delivery = make_delivery(config)
            first = await deliverer.deliver(delivery)
            again = await deliverer.deliver(make_delivery(config))
            sends = broker.sent()
            assert broker.accepted == 1
            await deliverer.aclose()
            await eventually(lambda: _none_live(broker), timeout=3)
    finally:
        await deliverer.aclose()

    assert first.succeeded is True, first.error_detail
    assert again.succeeded is True, again.error_detail
    assert json.loads(sends[0].body)["id"] == str(delivery.job_id)
    assert sends[0].headers["content-type"] == "application/json"


async def test_a_tls_connection_the_broker_drops_is_noticed_and_reopened(
    server_tls: ssl.SSLContext, certificate: tuple[Path, Path]
) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    deliverer = StompDeliverer(
        source=SOURCE, timeout=2, ssl_context=trust, allowed_networks=LOOPBACK
    )
    await deliverer.open()
    try:
        async with FakeBroker(ssl_context=server_tls) as broker:
            config = stomp_config("/queue/orders", addresses=[broker.address])
            assert (await deliverer.deliver(make_delivery(config))).succeeded

            broker.drop()
            await eventually(lambda: _disconnected(deliverer, config), timeout=3)

            result = await deliverer.deliver(make_delivery(config))
            assert result.succeeded is True, result.error_detail
            assert broker.accepted == 2
    finally:
        await deliverer.aclose()


async def test_after_a_drop_the_addresses_are_tried_in_order_again() -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=2, allowed_networks=LOOPBACK)
    await deliverer.open()
    primary, secondary = FakeBroker(), FakeBroker()
    try:
        async with secondary:
            await primary.__aenter__()
            config = stomp_config("/queue/a", addresses=[primary.address, secondary.address])
            assert (await deliverer.deliver(make_delivery(config))).succeeded

            primary.drop()  # the primary is still up: the reconnect goes back to it
            await eventually(lambda: _disconnected(deliverer, config), timeout=3)
            assert (await deliverer.deliver(make_delivery(config))).succeeded
            assert (primary.accepted, secondary.accepted) == (2, 0)

            await primary.__aexit__(None, None, None)  # now it is gone: over to the secondary
            await eventually(lambda: _disconnected(deliverer, config), timeout=3)
            assert (await deliverer.deliver(make_delivery(config))).succeeded
            assert (primary.accepted, secondary.accepted) == (2, 1)
            assert [len(primary.sent()), len(secondary.sent())] == [2, 1]
    finally:
        await deliverer.aclose()
        await primary.__aexit__(None, None, None)  # closing twice is harmless


async def test_an_idle_connection_is_closed_and_reopened_when_needed_again() -> None:
    deliverer = StompDeliverer(
        source=SOURCE, timeout=2, idle_timeout=0.2, allowed_networks=LOOPBACK
    )
    await deliverer.open()
    try:
        async with FakeBroker() as one, FakeBroker() as other:
            first = stomp_config("/queue/a", addresses=[one.address])
            second = stomp_config("/queue/b", addresses=[other.address])
            assert (await deliverer.deliver(make_delivery(first))).succeeded
            await asyncio.sleep(0.3)
            assert (await deliverer.deliver(make_delivery(second))).succeeded

            await eventually(lambda: _none_live(one), timeout=3)
            assert not deliverer.is_connected(first)
            assert deliverer.is_connected(second)
            assert (await deliverer.deliver(make_delivery(first))).succeeded
            assert one.accepted == 2
    finally:
        await deliverer.aclose()
    assert one.live == other.live == 0


async def _none_live(broker: FakeBroker) -> bool:
    return broker.live == 0


async def test_closing_sends_disconnect_and_closing_twice_is_harmless() -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=2, allowed_networks=LOOPBACK)
    await deliverer.open()
    async with FakeBroker() as broker:
        config = stomp_config("/queue/a", addresses=[broker.address])
        assert (await deliverer.deliver(make_delivery(config))).succeeded
        await deliverer.aclose()
        await deliverer.aclose()
        await eventually(lambda: _none_live(broker), timeout=3)
        assert [frame.command for frame in broker.frames] == ["CONNECT", "SEND", "DISCONNECT"]


# --- misuse ------------------------------------------------------------------------------------


async def test_delivering_before_open_is_a_programming_error() -> None:
    deliverer = StompDeliverer(source=SOURCE, timeout=1, allowed_networks=LOOPBACK)
    with pytest.raises(RuntimeError):
        await deliverer.deliver(make_delivery(stomp_config("/queue/x")))


async def test_a_configuration_of_another_type_fails_the_attempt(
    deliverer: StompDeliverer,
) -> None:
    delivery = make_delivery(stomp_config("/queue/x"))
    webhook = WebhookConfig(url="https://example.com/hook")
    delivery = replace(delivery, target=replace(delivery.target, configuration=webhook))

    assert "not as stomp" in failed(await deliverer.deliver(delivery))
