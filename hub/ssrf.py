"""The SSRF guard: deliveries go to public addresses only, unless the operator allows more.

Integrations name their targets (webhook URLs, SQS endpoints, STOMP brokers) and the hub connects
to them from inside its network, so a careless or hostile target must not reach the hub's
neighbours: the cloud metadata service (169.254.169.254), the database, an admin console on
loopback. Every address a delivery would connect to is judged by `SsrfGuard.check`:

* **refused** when it is not public: unspecified (`0.0.0.0`, `::`, which reach the host itself),
  loopback, private (RFC 1918, IPv6 unique-local), link-local (incl. the metadata service),
  carrier-grade NAT (100.64.0.0/10), multicast, broadcast, documentation, benchmarking and
  reserved ranges, IETF protocol ranges (Teredo, ORCHID, 192.0.0.0/24), and IPv6 forms that
  embed such an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`,
  SIIT `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`);
* **allowed** otherwise, or when the address (or the IPv4 address it embeds) lies in one of
  `HUB_ALLOWED_NETWORKS`: that is how an operator lets deliveries reach internal targets.

Host names are resolved once and every answer is judged: refused answers are dropped, and a
host with no answer left is refused. The connection is made to the vetted answers themselves:
`GuardedResolver` plugs into aiohttp's connector so that no second lookup can be rebound to an
internal address between the check and the connect (DNS rebinding). Literal addresses are
judged after normalising the spellings that resolvers accept (`2130706433`, `0x7f.1`,
`0177.0.0.1`, `127.1`, a trailing dot, an IPv6 zone).

At create/update time `static_problem` judges what can be judged without DNS: literal addresses
and names that can only be internal (`localhost`, `*.localhost`, `*.local`, `*.internal`,
`*.home.arpa`).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from hub.errors import TargetRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
"""What `hub dev` and the tests allow: the local machine."""


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in pairs)


_V4_RANGES = _nets(
    ("0.0.0.0/8", "'this network' (reaches the host itself)"),
    ("10.0.0.0/8", "private network"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local, where cloud metadata services live"),
    ("172.16.0.0/12", "private network"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private network"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
)
_V6_RANGES = _nets(
    ("::/128", "unspecified (reaches the host itself)"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo tunnelling"),
    ("2001:10::/28", "ORCHID"),
    ("2001:20::/28", "ORCHIDv2"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique-local (private) network"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
#: IPv6 ranges whose last 32 bits are an IPv4 address the packets end up at.
_EMBEDDING = _nets(
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b::/96", "NAT64"),
    ("::/96", "IPv4-compatible"),
)
_SIXTOFOUR = ipaddress.ip_network("2002::/16")

#: Names that can only be internal, whatever DNS says (RFC 6761, 6762, 8375; ICANN's .internal).
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

#: Spellings and addresses whose judgements are remembered (`parse_ip`, `_refusal`).
_MEMO_SIZE = 4096

_IPV4_PART = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$", re.IGNORECASE)


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), and the form."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in _SIXTOFOUR:
        return ipaddress.IPv4Address(address.packed[2:6]), "6to4"
    if int(address) <= 1:  # `::` and `::1` are not IPv4-compatible forms
        return None
    for network, form in _EMBEDDING:
        if address in network:
            return ipaddress.IPv4Address(address.packed[12:]), form
    return None


def non_public_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public address, or None when it is one."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        inner, form = embedded
        reason = non_public_reason(inner)
        return None if reason is None else f"{form} form of {inner}, {reason}"
    ranges = _V4_RANGES if isinstance(address, ipaddress.IPv4Address) else _V6_RANGES
    for network, reason in ranges:
        if address in network:
            return reason
    if not address.is_global or address.is_multicast:
        return "not a public address"
    return None


@functools.lru_cache(maxsize=_MEMO_SIZE)
def parse_ip(host: str) -> IPAddress | None:
    """`host` as an address if it spells one, in any form a resolver would accept.

    Besides the canonical forms: brackets, an IPv6 zone (`fe80::1%eth0`), one trailing dot, and
    the inet_aton spellings of IPv4 (1 to 4 parts, each decimal, octal with a leading 0, or hex
    with 0x; the last part fills the remaining bytes: `127.1`, `0x7f000001`, `2130706433`).
    Memoised (bounded): a pure function of the text, asked on every delivery.
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # an IPv6 zone id (yarl decodes %25 to %)
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    text = text.removesuffix(".")
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.match(p) for p in parts):
        return None
    values = []
    for part in parts:
        if part[:2] == "0x":
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part[0] == "0":
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


