"""The SSRF guard (hub/ssrf.py): tricky targets refused by default and allowed when listed, at
create/update time and at delivery time, for every transport, and DNS rebinding defeated."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from deliverers.config import SqsConfig, StompConfig
from deliverers.sqs import SqsDeliverer
from deliverers.stomp import StompDeliverer
from deliverers.webhook import WebhookDeliverer
from hub.ssrf import LOOPBACK, Network, SsrfGuard, non_public_reason, parse_ip
from hub.web import create_app
from tests.conftest import make_tenant, settings_for, webhook_integration
from tests.security.helpers import ScriptedResolver, Sink, delivery, serving, webhook
from tests.support.stack import hub_stack
from tests.support.waiting import eventually

REFUSED = "Refused to connect to"


def net(text: str) -> Network:
    return ipaddress.ip_network(text)


#: (target URL, the network whose listing in HUB_ALLOWED_NETWORKS lets it through)
TRICKY: list[tuple[str, str]] = [
    ("http://127.0.0.1/hook", "127.0.0.0/8"),
    ("http://127.1/hook", "127.0.0.0/8"),
    ("http://127.0.1/hook", "127.0.0.0/8"),
    ("http://2130706433/hook", "127.0.0.0/8"),
    ("http://0x7f000001/hook", "127.0.0.0/8"),
    ("http://0x7f.1/hook", "127.0.0.0/8"),
    ("http://0177.0.0.1/hook", "127.0.0.0/8"),
    ("http://017700000001/hook", "127.0.0.0/8"),
    ("http://127.0.0.1./hook", "127.0.0.0/8"),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook", "127.0.0.0/8"),  # full-width digits
    ("http://localhost:8080/hook", "127.0.0.0/8"),
    ("http://LOCALHOST./hook", "127.0.0.0/8"),
    ("http://api.localhost/hook", "127.0.0.0/8"),
    ("http://[::1]/hook", "::1/128"),
    ("http://[0:0:0:0:0:0:0:1]/hook", "::1/128"),
    ("http://[::ffff:127.0.0.1]/hook", "127.0.0.0/8"),
    ("http://[::ffff:7f00:1]/hook", "127.0.0.0/8"),
    ("http://[::127.0.0.1]/hook", "127.0.0.0/8"),
    ("http://[::ffff:0:7f00:1]/hook", "127.0.0.0/8"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.0.0/16"),
    ("http://2852039166/latest/meta-data/", "169.254.0.0/16"),
    ("http://[::ffff:169.254.169.254]/", "169.254.0.0/16"),
    ("http://[64:ff9b::a9fe:a9fe]/", "169.254.0.0/16"),
    ("http://[2002:a9fe:a9fe::1]/", "169.254.0.0/16"),
    ("http://[fe80::1%25eth0]/hook", "fe80::/10"),
    ("http://10.0.0.5/hook", "10.0.0.0/8"),
    ("http://172.16.3.4/hook", "172.16.0.0/12"),
    ("http://192.168.1.1/hook", "192.168.0.0/16"),
    ("http://0xc0.0xa8.1.1/hook", "192.168.0.0/16"),
    ("http://100.64.0.1/hook", "100.64.0.0/10"),
    ("http://0.0.0.0/hook", "0.0.0.0/8"),
    ("http://0/hook", "0.0.0.0/8"),
    ("http://[::]/hook", "::/128"),
    ("http://224.0.0.1/hook", "224.0.0.0/4"),
    ("http://255.255.255.255/hook", "255.255.255.255/32"),
    ("http://240.0.0.1/hook", "240.0.0.0/4"),
    ("http://198.18.0.1/hook", "198.18.0.0/15"),
    ("http://[fd12:3456::1]/hook", "fc00::/7"),
    ("http://[fec0::1]/hook", "fec0::/10"),
    ("http://[ff02::1]/hook", "ff00::/8"),
    ("http://[2001:db8::1]/hook", "2001:db8::/32"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "2001::/32"),  # Teredo
]

PUBLIC = [
    "https://example.com/hook",
    "https://93.184.215.14/hook",
    "http://8.8.8.8/hook",
    "http://134744072/hook",  # 8.8.8.8 in decimal
    "http://[2606:4700:4700::1111]/hook",
    "http://[::ffff:8.8.8.8]/hook",
    "http://[64:ff9b::808:808]/hook",  # NAT64 of a public address
    "http://hooks.partner-13.example/hook",
]


def host_of(url: str) -> str:
    host = URL(url).host
    assert host is not None
    return host


def tricky_id(case: tuple[str, str]) -> str:
    return case[0]


# --- judged without DNS: create/update time --------------------------------------------------


def test_there_are_at_least_twenty_tricky_targets() -> None:
    assert len(TRICKY) >= 20


@pytest.mark.parametrize("case", TRICKY, ids=tricky_id)
def test_a_tricky_target_is_refused_by_default(case: tuple[str, str]) -> None:
    url, _ = case

    problem = SsrfGuard().static_problem(host_of(url))

    assert problem is not None
    assert "HUB_ALLOWED_NETWORKS" in problem


@pytest.mark.parametrize("case", TRICKY, ids=tricky_id)
def test_a_tricky_target_is_allowed_when_its_network_is_listed(case: tuple[str, str]) -> None:
    url, network = case

    assert SsrfGuard((net(network),)).static_problem(host_of(url)) is None


@pytest.mark.parametrize("case", TRICKY, ids=tricky_id)
def test_listing_another_network_does_not_let_a_tricky_target_through(
    case: tuple[str, str],
) -> None:
    url, _ = case
    elsewhere = SsrfGuard((net("203.0.113.0/24"), net("2001:db8:ffff::/48")))

    assert elsewhere.static_problem(host_of(url)) is not None


@pytest.mark.parametrize("url", PUBLIC)
def test_public_targets_pass(url: str) -> None:
    assert SsrfGuard().static_problem(host_of(url)) is None


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("0", "0.0.0.0"),
    ],
)
def test_every_spelling_a_resolver_accepts_is_read_as_its_address(
    spelling: str, address: str
) -> None:
    assert parse_ip(spelling) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "name", ["example.com", "1.2.3.4.nip.io", "08.1.1.1", "256.1.1.1", "1.2.3.4.5", "0x", ""]
)
def test_names_and_impossible_addresses_are_not_addresses(name: str) -> None:
    if name == "0x":
        assert parse_ip(name) == ipaddress.ip_address("0.0.0.0")  # inet_aton reads 0x as 0
    else:
        assert parse_ip(name) is None


def test_internal_only_names_are_refused_until_some_network_is_allowed() -> None:
    for name in ("metadata.google.internal", "printer.local", "nas.home.arpa"):
        assert SsrfGuard().static_problem(name) is not None
        # With internal networks allowed, DNS decides at delivery time.
        assert SsrfGuard((net("10.0.0.0/8"),)).static_problem(name) is None


def test_the_reason_names_what_the_address_is() -> None:
    reason = non_public_reason(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))

    assert reason is not None
    assert "NAT64 form of 169.254.169.254" in reason
    assert "metadata" in reason


# --- the API refuses such targets at create and update time --------------------------------------


@pytest.fixture
async def strict_api(
    shared_db: str, shared_engine: AsyncEngine
) -> Any:  # TestClient; Any keeps the fixture simple
    app = create_app(settings_for(shared_db, allowed_networks=""), shared_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.mark.parametrize(
    ("integration_type", "configuration", "source"),
    [
        ("webhook", {"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ("webhook", {"url": "http://[::ffff:10.0.0.1]:8080/hook"}, "url"),
        ("webhook", {"url": "http://localhost/hook"}, "url"),
        (
            "aws_sqs",
            {
                "url": "http://127.0.0.1:4566/000000000000/q",
                "aws_access_key_id": "AKIDEXAMPLE",
                "aws_secret_access_key": "secret-example",
                "region": "us-east-1",
            },
            "url",
        ),
        (
            "stomp",
            {"addresses": ["stomp://mq.example.com:61613", "stomp://10.2.3.4:61613"]},
            "addresses",
        ),
    ],
)
async def test_the_api_refuses_a_non_public_target_with_a_422_naming_the_field(
    strict_api: Any,
    shared_engine: AsyncEngine,
    integration_type: str,
    configuration: dict[str, Any],
    source: str,
) -> None:
    tenant = await make_tenant(shared_engine)
    if integration_type == "stomp":
        configuration = configuration | {"destination": "/queue/x"}
    body = webhook_integration()
    body["data"] |= {"integration_type": integration_type, "configuration": configuration}

    resp = await strict_api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))

    assert resp.status == 422, await resp.text()
    [error] = (await resp.json())["errors"]
    assert error["source"] == f"data.configuration.{source}"
    assert "HUB_ALLOWED_NETWORKS" in error["detail"]


async def test_the_api_refuses_a_non_public_target_on_update_too(
    strict_api: Any, shared_engine: AsyncEngine
) -> None:
    tenant = await make_tenant(shared_engine)
    created = await strict_api.post(
        "/v2/integrations", json=webhook_integration(), headers=tenant.auth("manage")
    )
    assert created.status == 201
    path = f"/v2/integrations/{(await created.json())['data']['id']}"
    change = {"data": {"type": "integration", "configuration": {"url": "http://0x7f.1/"}}}

    resp = await strict_api.put(path, json=change, headers=tenant.auth("manage"))

    assert resp.status == 422
    assert (await resp.json())["errors"][0]["source"] == "data.configuration.url"
    stored = await strict_api.get(path, headers=tenant.auth("view"))
    assert (await stored.json())["data"]["configuration"]["url"] == "https://example.com/hook"


async def test_the_api_accepts_an_internal_target_whose_network_is_allowed(
    api: Any, tenant: Any
) -> None:
    # The session's API allows loopback (as `hub dev` does).
    body = webhook_integration("http://127.0.0.1:9999/hook")

    resp = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))

    assert resp.status == 201, await resp.text()


# --- judged again at delivery time ---------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "0177.0.0.1",
    "127.0.0.1.",
    "localhost",
    "[::ffff:127.0.0.1]",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_a_delivery_to_loopback_is_refused_whatever_the_spelling(host: str) -> None:
    async with serving(Sink("127.0.0.1")) as sink:
        deliverer = WebhookDeliverer(timeout=2)
        await deliverer.open()
        try:
            result = await deliverer.deliver(webhook(f"http://{host}:{sink.port}/hook"))
        finally:
            await deliverer.aclose()

    assert not result.succeeded
    assert result.error_detail is not None
    assert result.error_detail.startswith(REFUSED)
    assert "loopback" in result.error_detail
    assert result.status_code is None
    assert sink.hits == []


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_a_delivery_to_loopback_goes_through_when_loopback_is_allowed(host: str) -> None:
    async with serving(Sink("127.0.0.1")) as sink:
        deliverer = WebhookDeliverer(timeout=2, allowed_networks=LOOPBACK)
        await deliverer.open()
        try:
            result = await deliverer.deliver(webhook(f"http://{host}:{sink.port}/hook"))
        finally:
            await deliverer.aclose()

    assert result.succeeded, result.error_detail
    assert len(sink.hits) == 1


async def test_a_name_that_resolves_to_an_internal_address_is_refused_at_delivery() -> None:
    resolver = ScriptedResolver([["169.254.169.254"]])
    deliverer = WebhookDeliverer(timeout=2, resolver=resolver)
    await deliverer.open()
    try:
        result = await deliverer.deliver(webhook("http://hooks.partner.example/latest"))
    finally:
        await deliverer.aclose()

    assert result.error_detail == (
        "Refused to connect to hooks.partner.example (169.254.169.254): link-local, where "
        "cloud metadata services live; the hub only delivers to public addresses unless "
        "HUB_ALLOWED_NETWORKS lists the target's network"
    )


async def test_refused_answers_are_dropped_and_the_allowed_ones_are_used() -> None:
    async with serving(Sink("127.0.0.1")) as sink:
        resolver = ScriptedResolver([["10.9.9.9", "127.0.0.1"]])
        deliverer = WebhookDeliverer(timeout=2, resolver=resolver, allowed_networks=LOOPBACK)
        await deliverer.open()
        try:
            result = await deliverer.deliver(webhook(f"http://mixed.example:{sink.port}/hook"))
        finally:
            await deliverer.aclose()

    assert result.succeeded, result.error_detail
    assert len(sink.hits) == 1


async def test_dns_rebinding_cannot_turn_a_vetted_name_into_an_internal_connection() -> None:
    # "Public" stands in for an address on the internet: 127.0.0.2, the only network allowed.
    # The internal service listens on 127.0.0.1, same port; the name's DNS answers the public
    # address first and the internal one on every later lookup.
    async with (
        serving(Sink("127.0.0.2")) as public,
        serving(Sink("127.0.0.1", port=public.port)) as internal,
    ):
        resolver = ScriptedResolver([["127.0.0.2"], ["127.0.0.1"]])
        allowed = (net("127.0.0.2/32"),)
        url = f"http://rebind.example:{public.port}/hook"

        first = WebhookDeliverer(timeout=2, resolver=resolver, allowed_networks=allowed)
        await first.open()
        try:
            vetted = await first.deliver(webhook(url))
        finally:
            await first.aclose()
        # A new pool (no cached answer): the rebound answer is what gets judged.
        second = WebhookDeliverer(timeout=2, resolver=resolver, allowed_networks=allowed)
        await second.open()
        try:
            rebound = await second.deliver(webhook(url))
        finally:
            await second.aclose()

    # The check and the connect used one lookup: the vetted answer is where the request went.
    assert vetted.succeeded, vetted.error_detail
    assert len(public.hits) == 1
    assert rebound.error_detail is not None
    assert rebound.error_detail.startswith("Refused to connect to rebind.example (127.0.0.1)")
    assert internal.hits == []
    assert resolver.calls == ["rebind.example", "rebind.example"]


async def test_a_refused_delivery_is_a_failed_attempt_with_a_clear_error_detail(
    fresh_db: str,
) -> None:
    settings = settings_for(fresh_db, allowed_networks="", retry_schedule="")
    resolver = ScriptedResolver([["10.0.0.7"]])
    deliverers = [WebhookDeliverer(timeout=2, resolver=resolver)]
    async with hub_stack(fresh_db, settings, deliverers) as stack:
        integration_id = await stack.create_integration(
            webhook_integration("https://hooks.partner.example/orders")
        )
        await stack.publish(
            {
                "data": {
                    "type": "event",
                    "triggered_by": "order.created",
                    "payload": {"data": {"id": "o-1"}},
                }
            }
        )
        stack.start_worker()

        async def failed() -> bool:
            jobs = await stack.jobs(integration_id)
            return bool(jobs) and jobs[0]["status"] == "failed"

        await eventually(failed)
        [job] = await stack.jobs(integration_id)
        [log] = await stack.job_logs(integration_id, job["id"])

    assert log["succeeded"] is False
    assert log["status_code"] is None
    assert log["error_detail"].startswith(
        "Refused to connect to hooks.partner.example (10.0.0.7): private network"
    )
    assert job["last_error"] == log["error_detail"]


# --- the message-queue deliverers ---------------------------------------------------------------


def sqs(url: str) -> SqsConfig:
    return SqsConfig(
        url=url, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cr3t", region="eu-west-1"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:4566/000000000000/orders", "Refused to connect to 127.0.0.1: loopback"),
        ("http://[::ffff:169.254.169.254]/1/q", "Refused to connect to ::ffff:a9fe:a9fe"),
        ("http://localhost:4566/000000000000/orders", "Refused to connect to localhost ("),
    ],
)
async def test_an_sqs_endpoint_that_is_not_public_is_refused(url: str, expected: str) -> None:
    deliverer = SqsDeliverer(source="http://hub.test", timeout=2, max_attempts=1)
    await deliverer.open()
    try:
        result = await deliverer.deliver(delivery(sqs(url)))
    finally:
        await deliverer.aclose()

    assert not result.succeeded
    assert result.error_detail is not None
    assert result.error_detail.startswith(expected), result.error_detail
    assert "s3cr3t" not in result.error_detail


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("stomp://127.0.0.1:61613", "127.0.0.1: loopback"),
        ("stomp://localhost:61613", "localhost (127.0.0.1): loopback"),
        ("stomp+ssl://[fd00::5]:61614", "fd00::5: unique-local"),
    ],
)
async def test_a_stomp_broker_that_is_not_public_is_refused(address: str, expected: str) -> None:
    deliverer = StompDeliverer(source="http://hub.test", timeout=2)
    await deliverer.open()
    config = StompConfig(addresses=[address], destination="/queue/orders", password="pw-secret")
    try:
        result = await deliverer.deliver(delivery(config))
    finally:
        await deliverer.aclose()

    assert not result.succeeded
    assert result.error_detail is not None
    assert f"Refused to connect to {expected}" in result.error_detail, result.error_detail
    assert "pw-secret" not in result.error_detail


async def test_a_stomp_deliverer_allowed_loopback_reaches_the_broker() -> None:
    deliverer = StompDeliverer(source="http://hub.test", timeout=5, allowed_networks=LOOPBACK)
    await deliverer.open()
    config = StompConfig(
        addresses=["stomp://localhost:61613"],
        destination="/queue/hub-security-test",
        username="guest",
        password="guest",
    )
    try:
        result = await deliverer.deliver(delivery(config))
    finally:
        await deliverer.aclose()

    assert result.succeeded, result.error_detail
