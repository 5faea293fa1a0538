"""The `hub` command: serve, worker, migrate, status, keys, secrets, and `dev` (what `make run`
starts).

`HUB_SECRET_KEY` (see `hub.crypto`) is required by the commands that read or write integration
secrets (`serve`, `worker`, `secrets rotate`) when `HUB_DATABASE_URL` names a database: they
refuse to start without it rather than store credentials in clear. With the embedded database
(`HUB_DATABASE_URL` unset: development) a key is generated once and kept next to the data, in
`<HUB_DATA_DIR>/secret-key`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy.exc import ProgrammingError

from hub import crypto
from hub.auth import client_id, generate_key
from hub.errors import ConfigurationError, SecretsUnreadable, Unauthenticated
from hub.logconfig import configure_logging
from hub.services import access
from hub.settings import Settings
from hub.ssrf import LOOPBACK
from hub.store import sessions as session_store
from hub.store import stores
from hub.store.engine import create_engine, database_url, migrate, migrate_url
from hub.store.models import ROLES
from hub.supervise import run_copies

if TYPE_CHECKING:
    from hub.services.processes import DeploymentStatus

DEV_STORE = "default"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="The integration hub.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API and the dispatcher")
    serve.add_argument("--host", help="listen address (HUB_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (HUB_PORT, default 8080)")
    serve.add_argument("--no-worker", action="store_true", help="API only, no dispatcher")
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate at start")
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT, so that several `hub serve` processes share one port",
    )
    _processes_option(serve, "copies of the API (and dispatcher) sharing one port")

    worker = sub.add_parser("worker", help="run a dispatcher only")
    _processes_option(worker, "copies of the dispatcher")
    sub.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    status = sub.add_parser(
        "status", help="the deployment: live processes, the queue by lane, lag, deliveries"
    )
    status.add_argument("--json", action="store_true", help="print GET /v2/status's document")

    dev = sub.add_parser("dev", help="migrate, print a ready-to-use key, and serve (make run)")
    dev.add_argument("--host")
    dev.add_argument("--port", type=int)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; prints it once, on the last line")
    create.add_argument("--store", required=True, help="the store's name (created if new)")
    create.add_argument("--role", required=True, choices=ROLES)
    keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")

    secrets_ = sub.add_parser("secrets", help="the key that encrypts stored secrets")
    secrets_sub = secrets_.add_subparsers(dest="secrets_command", required=True)
    secrets_sub.add_parser(
        "generate-key", help="print a new key for HUB_SECRET_KEY (touches nothing)"
    )
    secrets_sub.add_parser(
        "rotate",
        help="re-encrypt every stored secret with the first key of HUB_SECRET_KEY "
        "(and encrypt any stored in clear)",
    )
    return parser


#: Commands that read or write integration secrets.
_NEEDS_SECRET_KEY = ("serve", "worker", "dev", "secrets")


def _secret_key(settings: Settings, command: str) -> str | None:
    """`HUB_SECRET_KEY`, or the embedded database's generated key; see the module docstring."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        return settings.secret_key.get_secret_value()
    if command not in _NEEDS_SECRET_KEY:
        return None
    if settings.database_url:
        raise ConfigurationError(
            "HUB_SECRET_KEY is required with HUB_DATABASE_URL: it encrypts the integrations' "
            "credentials at rest. Create one with `hub secrets generate-key` and keep it safe."
        )
    path = settings.data_dir / "secret-key"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(crypto.generate_key() + "\n")
    print(f"hub: generated a key for stored secrets in {path} (embedded database only)")
    return path.read_text().strip()


async def _rotate_secrets(url: str, keyring: crypto.Keyring) -> int:
    from hub.services.secrets import reencrypt_all

    engine = create_engine(url, pool_size=1)
    try:
        await migrate(engine)
        report = await reencrypt_all(engine, keyring)
    finally:
        await engine.dispose()
    vapid = f" and {report.vapid_keys} VAPID keys" if report.vapid_keys else ""
    print(
        f"re-encrypted {report.values} secrets of {report.integrations} integrations{vapid} with "
        f"the first key of HUB_SECRET_KEY ({report.were_clear} had been stored in clear); the "
        "other keys may now be removed"
    )
    return 0


