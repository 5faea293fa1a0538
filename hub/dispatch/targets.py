"""The delivery targets a worker built: an integration's decrypted, validated configuration and
signing secrets, kept per version of the integration (see `Targets`)."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from datetime import datetime

from deliverers.base import Target
from deliverers.config import CONFIG_MODELS
from hub import crypto
from hub.store import claiming

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
    """

    def __init__(self, size: int = TARGET_CACHE_SIZE) -> None:
        self._size = size
        self._built: OrderedDict[uuid.UUID, tuple[tuple[datetime, str | None], Target]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._built)

    def get(self, job: claiming.ClaimedJob) -> Target:
        """The target of `job`'s integration at the version it was claimed with.

        Raises `SecretsUnreadable` or pydantic's `ValidationError` when it cannot be built.
        """
        version = (job.integration_updated_at, job.previous_signing_secret)
        known = self._built.get(job.integration_id)
        if known is not None and known[0] == version:
            self._built.move_to_end(job.integration_id)
            return known[1]
        target = self._build(job)
        self._built[job.integration_id] = (version, target)
        self._built.move_to_end(job.integration_id)
        if len(self._built) > self._size:
            self._built.popitem(last=False)
        return target

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
