"""`KnownCredentials`: what a web process remembers of the keys and tokens it verified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from hub.auth import Principal
from hub.services.access import KnownCredentials


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(role: str = "publish") -> Principal:
    return Principal(uuid4(), role, uuid4(), "acme")


def known(ttl: float = 10, size: int = 100) -> tuple[KnownCredentials, Clock]:
    clock = Clock()
    cache = KnownCredentials(ttl, size=size, clock=clock)
    cache.trust(True)
    return cache, clock


def test_a_verified_credential_is_known_until_its_ttl_passes() -> None:
    cache, clock = known(ttl=10)
    who = principal()
    cache.remember("hub_secret", who)

    assert cache.get("hub_secret") == who
    clock.now += 9.9
    assert cache.get("hub_secret") == who
    clock.now += 0.1
    assert cache.get("hub_secret") is None
    assert len(cache) == 0


def test_only_the_exact_credential_is_known() -> None:
    cache, _ = known()
    cache.remember("hub_secret", principal())

    assert cache.get("hub_secreT") is None
    assert cache.get("hub_secret ") is None


def test_the_credential_itself_is_not_kept() -> None:
    cache, _ = known()
    cache.remember("hub_very_secret_value", principal())

    kept = repr(vars(cache)) + repr(list(cache._known))
    assert "hub_very_secret_value" not in kept


def test_an_access_token_is_never_known_past_its_expiry() -> None:
    cache, clock = known(ttl=60)
    cache.remember("hubt_x", principal(), expires_at=datetime.now(UTC) + timedelta(seconds=2))

    assert cache.get("hubt_x") is not None
    clock.now += 2.5
    assert cache.get("hubt_x") is None


def test_an_expired_token_is_not_remembered_at_all() -> None:
    cache, _ = known()
    cache.remember("hubt_x", principal(), expires_at=datetime.now(UTC) - timedelta(seconds=1))

    assert cache.get("hubt_x") is None


def test_nothing_is_used_or_kept_while_notices_cannot_arrive() -> None:
    cache, _ = known()
    cache.remember("hub_a", principal())

    cache.trust(False)

    assert cache.get("hub_a") is None
    cache.remember("hub_b", principal())
    assert len(cache) == 0
    # Back to listening: what was known before is forgotten (a revocation may have been missed).
    cache.trust(True)
    assert cache.get("hub_a") is None


def test_a_new_cache_is_not_trusted_before_its_listener_says_so() -> None:
    cache = KnownCredentials(10)
    cache.remember("hub_a", principal())

    assert not cache.trusted
    assert cache.get("hub_a") is None


def test_a_revocation_notice_forgets_everything() -> None:
    cache, _ = known()
    cache.remember("hub_a", principal())
    cache.remember("hub_b", principal())

    cache.forget_all()

    assert cache.get("hub_a") is None
    assert cache.get("hub_b") is None


def test_a_ttl_of_zero_is_no_cache() -> None:
    cache = KnownCredentials(0)
    cache.trust(True)
    cache.remember("hub_a", principal())

    assert not cache.trusted
    assert cache.get("hub_a") is None


def test_the_least_recently_used_is_forgotten_beyond_size() -> None:
    cache, _ = known(size=2)
    a, b, c = principal(), principal(), principal()
    cache.remember("hub_a", a)
    cache.remember("hub_b", b)
    assert cache.get("hub_a") == a  # a is now the most recently used

    cache.remember("hub_c", c)

    assert len(cache) == 2
    assert cache.get("hub_b") is None
    assert cache.get("hub_a") == a
    assert cache.get("hub_c") == c