async def _keys(args: argparse.Namespace, url: str) -> int:
    engine = create_engine(url, pool_size=1)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            if args.keys_command == "create":
                if not args.store.strip() or len(args.store) > 200:
                    print(
                        "hub: --store must be a non-empty name of at most 200 characters",
                        file=sys.stderr,
                    )
                    return 2
                store = await stores.ensure_store(conn, args.store)
                new = generate_key()
                record = await stores.insert_key(
                    conn, store_id=store.id, role=args.role, prefix=new.prefix, key_hash=new.digest
                )
                print(
                    f"created key {record.id} (client id {client_id(record.prefix)}) for store "
                    f"{store.name!r} with role {record.role}; it is shown only once:"
                )
                print(new.key)
            elif args.keys_command == "list":
                header = f"{'id':36}  {'store':20}  {'role':8}  {'client id':17}  {'created':20}"
                print(f"{header}  status")
                for key in await stores.list_keys(conn):
                    status = "revoked" if key.revoked_at else "active"
                    print(
                        f"{key.id!s:36}  {key.store_name:20}  {key.role:8}  "
                        f"{client_id(key.prefix):17}  {key.created_at:%Y-%m-%d %H:%M:%S}  {status}"
                    )
            else:
                try:
                    key_id = UUID(args.key_id)
                except ValueError:
                    print(
                        f"hub: {args.key_id!r} is not a key id (see `hub keys list`)",
                        file=sys.stderr,
                    )
                    return 2
                if not await stores.revoke_key(conn, key_id):
                    print(f"hub: no active key {key_id}", file=sys.stderr)
                    return 1
                # Its console sessions would end at their next request anyway.
                ended = await session_store.delete_key_sessions(conn, key_id)
                print(
                    f"revoked key {key_id}"
                    + (f" ({ended} console sessions ended)" if ended else "")
                )
    finally:
        await engine.dispose()
    return 0


async def _status(settings: Settings, url: str, *, as_json: bool) -> int:
    from hub.api.status import deployment_status_out
    from hub.services.processes import status

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            found = await status(conn, stale_after=settings.heartbeat_stale_after)
    except ProgrammingError as exc:
        print(
            f"hub: cannot read the status ({exc.orig}); is the database migrated?", file=sys.stderr
        )
        return 1
    finally:
        await engine.dispose()
    if as_json:
        document = deployment_status_out(settings.base_url(), found)
        print(json.dumps({"data": document.model_dump(mode="json")}, indent=2))
        return 0
    print(render_status(found))
    return 0


def render_status(found: DeploymentStatus) -> str:
    """`hub status`'s text: the processes, then the queue, the lag and the last minute."""
    q = found.queue
    lines = [f"processes: {len(found.processes)} live"]
    if found.processes:
        lines.append(
            f"  {'id':40}  {'role':10}  {'address':21}  {'version':8}  "
            f"{'started (UTC)':19}  {'seen':>6}  in flight"
        )
    for p in found.processes:
        seen = (q.at - p.last_seen_at).total_seconds()
        lines.append(
            f"  {p.id:40}  {p.role:10}  {p.address or '-':21}  {p.version:8}  "
            f"{p.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}  {seen:>5.1f}s  {p.jobs_in_flight}"
        )
    oldest = (
        f" (oldest due since {q.oldest_due_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
        if q.oldest_due_at is not None
        else ""
    )
    lines += [
        "queue:",
        f"  first attempts  due {q.first_due:>9}  scheduled {q.first_scheduled:>9}",
        f"  retries         due {q.retries_due:>9}  scheduled {q.retries_scheduled:>9}",
        f"  delivering {q.delivering}  held {q.held}",
        f"lag: {q.lag_seconds:.1f} s{oldest}",
        f"last minute: {found.deliveries.succeeded} succeeded, {found.deliveries.failed} failed",
    ]
    return "\n".join(lines)


async def _dev_key(url: str, existing: str | None) -> str:
    """The demo store's admin key: `existing` while it is still valid, else a new one."""
    engine = create_engine(url, pool_size=1)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            if existing:
                with contextlib.suppress(Unauthenticated):
                    await access.identify(conn, existing)
                    return existing
            store = await stores.ensure_store(conn, DEV_STORE)
            new = generate_key()
            await stores.insert_key(
                conn, store_id=store.id, role="admin", prefix=new.prefix, key_hash=new.digest
            )
            return new.key
    finally:
        await engine.dispose()


def _dev(settings: Settings, url: str) -> str:
    """The key `make run` prints, kept in .hub/dev-key so every run shows the same one."""
    path = settings.data_dir / "dev-key"
    existing = path.read_text().strip() if path.exists() else None
    key = asyncio.run(_dev_key(url, existing))
    if key != existing:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        path.chmod(0o600)
    return key


