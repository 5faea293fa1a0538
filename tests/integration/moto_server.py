"""A real SQS endpoint for the tests: moto in server mode, in a child process, on a free port.

`python -m tests.integration.moto_server` starts moto's threaded server on `127.0.0.1:0`, creates
two IAM users over HTTP (one allowed `sqs:*`, one with no permission at all), then switches IAM
authentication on for every later request (moto's `/moto-api/reset-auth`, the server-mode form of
`INITIAL_NO_AUTH_ACTION_COUNT`), so that wrong credentials really fail as they do on AWS. It
prints one JSON line (the endpoint and both users' keys) and serves until its standard input
closes, which is also what happens when the test process dies: the server never outlives it.

`shared_moto_server()` starts one such server per test process (per xdist worker) on first use;
test modules wrap it in a session fixture. Queues are per test, with unique names.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.session import get_session

REGION = "us-east-1"

_ALLOW_SQS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}],
    }
)


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = ""


@dataclass(frozen=True, slots=True)
class MotoServer:
    """A running moto server; `allowed` may do anything with SQS, `denied` nothing."""

    endpoint: str
    allowed: Credentials
    denied: Credentials
    region: str = REGION

    @contextlib.asynccontextmanager
    async def client(self, credentials: Credentials | None = None) -> AsyncIterator[Any]:
        """An aiobotocore SQS client of this server (as `allowed` unless told otherwise)."""
        creds = credentials or self.allowed
        async with shared_session().create_client(
            "sqs",
            region_name=self.region,
            endpoint_url=self.endpoint,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
        ) as client:
            yield client

    async def create_queue(
        self, prefix: str = "q", *, fifo: bool = False, attributes: dict[str, str] | None = None
    ) -> str:
        """A new, empty queue with a unique name; returns its URL."""
        name = f"{prefix}-{secrets.token_hex(6)}" + (".fifo" if fifo else "")
        attrs = dict(attributes or {})
        if fifo:
            attrs["FifoQueue"] = "true"
        async with self.client() as sqs:
            answer = await sqs.create_queue(QueueName=name, Attributes=attrs)
        url: str = answer["QueueUrl"]
        return url

    async def receive(self, queue_url: str, count: int, *, timeout: float = 5.0) -> list[Any]:
        """Exactly `count` messages from the queue, with every attribute (fails on fewer)."""
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        async with self.client() as sqs:
            while len(messages) < count:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(messages)} of {count} messages arrived")
                answer = await sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=min(10, count - len(messages)),
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                    VisibilityTimeout=60,
                    WaitTimeSeconds=0,
                )
                batch = answer.get("Messages", [])
                if not batch:
                    await asyncio.sleep(0.02)
                messages.extend(batch)
        return messages

    async def count(self, queue_url: str) -> int:
        """Messages in the queue: visible plus received-but-not-deleted."""
        async with self.client() as sqs:
            answer = await sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        attributes: dict[str, str] = answer["Attributes"]
        return sum(int(value) for value in attributes.values())


# --- the parent side ---------------------------------------------------------------------------

_shared: tuple[subprocess.Popen[str], MotoServer] | None = None
_session: Any = None


def shared_session() -> Any:
    """One aiobotocore session per process: a new one costs ~70 ms of loading service models."""
    global _session
    if _session is None:
        _session = get_session()
    return _session


def start_moto_server(timeout: float = 30.0) -> tuple[subprocess.Popen[str], MotoServer]:
    """Start a server process; returns it and its description once it is serving."""
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.moto_server"],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert process.stdout is not None
    # `readline` blocks until the child is ready or dies (EOF); moto starts in about a second.
    line = process.stdout.readline()
    if not line:
        process.wait(timeout)
        raise RuntimeError(f"the moto server exited with {process.returncode} before serving")
    info = json.loads(line)
    server = MotoServer(
        endpoint=info["endpoint"],
        allowed=Credentials(**info["allowed"]),
        denied=Credentials(**info["denied"]),
    )
    return process, server


def stop_moto_server(process: subprocess.Popen[str]) -> None:
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def shared_moto_server() -> MotoServer:
    """This process's moto server, started on first use and stopped when the process exits."""
    global _shared
    if _shared is None:
        _shared = start_moto_server()
        atexit.register(stop_moto_server, _shared[0])
    return _shared[1]


# --- the child side ----------------------------------------------------------------------------


async def _create_user(endpoint: str, name: str, policy: str | None) -> Credentials:
    async with get_session().create_client(
        "iam",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    ) as iam:
        await iam.create_user(UserName=name)
        if policy is not None:
            await iam.put_user_policy(UserName=name, PolicyName="sqs", PolicyDocument=policy)
        key = (await iam.create_access_key(UserName=name))["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


async def _prepare(endpoint: str) -> tuple[Credentials, Credentials]:
    allowed = await _create_user(endpoint, "hub-sender", _ALLOW_SQS)
    denied = await _create_user(endpoint, "hub-nobody", None)
    # From now on every request must be signed by a known key with a policy allowing it.
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{endpoint}/moto-api/reset-auth", data=b"0") as answer,
    ):
        answer.raise_for_status()
    return allowed, denied


def _serve() -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    allowed, denied = asyncio.run(_prepare(endpoint))
    info = {
        "endpoint": endpoint,
        "allowed": {
            "access_key_id": allowed.access_key_id,
            "secret_access_key": allowed.secret_access_key,
        },
        "denied": {
            "access_key_id": denied.access_key_id,
            "secret_access_key": denied.secret_access_key,
        },
    }
    print(json.dumps(info), flush=True)
    sys.stdin.read()  # until the parent closes it, or dies
    server.stop()


if __name__ == "__main__":
    _serve()
