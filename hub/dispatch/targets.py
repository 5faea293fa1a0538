"""The delivery targets a worker built: an integration's decrypted, validated configuration and
signing secrets (and, for Web Push, its store's VAPID key), kept per version of the integration
(see `Targets`)."""

from __future__ import annotations

import dataclasses
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime

from deliverers.base import Target, VapidKey
from deliverers.config import CONFIG_MODELS
from hub import crypto
from hub.errors import TargetUnavailable
from hub.store import claiming

#: Reads a store's VAPID key pair (None: it has none).
VapidKeys = Callable[[uuid.UUID], Awaitable[VapidKey | None]]

#: Integrations whose delivery targets a worker keeps built.
TARGET_CACHE_SIZE = 4096


class Targets:
    """The delivery targets this worker built, one per integration, least recently used first.

    Building one decrypts the integration's secrets (Fernet) and validates its configuration
    (pydantic): work worth doing once per version of an integration, not once per delivery. A
    version is the integration's `updated_at`, which every change bumps (configuration, signing
    secret rotation, enabling, renaming), plus its previous signing secret as the claim returned
    it (that one lapses at the end of its grace period without any change): a changed
    integration is rebuilt at its next claim. A target that cannot be built (unreadable secrets,
    invalid configuration) is not kept, so its error comes back on every attempt.

    A `web_push` target carries its store's VAPID key, read with `vapid_keys` when the target
    is built (once per version, not per delivery); rotating the key marks the store's
    `web_push` integrations changed, so their targets are rebuilt with the new one.
    """

    def __init__(
        self, size: int = TARGET_CACHE_SIZE, *, vapid_keys: VapidKeys | None = None
    ) -> None:
        self._size = size
        self._vapid_keys = vapid_keys
        self._built: OrderedDict[uuid.UUID, tuple[tuple[datetime, str | None], Target]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._built)

    async def get(self, job: claiming.ClaimedJob) -> Target:
        """The target of `job`'s integration at the version it was claimed with.

        Raises `SecretsUnreadable` or pydantic's `ValidationError` when it cannot be built, and
        `TargetUnavailable` when the store's VAPID key cannot be read now.
        """
        version = (job.integration_updated_at, job.previous_signing_secret)
        known = self._built.get(job.integration_id)
        if known is not None and known[0] == version:
            self._built.move_to_end(job.integration_id)
            return known[1]
        target = self._build(job)
        if target.integration_type == "web_push" and self._vapid_keys is not None:
            target = await self._with_vapid_key(target)
        self._built[job.integration_id] = (version, target)
        self._built.move_to_end(job.integration_id)
        if len(self._built) > self._size:
            self._built.popitem(last=False)
        return target

    async def _with_vapid_key(self, target: Target) -> Target:
        assert self._vapid_keys is not None
        try:
            key = await self._vapid_keys(target.store_id)
        except Exception as error:
            raise TargetUnavailable(
                "The store's VAPID key could not be read; the attempt will be retried "
                f"({str(error) or type(error).__name__})"
            ) from error
        return dataclasses.replace(target, vapid=key)

    @staticmethod
    def _build(job: claiming.ClaimedJob) -> Target:
        stored = crypto.open_configuration(job.configuration)  # `SecretsUnreadable` if it cannot
        configuration = CONFIG_MODELS[job.integration_type].model_validate(stored)
        signing_secrets = (job.signing_secret, job.previous_signing_secret)
        return Target(
            id=job.integration_id,
            store_id=job.store_id,
            name=job.integration_name,
            description=job.integration_description,
            integration_type=job.integration_type,
            configuration=configuration,
            signing_secrets=tuple(crypto.open_text(s) for s in signing_secrets if s),
        )