def _print_welcome(settings: Settings, key: str) -> None:
    base = settings.base_url()
    print(
        f"""
hub is starting at {base}  (API docs: {base}/docs)

Console: {base}/console  (sign in with the key below)

A key for the store {DEV_STORE!r} (role admin; kept in {settings.data_dir}/dev-key):

    export HUB_KEY={key}

Create a webhook integration, publish an event, and look at its job:

    curl -s {base}/v2/integrations -H "Authorization: Bearer $HUB_KEY" \\
      -H 'Content-Type: application/json' -d '{{"data": {{"type": "integration",
      "name": "Orders to my app", "enabled": true, "integration_type": "webhook",
      "observes": ["order.created"], "configuration": {{"url": "http://127.0.0.1:9000/hook"}}}}}}'

    curl -s {base}/v2/events -H "Authorization: Bearer $HUB_KEY" \\
      -H 'Content-Type: application/json' -d '{{"data": {{"type": "event",
      "triggered_by": "order.created", "payload": {{"data": {{"type": "order", "id": "o-1"}}}}}}}}'

    curl -s {base}/v2/integrations/<integration id>/jobs -H "Authorization: Bearer $HUB_KEY"

An Elastic Path client (such as @elasticpath/js-sdk) takes the host and protocol, not a URL:

    host: '{urlsplit(base).netloc}', protocol: '{urlsplit(base).scheme}',
    client_id: '{key[:16]}' (the key's first 16 characters), client_secret: the key
""",
        flush=True,
    )


def _processes_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help=f"run N {what}, one per core (HUB_PROCESSES, default 1); see hub.supervise",
    )


def _run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived service (`serve`, `worker`, `dev`) on uvloop when it is installed (its
    transports halve the event loop's cost per database round trip and HTTP request); the
    standard loop otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a declared dependency; optional all the same
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as service:
        service.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    processes: int | None = getattr(args, "processes", None)
    try:  # --processes is validated as HUB_PROCESSES would be
        settings = Settings() if processes is None else Settings(processes=processes)
    except ValidationError as exc:
        print(f"hub: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if getattr(args, "host", None):
        settings = settings.model_copy(update={"host": args.host})
    if getattr(args, "port", None) is not None:
        settings = settings.model_copy(update={"port": args.port})
    if args.command == "dev" and "allowed_networks" not in settings.model_fields_set:
        # The README's demo delivers to a local app; a deployment decides for itself.
        settings = settings.model_copy(update={"allowed_networks": LOOPBACK})
    configure_logging(settings)
    if args.command == "secrets" and args.secrets_command == "generate-key":
        print(crypto.generate_key())
        return 0
    try:
        secret_key = _secret_key(settings, args.command)
        keyring = crypto.Keyring.from_setting(secret_key) if secret_key else None
        url = database_url(settings)
    except ConfigurationError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 2
    crypto.install(keyring)
    try:
        return _run(args, settings, url, keyring)
    except SecretsUnreadable as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 2


def _run(
    args: argparse.Namespace, settings: Settings, url: str, keyring: crypto.Keyring | None
) -> int:
    from hub import runner  # imported late: the API and deliverers are not needed by `keys`

    if args.command == "migrate":
        migrate_url(url)
        print("database migrated to head")
        return 0
    if args.command == "keys":
        return asyncio.run(_keys(args, url))
    if args.command == "status":
        return asyncio.run(_status(settings, url, as_json=args.json))
    if args.command == "secrets":
        assert keyring is not None
        return asyncio.run(_rotate_secrets(url, keyring))
    if args.command == "worker":
        return run_copies(settings.processes, lambda: _run_service(runner.work(settings, url)))
    if args.command == "dev":
        key = _dev(settings, url)
        _print_welcome(settings, key)
        options = runner.ServeOptions(settings.host, settings.port, do_migrate=False)
        _run_service(runner.serve(settings, url, options))
        return 0
    copies = settings.processes
    if copies > 1 and settings.port == 0:
        print("hub: --processes needs a fixed port (the copies share it)", file=sys.stderr)
        return 2
    if copies > 1 and not args.no_migrate:
        migrate_url(url)  # once, before the copies start
    options = runner.ServeOptions(
        settings.host,
        settings.port,
        with_worker=not args.no_worker,
        do_migrate=not args.no_migrate and copies == 1,
        reuse_port=args.reuse_port or copies > 1,
    )
    return run_copies(copies, lambda: _run_service(runner.serve(settings, url, options)))


if __name__ == "__main__":
    sys.exit(main())
