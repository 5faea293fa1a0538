"""The SQS deliverer against a real SQS endpoint: moto in server mode, over HTTP, IAM auth on."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from deliverers.base import Delivery, DeliveryResult, Target
from deliverers.config import SqsConfig
from deliverers.sqs import MAX_MESSAGE_BYTES, SqsDeliverer, sqs_size
from deliverers.sqs.batching import MAX_BATCH_BYTES
from hub.ssrf import LOOPBACK
from tests.integration.moto_server import (
    Credentials,
    MotoServer,
    shared_moto_server,
    shared_session,
)

SOURCE = "http://hub.test"
EVENT_TIME = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="session")
def moto() -> MotoServer:
    return shared_moto_server()


@dataclass
class Calls:
    """The SQS API calls a deliverer made, seen through an aiobotocore event hook."""

    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    singles: int = 0

    def register(self, session: Any) -> None:
        """Count the calls of clients `session` creates from now on (each copies the hooks)."""
        session.register("provide-client-params.sqs.SendMessageBatch", self._batch)
        session.register("provide-client-params.sqs.SendMessage", self._single)

    def unregister(self, session: Any) -> None:
        session.unregister("provide-client-params.sqs.SendMessageBatch", self._batch)
        session.unregister("provide-client-params.sqs.SendMessage", self._single)

    def _batch(self, params: dict[str, Any], **_: Any) -> None:
        self.batches.append(list(params["Entries"]))

    def _single(self, **_: Any) -> None:
        self.singles += 1


@dataclass
class Env:
    moto: MotoServer
    deliverer: SqsDeliverer
    calls: Calls


@pytest.fixture
async def env(moto: MotoServer) -> AsyncIterator[Env]:
    calls = Calls()
    session = shared_session()
    calls.register(session)
    deliverer = SqsDeliverer(source=SOURCE, timeout=2, session=session, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        yield Env(moto, deliverer, calls)
    finally:
        await deliverer.aclose()
        calls.unregister(session)


def delivery(
    queue_url: str,
    credentials: Credentials,
    *,
    payload: dict[str, Any] | None = None,
    attempt: int = 1,
    message_group_key: str | None = None,
    region: str = "us-east-1",
    integration_id: uuid.UUID | None = None,
    ordering_value: str | None = None,
) -> Delivery:
    config = SqsConfig(
        url=queue_url,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region=region,
        message_group_key=message_group_key,
    )
    target = Target(
        id=integration_id or uuid.uuid4(),
        store_id=uuid.uuid4(),
        name="Order queue",
        description=None,
        integration_type="aws_sqs",
        configuration=config,
        signing_secrets=("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",),
    )
    return Delivery(
        job_id=uuid.uuid4(),
        attempt=attempt,
        event_id=uuid.uuid4(),
        triggered_by="order.paid",
        payload=payload if payload is not None else {"data": {"type": "order", "id": "o-1"}},
        event_time=EVENT_TIME,
        target=target,
        ordering_value=ordering_value,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def deliver_all(env: Env, deliveries: list[Delivery]) -> list[DeliveryResult]:
    """Deliver concurrently, one task per job, as the dispatcher does."""
    return list(await asyncio.gather(*(env.deliverer.deliver(d) for d in deliveries)))


# --- what arrives ------------------------------------------------------------------------------


async def test_a_delivery_arrives_on_a_standard_queue_as_a_cloudevent_with_filter_attributes(
    env: Env,
) -> None:
    url = await env.moto.create_queue("standard")
    payload = {
        "data": {"type": "order", "id": "o-1", "status": "paid"},
        "included": {"items": [{"id": "i-1", "sku": "sku-1"}]},
    }
    job = delivery(url, env.moto.allowed, payload=payload, attempt=2)

    result = await env.deliverer.deliver(job)

    [message] = await env.moto.receive(url, 1)
    assert result.succeeded, result.error_detail
    assert result.status_code == 200
    assert result.body == f"MessageId: {message['MessageId']}"
    assert result.error_detail is None
    assert result.duration > 0
    assert json.loads(message["Body"]) == {
        "specversion": "1.0",
        "id": str(job.job_id),
        "type": "order.paid",
        "source": SOURCE,
        "datacontenttype": "application/json",
        "time": "2026-11-22T10:00:00.123Z",
        "integrationid": str(job.target.id),
        "storeid": str(job.target.store_id),
        "data": payload["data"],
        "included": payload["included"],
    }
    assert message["MessageAttributes"] == {
        "hub-event-type": {"DataType": "String", "StringValue": "order.paid"},
        "hub-job-id": {"DataType": "String", "StringValue": str(job.job_id)},
        "hub-attempt": {"DataType": "String", "StringValue": "2"},
    }
    assert "MessageGroupId" not in message["Attributes"]
    assert env.calls.singles == 1
    assert env.calls.batches == []


async def test_a_fifo_queue_groups_by_integration_id_and_deduplicates_by_job_and_attempt(
    env: Env,
) -> None:
    url = await env.moto.create_queue("fifo", fifo=True)
    job = delivery(url, env.moto.allowed, attempt=3)

    result = await env.deliverer.deliver(job)

    [message] = await env.moto.receive(url, 1)
    assert result.succeeded, result.error_detail
    attributes = message["Attributes"]
    assert attributes["MessageGroupId"] == str(job.target.id)
    assert attributes["MessageDeduplicationId"] == f"{job.job_id}-3"
    assert result.body == (
        f"MessageId: {message['MessageId']}, SequenceNumber: {attributes['SequenceNumber']}"
    )


async def test_a_message_group_key_takes_the_group_from_the_payload_else_the_integration_id(
    env: Env,
) -> None:
    url = await env.moto.create_queue("grouped", fifo=True)
    with_customer = delivery(
        url,
        env.moto.allowed,
        payload={"data": {"type": "order", "customer": {"id": "c-42"}}},
        message_group_key="data.customer.id",
    )
    without_customer = delivery(
        url,
        env.moto.allowed,
        payload={"data": {"type": "order"}},
        message_group_key="data.customer.id",
    )
    numeric = delivery(
        url,
        env.moto.allowed,
        payload={"data": {"type": "order", "customer": {"id": 7}}},
        message_group_key="data.customer.id",
    )

    results = await deliver_all(env, [with_customer, without_customer, numeric])

    assert all(r.succeeded for r in results), [r.error_detail for r in results]
    messages = await env.moto.receive(url, 3)
    groups = {json.loads(m["Body"])["id"]: m["Attributes"]["MessageGroupId"] for m in messages}
    assert groups == {
        str(with_customer.job_id): "c-42",
        str(without_customer.job_id): str(without_customer.target.id),
        str(numeric.job_id): "7",
    }


async def test_an_ordered_jobs_key_value_is_its_group_unless_a_message_group_key_is_set(
    env: Env,
) -> None:
    url = await env.moto.create_queue("ordered", fifo=True)
    keyed = delivery(url, env.moto.allowed, ordering_value="o-1")
    unkeyed = delivery(url, env.moto.allowed)
    overridden = delivery(
        url,
        env.moto.allowed,
        payload={"data": {"type": "order", "customer": {"id": "c-42"}}},
        message_group_key="data.customer.id",
        ordering_value="o-1",
    )

    results = await deliver_all(env, [keyed, unkeyed, overridden])

    assert all(r.succeeded for r in results), [r.error_detail for r in results]
    messages = await env.moto.receive(url, 3)
    groups = {json.loads(m["Body"])["id"]: m["Attributes"]["MessageGroupId"] for m in messages}
    assert groups == {
        str(keyed.job_id): "o-1",
        str(unkeyed.job_id): str(unkeyed.target.id),
        str(overridden.job_id): "c-42",
    }


# --- size --------------------------------------------------------------------------------------


async def test_an_oversized_payload_is_sent_with_its_included_elided(env: Env) -> None:
    url = await env.moto.create_queue("elided")
    data = {"type": "order", "id": "o-big", "note": "n" * 1000}
    payload = {"data": data, "included": {"items": [{"blob": "x" * MAX_MESSAGE_BYTES}]}}

    with capture_logs() as logs:
        result = await env.deliverer.deliver(delivery(url, env.moto.allowed, payload=payload))

    assert result.succeeded, result.error_detail
    [message] = await env.moto.receive(url, 1)
    document = json.loads(message["Body"])
    assert document["included"] == {"meta": {"includes_elided": True}}
    assert document["data"] == data
    assert any(entry["event"] == "sqs_includes_elided" for entry in logs)


async def test_a_payload_too_large_even_without_included_fails_clearly_and_sends_nothing(
    env: Env,
) -> None:
    url = await env.moto.create_queue("huge")
    payload = {
        "data": {"type": "order", "id": "o-huge", "note": "x" * MAX_MESSAGE_BYTES},
        "included": {"items": []},
    }

    result = await env.deliverer.deliver(delivery(url, env.moto.allowed, payload=payload))

    assert not result.succeeded
    assert result.status_code is None
    assert result.error_detail is not None
    assert "even with `included` elided" in result.error_detail
    assert f"over SQS's limit of {MAX_MESSAGE_BYTES} bytes; it was not sent" in result.error_detail
    assert env.calls.singles == 0
    assert env.calls.batches == []
    assert await env.moto.count(url) == 0


# --- errors ------------------------------------------------------------------------------------


async def test_a_missing_queue_fails_with_a_readable_error(env: Env) -> None:
    url = f"{env.moto.endpoint}/123456789012/no-such-queue-{uuid.uuid4().hex[:8]}"

    result = await env.deliverer.deliver(delivery(url, env.moto.allowed))

    assert not result.succeeded
    assert result.status_code == 400
    assert result.error_detail == (
        f"The SQS queue {url} does not exist in region us-east-1 "
        "(AWS.SimpleQueueService.NonExistentQueue)"
    )


async def test_a_queue_of_another_region_is_reported_as_missing_in_the_configured_region(
    env: Env,
) -> None:
    url = await env.moto.create_queue("regional")

    result = await env.deliverer.deliver(delivery(url, env.moto.allowed, region="eu-west-1"))

    assert not result.succeeded
    assert result.error_detail is not None
    assert "does not exist in region eu-west-1" in result.error_detail


async def test_an_unknown_access_key_fails_as_unrecognised_and_no_secret_is_shown_or_logged(
    env: Env,
) -> None:
    url = await env.moto.create_queue("auth")
    credentials = Credentials("AKIAUNKNOWNKEY000042", "an-unknown-secret-value")

    with capture_logs() as logs:
        result = await env.deliverer.deliver(delivery(url, credentials))

    assert not result.succeeded
    assert result.status_code == 403
    assert result.error_detail == (
        "AWS does not recognise the access key id ****************0042: check "
        "aws_access_key_id (InvalidClientTokenId)"
    )
    assert "an-unknown-secret-value" not in repr(logs)
    assert "AKIAUNKNOWNKEY000042" not in repr(logs)


async def test_a_wrong_secret_fails_as_a_bad_signature_and_is_never_shown_or_logged(
    env: Env,
) -> None:
    url = await env.moto.create_queue("auth")
    credentials = Credentials(env.moto.allowed.access_key_id, "wrong-secret-value-1234")

    with capture_logs() as logs:
        result = await env.deliverer.deliver(delivery(url, credentials))

    assert not result.succeeded
    assert result.status_code == 403
    assert result.error_detail is not None
    assert result.error_detail.startswith(
        "AWS rejected the request signature: aws_secret_access_key does not match the access "
        "key id ****************"
    )
    assert result.error_detail.endswith("(SignatureDoesNotMatch)")
    assert "wrong-secret-value-1234" not in repr(logs)
    assert env.moto.allowed.access_key_id not in result.error_detail


async def test_credentials_without_permission_fail_as_access_denied(env: Env) -> None:
    url = await env.moto.create_queue("denied")

    result = await env.deliverer.deliver(delivery(url, env.moto.denied))

    assert not result.succeeded
    assert result.status_code == 403
    assert result.error_detail is not None
    assert result.error_detail.startswith("Access denied: access key id ****")
    assert f"may not send messages to {url} (AccessDenied)" in result.error_detail
    assert "not authorized to perform: sqs:SendMessage" in result.error_detail


async def test_an_endpoint_refusing_connections_fails_as_unreachable(env: Env) -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/123456789012/orders"

    result = await env.deliverer.deliver(delivery(url, env.moto.allowed))

    assert not result.succeeded
    assert result.status_code is None
    assert result.error_detail == f"Connection refused by the SQS endpoint http://127.0.0.1:{port}"


@pytest.fixture
async def silent_endpoint() -> AsyncIterator[str]:
    """A loopback endpoint that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_endpoint_that_never_answers_times_out_after_the_configured_timeout(
    moto: MotoServer, silent_endpoint: str
) -> None:
    deliverer = SqsDeliverer(
        source=SOURCE,
        timeout=0.3,
        max_attempts=1,
        session=shared_session(),
        allowed_networks=LOOPBACK,
    )
    await deliverer.open()
    try:
        started = time.perf_counter()
        result = await deliverer.deliver(delivery(f"{silent_endpoint}/1/q", moto.allowed))
        elapsed = time.perf_counter() - started
    finally:
        await deliverer.aclose()

    assert not result.succeeded
    assert result.status_code is None
    assert result.error_detail == (
        f"Timed out after 0.3 s waiting for the SQS endpoint {silent_endpoint}"
    )
    assert elapsed < 2