@dataclass(frozen=True, slots=True)
class SsrfGuard:
    """Judges the addresses a delivery would connect to; see the module docstring."""

    allowed_networks: tuple[Network, ...] = ()

    def is_allowed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        embedded = embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded[0])
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.allowed_networks
        )

    def check(self, host: str, address: IPAddress) -> None:
        """Raise `TargetRefused` if the hub must not connect to `address` (for `host`)."""
        reason = _refusal(self.allowed_networks, address)
        if reason is None:
            return
        shown = str(address) if parse_ip(host) is not None else f"{host} ({address})"
        raise TargetRefused(host, str(address), f"Refused to connect to {shown}: {reason}{_HINT}")

    def check_literal(self, host: str) -> None:
        """Judge `host` if it spells an address (no DNS); names are left to the resolver."""
        address = parse_ip(host)
        if address is not None:
            self.check(host, address)

    def vet(self, host: str, addresses: Sequence[IPAddress]) -> list[IPAddress]:
        """The answers of a lookup that may be connected to; `TargetRefused` if there is none."""
        kept: list[IPAddress] = []
        first: TargetRefused | None = None
        for address in addresses:
            try:
                self.check(host, address)
            except TargetRefused as refused:
                first = first or refused
            else:
                kept.append(address)
        if not kept and first is not None:
            raise first
        return kept

    def resolve_sync(self, host: str, port: int) -> list[IPAddress]:
        """Resolve `host` (blocking; for threads) and return its vetted addresses."""
        literal = parse_ip(host)
        if literal is not None:
            self.check(host, literal)
            return [literal]
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return self.vet(host, _unique(_address(str(info[4][0])) for info in infos))

    def resolver(self, inner: AbstractResolver | None = None) -> GuardedResolver:
        """An aiohttp resolver that hands the connector only vetted addresses."""
        return GuardedResolver(self, inner)

    def static_problem(self, host: str) -> str | None:
        """What is wrong with `host` as far as can be told without DNS (create/update time)."""
        literal = parse_ip(host)
        if literal is not None:
            reason = None if self.is_allowed(literal) else non_public_reason(literal)
            if reason is None:
                return None
            return f"{literal} is not a public address ({reason}){_HINT}"
        name = host.lower().removesuffix(".")
        if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
            if any(self.is_allowed(address) for address in _LOCALHOST):
                return None
            return f"{host} is the local machine (loopback){_HINT}"
        if name.endswith(_INTERNAL_SUFFIXES) and not self.allowed_networks:
            return f"{host} can only be an internal name{_HINT}"
        return None


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _refusal(allowed_networks: tuple[Network, ...], address: IPAddress) -> str | None:
    """Why `address` is refused under `allowed_networks`, or None when it may be connected to.

    Memoised (bounded): a pure function of an address, never of a name. What a name resolves to
    is looked up and judged afresh by `GuardedResolver` (DNS rebinding); only the judgement of
    an address it answered with is remembered.
    """
    if SsrfGuard(allowed_networks).is_allowed(address):
        return None
    return non_public_reason(address)


_HINT = (
    "; the hub only delivers to public addresses unless HUB_ALLOWED_NETWORKS lists the "
    "target's network"
)
_LOCALHOST = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


def _address(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addresses))


class GuardedResolver(AbstractResolver):
    """aiohttp resolver: resolve with `inner` (default: getaddrinfo in a thread) and hand the
    connector only the vetted answers, which are what it connects to (`TargetRefused` when none
    is left).

    aiohttp does not ask a resolver about literal addresses; callers judge those with
    `SsrfGuard.check_literal` before the request.
    """

    def __init__(self, guard: SsrfGuard, inner: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        answers = await self._inner.resolve(host, port, family)
        kept = set(self._guard.vet(host, [_address(a["host"]) for a in answers]))
        return [a for a in answers if _address(a["host"]) in kept]

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


__all__ = [
    "LOOPBACK",
    "GuardedResolver",
    "IPAddress",
    "Network",
    "SsrfGuard",
    "embedded_ipv4",
    "non_public_reason",
    "parse_ip",
]
