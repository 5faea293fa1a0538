"""An HTTP endpoint as a deliverer connects to it: its URL parsed and, when its host is a literal
address, judged by the SSRF guard (the webhook and Web Push deliverers both POST this way).

Both are pure functions of the URL's text, so they are remembered per URL (bounded). A host
name is left to the connector's `GuardedResolver`, which looks it up and judges the answers on
every new connection (DNS rebinding): nothing about a name is remembered here.
"""

from __future__ import annotations

from dataclasses import dataclass

from yarl import URL

from hub.errors import TargetRefused
from hub.ssrf import SsrfGuard, parse_ip

#: URLs whose parsed and judged form `Endpoints` keeps.
MEMO = 4096


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An endpoint URL as the deliverer connects to it."""

    url: URL
    """With a literal address in its canonical spelling."""
    host: str | None
    """As the integration spells it, for logs."""
    refused: str | None
    """Why the SSRF guard refuses the literal address, if it does."""


class Endpoints:
    """The endpoints a deliverer has judged, by URL text; see the module docstring."""

    def __init__(self, guard: SsrfGuard) -> None:
        self._guard = guard
        self._known: dict[str, Endpoint] = {}

    def judge(self, url_text: str) -> Endpoint:
        """`url_text` parsed and, when its host is a literal address, judged by the guard."""
        endpoint = self._known.get(url_text)
        if endpoint is not None:
            return endpoint
        url = URL(url_text)
        host = url.host
        endpoint = Endpoint(url, host, None)
        literal = parse_ip(host or "")
        if literal is not None:
            try:
                self._guard.check(host or "", literal)
            except TargetRefused as refused:
                endpoint = Endpoint(url, host, refused.reason)
            else:
                # Connect to the address as judged, whatever its spelling (`127.1`, `0x7f.1`).
                endpoint = Endpoint(url.with_host(str(literal)), host, None)
        if len(self._known) >= MEMO:
            self._known.clear()
        self._known[url_text] = endpoint
        return endpoint


__all__ = ["MEMO", "Endpoint", "Endpoints"]