@dataclass
class Scripted:
    """A loopback endpoint giving every request the same scripted answer."""

    url: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    async def handle(self, _request: web.Request) -> web.Response:
        return web.Response(status=self.status, headers=self.headers, text=self.body)


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    app = web.Application()
    answer = Scripted(url="")
    app.router.add_post("/", answer.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    answer.url = str(server.make_url("")).rstrip("/")
    try:
        yield answer
    finally:
        await server.close()


def _aws_error(code: str, shape: str, message: str, fault: str = "Sender") -> dict[str, Any]:
    """How SQS's JSON protocol answers an error (the header carries the query-era code)."""
    return {
        "headers": {
            "Content-Type": "application/x-amz-json-1.0",
            "x-amzn-query-error": f"{code};{fault}",
        },
        "body": json.dumps({"__type": f"com.amazonaws.sqs#{shape}", "message": message}),
    }


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        pytest.param(
            400,
            _aws_error("RequestThrottled", "RequestThrottled", "Rate exceeded"),
            "SQS throttled the request to {queue} (RequestThrottled)",
            id="throttled",
        ),
        pytest.param(
            400,
            _aws_error("KMS.DisabledException", "KmsDisabled", "The key is disabled."),
            "SQS refused the message (KMS.DisabledException): The key is disabled.",
            id="another-aws-error-is-named-by-its-code",
        ),
        pytest.param(
            500,
            _aws_error("InternalError", "InternalError", "We broke.", fault="Receiver"),
            "SQS failed to take the message (InternalError): We broke.",
            id="server-error",
        ),
        pytest.param(
            404,
            {"headers": {"Content-Type": "text/html"}, "body": "<html>no</html>"},
            "The endpoint {endpoint} answered HTTP 404: <html>no</html>",
            id="not-sqs-at-all",
        ),
    ],
)
async def test_other_answers_of_the_endpoint_get_readable_errors_with_their_status(
    moto: MotoServer, scripted: Scripted, status: int, answer: dict[str, Any], expected: str
) -> None:
    scripted.status, scripted.headers, scripted.body = status, answer["headers"], answer["body"]
    queue = f"{scripted.url}/123456789012/orders"
    deliverer = SqsDeliverer(
        source=SOURCE,
        timeout=2,
        max_attempts=1,
        session=shared_session(),
        allowed_networks=LOOPBACK,
    )
    await deliverer.open()
    try:
        result = await deliverer.deliver(delivery(queue, moto.allowed))
    finally:
        await deliverer.aclose()

    assert not result.succeeded
    assert result.status_code == status
    assert result.error_detail == expected.format(queue=queue, endpoint=scripted.url)


