"""The explicit map from `integration_type` to the deliverer that serves it."""

from __future__ import annotations

from collections.abc import Iterable

from deliverers.base import Deliverer
from hub.errors import UnknownIntegrationType


class DelivererRegistry:
    """Holds one opened deliverer per integration type; an unknown type is an error."""

    def __init__(self, deliverers: Iterable[Deliverer]) -> None:
        self._by_type: dict[str, Deliverer] = {}
        for deliverer in deliverers:
            if deliverer.integration_type in self._by_type:
                raise ValueError(f"two deliverers for {deliverer.integration_type!r}")
            self._by_type[deliverer.integration_type] = deliverer

    def get(self, integration_type: str) -> Deliverer:
        """The deliverer for `integration_type`, or `UnknownIntegrationType`."""
        try:
            return self._by_type[integration_type]
        except KeyError:
            raise UnknownIntegrationType(integration_type) from None

    @property
    def types(self) -> frozenset[str]:
        return frozenset(self._by_type)

    async def open(self) -> None:
        for deliverer in self._by_type.values():
            await deliverer.open()

    async def aclose(self) -> None:
        for deliverer in self._by_type.values():
            await deliverer.aclose()
