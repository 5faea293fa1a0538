"""Secrets at rest (hub/crypto.py): encrypted in the database, masked in every answer, absent
from every log line and error, readable after a key rotation, re-encrypted by `hub secrets
rotate`, and the production commands refusing to run without a key that reads them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
import structlog
from aiohttp import web
from sqlalchemy import text

from deliverers.base import Deliverer
from deliverers.config import mask
from deliverers.sqs import SqsDeliverer
from deliverers.stomp import StompDeliverer
from deliverers.webhook import WebhookDeliverer
from hub import crypto
from hub.cli import _secret_key
from hub.errors import ConfigurationError, SecretsUnreadable
from hub.settings import Settings
from hub.ssrf import LOOPBACK
from hub.store import integrations
from tests.conftest import TEST_SECRET_KEY, event_body, settings_for, webhook_integration
from tests.security.helpers import webhook
from tests.support.processes import HUB
from tests.support.sinks import sink_server
from tests.support.stack import Stack, hub_stack
from tests.support.waiting import eventually

WEBHOOK_SECRET = "wh-Secret-7f3a9c1e-value"
AWS_KEY_ID = "AKIAHUBSECURITYTEST9"
AWS_SECRET = "aws-Secret/8d2b+Kq1vXy3Zt7Lm9Np0Qr"
STOMP_PASSWORD = "stomp-Secret-5e6f7a8b"
SECRETS = (WEBHOOK_SECRET, AWS_KEY_ID, AWS_SECRET, STOMP_PASSWORD)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def integration(name: str, integration_type: str, configuration: dict[str, Any]) -> Any:
    body = webhook_integration(observes=["order.*"])
    body["data"] |= {
        "name": name,
        "integration_type": integration_type,
        "configuration": configuration,
    }
    return body


def webhook_body(url: str) -> Any:
    return integration("hook", "webhook", {"url": url, "secret_key": WEBHOOK_SECRET})


def sqs_body(port: int) -> Any:
    return integration(
        "queue",
        "aws_sqs",
        {
            "url": f"http://127.0.0.1:{port}/000000000000/orders",
            "aws_access_key_id": AWS_KEY_ID,
            "aws_secret_access_key": AWS_SECRET,
            "region": "eu-west-1",
        },
    )


def stomp_body() -> Any:
    return integration(
        "broker",
        "stomp",
        {
            "addresses": ["stomp://127.0.0.1:61613"],
            "destination": "/queue/hub-secrets",
            "username": "guest",
            "password": STOMP_PASSWORD,  # wrong: the broker refuses the login
        },
    )


async def echo_secret_header(request: web.Request) -> web.Response:
    """An endpoint that fails and tells on its caller: it echoes the secret it was sent."""
    await request.read()
    return web.Response(status=500, text=f"bad key {request.headers['X-MOLTIN-SECRET-KEY']}")


@pytest.fixture
async def stack(fresh_db: str) -> AsyncIterator[Stack]:
    settings = settings_for(fresh_db, retry_schedule="", webhook_timeout=3)
    deliverers: list[Deliverer] = [
        WebhookDeliverer(timeout=3, allowed_networks=LOOPBACK),
        SqsDeliverer(
            source="http://hub.test", timeout=3, max_attempts=1, allowed_networks=LOOPBACK
        ),
        StompDeliverer(source="http://hub.test", timeout=3, allowed_networks=LOOPBACK),
    ]
    async with hub_stack(fresh_db, settings, deliverers) as stack:
        yield stack


@contextlib.contextmanager
def keyring_installed(keyring: crypto.Keyring | None) -> Iterator[None]:
    previous = crypto.install(keyring)
    try:
        yield
    finally:
        crypto.install(previous)


# --- at rest -------------------------------------------------------------------------------------


async def test_stored_secrets_are_encrypted_and_nothing_in_the_row_is_clear(stack: Stack) -> None:
    ids = [
        await stack.create_integration(webhook_body("https://example.com/hook")),
        await stack.create_integration(sqs_body(4566)),
        await stack.create_integration(stomp_body()),
    ]
    signing = [
        (await stack.get(f"/v2/integrations/{i}/secret", role="manage"))["data"]["secret"]
        for i in ids
    ]

    async with stack.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT i::text AS whole, configuration, signing_secret FROM integrations i "
                    "ORDER BY created_at"
                )
            )
        ).all()

    assert len(rows) == 3
    for row in rows:
        for secret in (*SECRETS, *signing):
            assert secret not in row.whole
        assert row.signing_secret.startswith("enc:v1:")
    webhook, queue, broker = (row.configuration for row in rows)
    assert set(webhook["secret_key"]) == {"$enc"}
    assert webhook["url"] == "https://example.com/hook"  # only secrets are encrypted
    assert set(queue["aws_access_key_id"]) == set(queue["aws_secret_access_key"]) == {"$enc"}
    assert queue["region"] == "eu-west-1"
    assert set(broker["password"]) == {"$enc"}
    assert broker["username"] == "guest"
    # Each value has its own IV: equal inputs do not look equal at rest.
    keyring = crypto.active()
    assert keyring.encrypt(WEBHOOK_SECRET) != keyring.encrypt(WEBHOOK_SECRET)
    assert keyring.decrypt(webhook["secret_key"]["$enc"]) == WEBHOOK_SECRET


async def test_the_api_answers_secrets_masked_and_keeps_them_when_echoed_back(
    stack: Stack,
) -> None:
    integration_id = await stack.create_integration(sqs_body(4566))
    path = f"/v2/integrations/{integration_id}"
    shown = (await stack.get(path))["data"]

    assert shown["configuration"]["aws_secret_access_key"] == mask(AWS_SECRET)
    assert shown["configuration"]["aws_access_key_id"].endswith("EST9")
    resp = await stack.client.put(
        path,
        json={"data": {"type": "integration", "configuration": shown["configuration"]}},
        headers=stack.tenant.auth("manage"),
    )
    assert resp.status == 200
    async with stack.engine.connect() as conn:
        stored = await integrations.get_integration(
            conn, await _store_id(stack), UUID(integration_id)
        )
    assert stored is not None
    assert stored.configuration["aws_secret_access_key"] == AWS_SECRET


async def _store_id(stack: Stack) -> Any:
    return await stack.scalar("SELECT id FROM stores WHERE name = :n", n=stack.tenant.name)


# --- never in an answer, never in a log line ----------------------------------------------------


async def test_no_secret_appears_in_any_answer_or_log_line_of_a_full_flow(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # Below the WARNING that `configure_logging` gives libraries (their DEBUG lines carry wire
    # frames: STOMP CONNECT with its passcode, AWS request signing).
    caplog.set_level(logging.INFO)
    answers: list[bytes] = []

    async def call(method: str, path: str, role: str = "manage", **kwargs: Any) -> Any:
        resp = await stack.client.request(method, path, headers=stack.tenant.auth(role), **kwargs)
        body = await resp.read()
        answers.append(body + str(list(resp.headers.items())).encode())
        return orjson.loads(body) if body else None

    with structlog.testing.capture_logs() as captured:
        async with sink_server(echo_secret_header) as url:
            ids = []
            for body in (webhook_body(url), sqs_body(closed_port()), stomp_body()):
                created = await call("POST", "/v2/integrations", json=body)
                ids.append(created["data"]["id"])
            await call("POST", "/v2/events", role="publish", json=event_body("order.created"))
            stack.start_worker()

            async def all_failed() -> bool:
                for integration_id in ids:
                    jobs = (await call("GET", f"/v2/integrations/{integration_id}/jobs"))["data"]
                    if not jobs or jobs[0]["status"] != "failed":
                        return False
                return True

            await eventually(all_failed, timeout=30)
            await stack.stop_workers()

        await call("GET", "/v2/integrations")
        await call("GET", "/v2/integrations/logs")
        for integration_id in ids:
            for suffix in ("", "/logs", "/jobs", "/status"):
                await call("GET", f"/v2/integrations/{integration_id}{suffix}")
            await call(
                "PUT",
                f"/v2/integrations/{integration_id}",
                json={"data": {"type": "integration", "configuration": {"nope": 1}}},
            )
        signing = [
            (await call("GET", f"/v2/integrations/{i}/secret"))["data"]["secret"] for i in ids
        ]

    logs = [orjson.dumps(entry, default=str) for entry in captured]
    logs += [record.getMessage().encode() for record in caplog.records]
    everything = b"\n".join(answers[:-3] + logs)  # the last three answers are the /secret reads
    for secret in (*SECRETS, *signing):
        assert secret.encode() not in everything, secret
    # The flow did what it was meant to: every transport failed with a readable reason.
    details = b"\n".join(logs)
    assert b"webhook_rejected" in details or b"webhook_failed" in details
    assert b"sqs_failed" in details
    assert b"stomp_failed" in details
    [hook_log] = (await call("GET", f"/v2/integrations/{ids[0]}/logs"))["data"]
    assert hook_log["body"] == "bad key ****"  # the echoed secret is not kept


# --- keys: rotation and refusal to start ---------------------------------------------------------


def run_hub(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [str(HUB), *args],
        env=clean | {"HUB_LOG_LEVEL": "warning"} | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def test_a_rotated_key_still_decrypts_and_secrets_rotate_reencrypts_everything(
    stack: Stack, fresh_db: str, tmp_path: Path
) -> None:
    ids = [
        await stack.create_integration(webhook_body("https://example.com/hook")),
        await stack.create_integration(sqs_body(4566)),
    ]
    # A row from before encryption: its secret and signing secret stored in clear.
    legacy = await stack.create_integration(stomp_body())
    async with stack.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE integrations SET configuration = jsonb_set(configuration, '{password}', "
                "to_jsonb(CAST(:pw AS text))), signing_secret = :whsec WHERE id = :id"
            ),
            {
                "pw": STOMP_PASSWORD,
                "whsec": "whsec_bGVnYWN5LXNpZ25pbmctc2VjcmV0LWtleQ==",
                "id": legacy,
            },
        )
    before = await stack.get(f"/v2/integrations/{legacy}")
    assert before["data"]["configuration"]["password"].endswith("7a8b")  # clear values still read
    new_key = crypto.generate_key()

    # A new key first, the old one kept after it: everything still reads.
    with keyring_installed(crypto.Keyring.from_setting(f"{new_key},{TEST_SECRET_KEY}")):
        for integration_id in ids:
            assert (await stack.get(f"/v2/integrations/{integration_id}"))["data"]
    rotated = await asyncio.to_thread(
        run_hub,
        "secrets",
        "rotate",
        env={"HUB_DATABASE_URL": fresh_db, "HUB_SECRET_KEY": f"{new_key},{TEST_SECRET_KEY}"},
        cwd=tmp_path,
    )

    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 7 secrets of 3 integrations" in rotated.stdout  # 1+1 +2+1 +1+1
    assert "(2 had been stored in clear)" in rotated.stdout
    # The old key alone no longer reads anything; the new one alone reads everything.
    async with stack.engine.connect() as conn:
        raw = (
            await conn.execute(text("SELECT configuration, signing_secret FROM integrations"))
        ).all()
    old_only = crypto.Keyring.from_setting(TEST_SECRET_KEY)
    new_only = crypto.Keyring.from_setting(new_key)
    for configuration, signing_secret in raw:
        with pytest.raises(SecretsUnreadable):
            old_only.open_text(signing_secret)
        assert new_only.open_text(signing_secret).startswith("whsec_")
        opened = new_only.open_configuration(configuration)
        assert {v for v in opened.values() if isinstance(v, str)} & set(SECRETS)
    with keyring_installed(new_only):
        shown = await stack.get(f"/v2/integrations/{legacy}")
        secret = await stack.get(f"/v2/integrations/{legacy}/secret", role="manage")
    assert shown["data"]["configuration"]["password"] == before["data"]["configuration"]["password"]
    assert secret["data"]["secret"] == "whsec_bGVnYWN5LXNpZ25pbmctc2VjcmV0LWtleQ=="


async def test_production_commands_refuse_to_start_without_a_usable_key(
    stack: Stack, fresh_db: str, tmp_path: Path
) -> None:
    await stack.create_integration(webhook_body("https://example.com/hook"))
    database = {"HUB_DATABASE_URL": fresh_db}

    missing, invalid, wrong, keys = await asyncio.gather(
        asyncio.to_thread(run_hub, "worker", env=database, cwd=tmp_path),
        asyncio.to_thread(
            run_hub, "serve", env=database | {"HUB_SECRET_KEY": "hunter2-not-a-key"}, cwd=tmp_path
        ),
        asyncio.to_thread(
            run_hub,
            "worker",
            env=database | {"HUB_SECRET_KEY": crypto.generate_key()},
            cwd=tmp_path,
        ),
        asyncio.to_thread(run_hub, "keys", "list", env=database, cwd=tmp_path),
    )

    assert missing.returncode == 2
    assert "HUB_SECRET_KEY is required with HUB_DATABASE_URL" in missing.stderr
    assert invalid.returncode == 2
    assert "key #1 is not a Fernet key" in invalid.stderr
    assert "hunter2" not in invalid.stderr + invalid.stdout
    assert wrong.returncode == 2
    assert "cannot be decrypted with any key of HUB_SECRET_KEY" in wrong.stderr
    assert keys.returncode == 0, keys.stderr  # key management needs no secret key


def test_generate_key_prints_a_usable_key(tmp_path: Path) -> None:
    done = run_hub("secrets", "generate-key", env={}, cwd=tmp_path)

    assert done.returncode == 0
    crypto.Keyring.from_setting(done.stdout.strip())


def test_the_embedded_database_gets_a_generated_key_kept_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")

    first = _secret_key(settings, "serve")
    again = _secret_key(settings, "worker")

    assert first is not None
    assert first == again
    path = tmp_path / "data" / "secret-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    crypto.Keyring.from_setting(first)
    assert _secret_key(settings, "keys") is None  # key management touches no secret


def test_an_external_database_without_a_key_is_a_configuration_error(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url="postgresql://db/hub")

    with pytest.raises(ConfigurationError, match="HUB_SECRET_KEY is required"):
        _secret_key(settings, "serve")
    assert _secret_key(settings, "migrate") is None
    assert not (tmp_path / "secret-key").exists()


async def test_a_job_whose_secrets_cannot_be_decrypted_fails_with_a_clear_detail(
    stack: Stack,
) -> None:
    async with sink_server(echo_secret_header) as url:
        integration_id = await stack.create_integration(webhook_body(url))
        await stack.publish(event_body("order.created"))
        with keyring_installed(crypto.Keyring.from_setting(crypto.generate_key())):
            stack.start_worker()

            async def failed() -> bool:
                jobs = await stack.scalar(
                    "SELECT count(*) FROM integration_jobs WHERE status = 'failed'"
                )
                return bool(jobs)

            await eventually(failed)
            await stack.stop_workers()
    log = await stack.scalar("SELECT error_detail FROM integration_logs")

    assert log.startswith("A stored secret cannot be decrypted with any key of HUB_SECRET_KEY")
    assert integration_id


# --- no credentials in a target ------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        f"stomp://hub:{STOMP_PASSWORD}@127.0.0.1:61613",
        f"stomp+ssl://:{STOMP_PASSWORD}@127.0.0.1:61614",
        f"stomp://{STOMP_PASSWORD}@127.0.0.1:61613",
    ],
)
async def test_a_stomp_address_carrying_credentials_is_refused_without_echoing_them(
    api: Any, tenant: Any, address: str
) -> None:
    body = stomp_body()
    body["data"]["configuration"]["addresses"] = ["stomp://127.0.0.1:61613", address]

    created = await api.post("/v2/integrations", json=body, headers=tenant.auth("manage"))
    good = await api.post("/v2/integrations", json=stomp_body(), headers=tenant.auth("manage"))
    assert good.status == 201, await good.text()
    path = f"/v2/integrations/{(await good.json())['data']['id']}"
    change = {"data": {"type": "integration", "configuration": body["data"]["configuration"]}}
    updated = await api.put(path, json=change, headers=tenant.auth("manage"))

    for resp in (created, updated):
        assert resp.status == 422, await resp.text()
        text_ = await resp.text()
        [error] = (await resp.json())["errors"]
        assert error["source"] == "data.configuration.addresses"
        assert "address 1 must not carry credentials" in error["detail"]
        assert STOMP_PASSWORD not in text_
    shown = await (await api.get(path, headers=tenant.auth("view"))).text()
    assert STOMP_PASSWORD not in shown


# --- echoes in answers ---------------------------------------------------------------------------

ECHOED_SECRET = 'wh-Sécret/"quoted"-7f3a9c1e'


def _echo_json(request: web.Request, **dumps: Any) -> str:
    return json.dumps({"you sent": request.headers["X-MOLTIN-SECRET-KEY"]}, **dumps)


ECHOES: dict[str, Any] = {
    # The echo begins 6 characters before the 4 KiB that a log keeps.
    "straddling the cut": lambda request: "x" * 4090 + request.headers["X-MOLTIN-SECRET-KEY"],
    "JSON, ASCII only": lambda request: _echo_json(request),
    "JSON, slashes escaped": lambda request: _echo_json(request).replace("/", "\\/"),
    "JSON, UTF-8 kept": lambda request: _echo_json(request, ensure_ascii=False),
}


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
async def test_an_answer_echoing_the_secret_is_logged_without_any_of_it(echo: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text=echo(request), content_type="application/json")

    deliverer = WebhookDeliverer(timeout=5, allowed_networks=LOOPBACK)
    await deliverer.open()
    try:
        async with sink_server(handler) as url:
            result = await deliverer.deliver(webhook(url, ECHOED_SECRET))
    finally:
        await deliverer.aclose()

    assert result.status_code == 500
    assert result.body is not None
    assert "****" in result.body
    assert "wh-S" not in result.body
    assert "7f3a9c1e" not in result.body