# --- batching ----------------------------------------------------------------------------------


async def test_a_lone_delivery_is_sent_at_once_with_send_message(env: Env) -> None:
    url = await env.moto.create_queue("lone")
    await env.deliverer.deliver(delivery(url, env.moto.allowed))  # creates the client

    started = time.perf_counter()
    result = await env.deliverer.deliver(delivery(url, env.moto.allowed))
    elapsed = time.perf_counter() - started

    assert result.succeeded, result.error_detail
    assert env.calls.singles == 2
    assert env.calls.batches == []
    assert elapsed < 0.5


async def test_25_concurrent_deliveries_to_one_queue_go_in_batches_of_at_most_ten(
    env: Env,
) -> None:
    url = await env.moto.create_queue("busy")
    jobs = [delivery(url, env.moto.allowed) for _ in range(25)]

    results = await deliver_all(env, jobs)

    assert all(r.succeeded for r in results), [r.error_detail for r in results]
    assert len({r.body for r in results}) == 25
    assert all(r.status_code == 200 for r in results)
    assert len(env.calls.batches) >= 3
    assert all(len(batch) <= 10 for batch in env.calls.batches)
    assert sum(len(batch) for batch in env.calls.batches) + env.calls.singles == 25
    messages = await env.moto.receive(url, 25)
    assert {json.loads(m["Body"])["id"] for m in messages} == {str(j.job_id) for j in jobs}
    # Each job's MessageId is the one SQS gave its own message.
    by_job = {json.loads(m["Body"])["id"]: m["MessageId"] for m in messages}
    assert all(
        r.body == f"MessageId: {by_job[str(j.job_id)]}" for j, r in zip(jobs, results, strict=True)
    )


async def test_concurrent_deliveries_too_large_for_one_batch_are_split_by_size(env: Env) -> None:
    url = await env.moto.create_queue("bulky")
    big = {"data": {"type": "order", "note": "b" * 100_000}}
    jobs = [delivery(url, env.moto.allowed, payload=big) for _ in range(5)]

    results = await deliver_all(env, jobs)

    assert all(r.succeeded for r in results), [r.error_detail for r in results]
    sizes = [
        sum(sqs_size(e["MessageBody"], e["MessageAttributes"]) for e in batch)
        for batch in env.calls.batches
    ]
    assert sizes, "expected at least one SendMessageBatch"
    assert all(size <= MAX_BATCH_BYTES for size in sizes)
    assert sum(len(batch) for batch in env.calls.batches) + env.calls.singles == 5
    assert len(await env.moto.receive(url, 5)) == 5


async def test_an_entry_the_queue_refuses_fails_alone_while_the_rest_of_its_batch_arrives(
    env: Env,
) -> None:
    url = await env.moto.create_queue("small", attributes={"MaximumMessageSize": "1024"})
    jobs = [delivery(url, env.moto.allowed) for _ in range(4)]
    too_big = delivery(url, env.moto.allowed, payload={"data": {"note": "z" * 2000}})
    jobs.insert(2, too_big)

    results = await deliver_all(env, jobs)

    assert len(env.calls.batches) == 1
    refused = results[2]
    assert not refused.succeeded
    assert refused.error_detail is not None
    assert refused.error_detail.startswith("SQS refused the message (InvalidParameterValue)")
    assert "1024 bytes" in refused.error_detail
    assert refused.status_code == 400
    others = results[:2] + results[3:]
    assert all(r.succeeded for r in others), [r.error_detail for r in others]
    messages = await env.moto.receive(url, 4)
    assert str(too_big.job_id) not in {json.loads(m["Body"])["id"] for m in messages}
    assert await env.moto.count(url) == 4


async def test_a_batch_to_a_missing_queue_fails_every_entry_with_one_call(env: Env) -> None:
    url = f"{env.moto.endpoint}/123456789012/missing-{uuid.uuid4().hex[:8]}"

    results = await deliver_all(env, [delivery(url, env.moto.allowed) for _ in range(3)])

    assert [len(batch) for batch in env.calls.batches] == [3]
    assert env.calls.singles == 0
    assert all(not r.succeeded for r in results)
    assert {r.error_detail for r in results} == {
        f"The SQS queue {url} does not exist in region us-east-1 "
        "(AWS.SimpleQueueService.NonExistentQueue)"
    }


async def test_deliveries_to_different_queues_are_never_batched_together(env: Env) -> None:
    first, second = await env.moto.create_queue("a"), await env.moto.create_queue("b")
    jobs = [delivery(u, env.moto.allowed) for u in (first, second, first, second)]

    results = await deliver_all(env, jobs)

    assert all(r.succeeded for r in results), [r.error_detail for r in results]
    assert sorted(len(batch) for batch in env.calls.batches) == [2, 2]
    assert len(await env.moto.receive(first, 2)) == 2
    assert len(await env.moto.receive(second, 2)) == 2


async def test_closing_sends_what_is_waiting_and_a_closed_deliverer_refuses_work(
    moto: MotoServer,
) -> None:
    url = await moto.create_queue("closing")
    deliverer = SqsDeliverer(
        source=SOURCE,
        timeout=2,
        batch_window=5.0,
        session=shared_session(),
        allowed_networks=LOOPBACK,
    )
    await deliverer.open()
    waiting = asyncio.create_task(deliverer.deliver(delivery(url, moto.allowed)))
    await asyncio.sleep(0.05)  # created its client and waits for the (long) batch window

    await deliverer.aclose()
    await deliverer.aclose()  # twice is fine

    result = await waiting
    assert result.succeeded, result.error_detail
    assert len(await moto.receive(url, 1)) == 1
    with pytest.raises(RuntimeError):
        await deliverer.deliver(delivery(url, moto.allowed))
