"""Event keys: the catalogue of observable events and the rules for `observes` and publishing.

An event key is ``<resource>.<action>``: two names joined by one dot, each name lowercase
``[a-z0-9][a-z0-9_-]*``, the whole key at most 128 characters (``order.paid``,
``subscription.create-failed``, ``wishlist_ext.created``).

Three kinds of key are known:

* **catalogue keys**: EP's observable events, shipped in ``config/events.json``;
* **custom keys**: ``<name>.created``, ``<name>.updated`` or ``<name>.deleted`` for any valid
  name, as EP emits for Custom API entries (keyed by the entry's ``api_type``). Any valid name is
  accepted, so ``cart.created`` passes as a custom key although EP never emits it;
* the hub's own ``integration.test``, published to try an integration out;
* the hub's **operational events** (`OPERATIONAL_KEYS`): ``integration.disabled``,
  ``integration.enabled`` and ``job.failed``, which the hub publishes into a store itself when
  one of its integrations is switched off or on, or a job gives up (`hub.operational` builds
  them, with the rule that keeps them from looping).

What each place accepts:

* ``observes``: catalogue keys, custom keys, operational keys, and (beyond EP) the wildcards
  ``*`` and ``<resource>.*`` for any valid resource name, in the catalogue or not
  (``wishlist_ext.*`` observes a Custom API);
* ``triggered_by`` (``POST /v2/events``): catalogue keys, custom keys and ``integration.test``;
  never a wildcard, since an event is one concrete thing that happened, and never an
  operational key, which only the hub publishes (a client could otherwise page an operator
  with a fake ``integration.disabled``).

Matching: an integration receives an event keyed ``k = r.a`` exactly when its ``observes``
contains one of ``match_candidates(k) == (k, "r.*", "*")``; for an operational key only
``(k, "r.*")``: the hub's own events are opted into by name (``job.failed``) or resource
(``integration.*``, ``job.*``), and ``*`` keeps meaning every event the store's services
publish, so a catch-all integration does not start receiving the hub's reports unasked. The
store runs the same rule as an array-overlap query (``observes && candidates``), so the two
must never drift apart.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hub.errors import ConfigurationError

MAX_KEY_LENGTH = 128
WILDCARD = "*"
TEST_KEY = "integration.test"
INTEGRATION_DISABLED = "integration.disabled"
INTEGRATION_ENABLED = "integration.enabled"
JOB_FAILED = "job.failed"
OPERATIONAL_KEYS = frozenset({INTEGRATION_DISABLED, INTEGRATION_ENABLED, JOB_FAILED})
"""The keys of the events the hub publishes itself (`hub.operational`); no client may."""
CUSTOM_ACTIONS = frozenset({"created", "updated", "deleted"})

DEFAULT_CATALOGUE_PATH = Path(__file__).resolve().parents[1] / "config" / "events.json"

_NAME = r"[a-z0-9][a-z0-9_-]*"
_NAME_RE = re.compile(_NAME)
_KEY_RE = re.compile(rf"({_NAME})\.({_NAME})")
_SYNTAX = (
    "an event key is <resource>.<action>, each part lowercase letters, digits, '-' or '_' "
    f"(starting with a letter or digit), at most {MAX_KEY_LENGTH} characters"
)


@dataclass(frozen=True, slots=True)
class EventCatalogue:
    """EP's observable events: every known key, and the resources they belong to."""

    keys: frozenset[str]
    resources: frozenset[str]

    def __contains__(self, key: object) -> bool:
        return key in self.keys


def is_valid_key(key: str) -> bool:
    """Whether `key` is a syntactically valid concrete key ``<resource>.<action>``."""
    return len(key) <= MAX_KEY_LENGTH and _KEY_RE.fullmatch(key) is not None


def is_valid_resource(name: str) -> bool:
    """Whether `name` is a syntactically valid resource name (the part before the dot)."""
    return len(name) <= MAX_KEY_LENGTH - 2 and _NAME_RE.fullmatch(name) is not None


def is_custom_key(key: str) -> bool:
    """Whether `key` is a valid ``<name>.created|updated|deleted`` key (a Custom API entry)."""
    match = _KEY_RE.fullmatch(key)
    return len(key) <= MAX_KEY_LENGTH and match is not None and match[2] in CUSTOM_ACTIONS


def _show(key: str) -> str:
    """`key` quoted for a message, cut short so a huge input does not flood the answer."""
    return repr(key) if len(key) <= MAX_KEY_LENGTH + 8 else f"{key[:MAX_KEY_LENGTH]!r}…"


def _not_observable(key: str) -> str:
    return (
        f"{_show(key)} is not an observable event: not in the catalogue and not a custom "
        "<name>.created|updated|deleted key"
    )


def is_operational(key: str) -> bool:
    """Whether `key` is one of the hub's own operational events (`OPERATIONAL_KEYS`)."""
    return key in OPERATIONAL_KEYS


def observable_keys(catalogue: EventCatalogue) -> list[str]:
    """Every concrete key an integration may observe by name, sorted: the catalogue's and the
    operational ones (custom keys are open-ended, so not listed)."""
    return sorted(catalogue.keys | OPERATIONAL_KEYS)


def validate_observed(key: str, catalogue: EventCatalogue) -> str | None:
    """Check one entry of an integration's `observes`: None if acceptable, else the reason.

    Accepted: a catalogue key, a custom ``<name>.created|updated|deleted`` key, an operational
    key, ``*``, and ``<resource>.*`` for any valid resource name.
    """
    if key == WILDCARD or key in catalogue or is_custom_key(key) or is_operational(key):
        return None
    resource, dot, action = key.rpartition(".")
    if dot and action == WILDCARD:
        if is_valid_resource(resource):
            return None
        return f"{_show(key)} is not a valid wildcard: use * or <resource>.* ({_SYNTAX})"
    if not is_valid_key(key):
        return f"{_show(key)} is not a valid event key: {_SYNTAX}"
    return _not_observable(key)


def validate_published(key: str, catalogue: EventCatalogue) -> str | None:
    """Check an event's `triggered_by` for ``POST /v2/events``: None if acceptable, else the reason.

    Accepted: a catalogue key, a custom ``<name>.created|updated|deleted`` key, and
    ``integration.test``. An event is one concrete thing that happened, so wildcards are refused;
    operational keys are the hub's own.
    """
    if is_operational(key):
        return (
            f"{_show(key)} is an operational event: only the hub publishes it (when an "
            "integration is disabled or enabled, or a job fails for good); observe it instead"
        )
    if key == TEST_KEY or key in catalogue or is_custom_key(key):
        return None
    if WILDCARD in key:
        return f"{_show(key)} is a wildcard: an event's triggered_by must be one concrete event key"
    if not is_valid_key(key):
        return f"{_show(key)} is not a valid event key: {_SYNTAX}"
    return (
        f"{_show(key)} cannot be published: not in the catalogue, not a custom "
        f"<name>.created|updated|deleted key and not {TEST_KEY}"
    )


def match_candidates(key: str) -> tuple[str, ...]:
    """The `observes` entries that select an event keyed `key`: ``(key, "<resource>.*", "*")``,
    and for an operational key ``(key, "<resource>.*")`` (``*`` does not select the hub's own
    events: module docstring).

    Exactly this set; the store queries ``observes && candidates``. Raises `ValueError` for
    anything but a concrete key (a wildcard is not an event).
    """
    if not is_valid_key(key):
        raise ValueError(f"{_show(key)} is not a concrete event key: {_SYNTAX}")
    resource = key.partition(".")[0]
    if is_operational(key):
        return (key, f"{resource}.{WILDCARD}")
    return (key, f"{resource}.{WILDCARD}", WILDCARD)


def matches(observes: Iterable[str], key: str) -> bool:
    """Whether an integration observing `observes` receives an event keyed `key`."""
    return not frozenset(match_candidates(key)).isdisjoint(observes)


def load_catalogue(path: Path | None = None) -> EventCatalogue:
    """Load the catalogue from `path` (default ``config/events.json``; that one is cached).

    Raises `ConfigurationError` if the file is missing, is not the expected JSON, holds an
    invalid or duplicated key, or a key whose resource is not the entry's.
    """
    if path is None:
        return _load_default()
    return _load(path)


@functools.lru_cache(maxsize=1)
def _load_default() -> EventCatalogue:
    return _load(DEFAULT_CATALOGUE_PATH)


def _load(path: Path) -> EventCatalogue:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read the event catalogue {path}: {exc}") from exc
    return _parse(document, path)


def _parse(document: object, path: Path) -> EventCatalogue:
    def bad(problem: str) -> ConfigurationError:
        return ConfigurationError(f"invalid event catalogue {path}: {problem}")

    if not isinstance(document, dict) or document.get("version") != 1:
        raise bad('expected {"version": 1, "resources": [...]}')
    entries = document.get("resources")
    if not isinstance(entries, list):
        raise bad('"resources" must be an array')
    keys: set[str] = set()
    resources: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad("each resource must be an object")
        resource = entry.get("resource")
        entry_keys = entry.get("keys")
        if not isinstance(resource, str) or not is_valid_resource(resource):
            raise bad(f"invalid resource name {resource!r}")
        if resource in resources:
            raise bad(f"resource {resource!r} is listed twice")
        if not isinstance(entry_keys, list) or not entry_keys:
            raise bad(f"resource {resource!r} needs a non-empty array of keys")
        for key in entry_keys:
            if not isinstance(key, str) or not is_valid_key(key):
                raise bad(f"invalid key {key!r}: {_SYNTAX}")
            if key.partition(".")[0] != resource:
                raise bad(f"key {key!r} does not belong to resource {resource!r}")
            if key in keys:
                raise bad(f"key {key!r} is listed twice")
            keys.add(key)
        resources.add(resource)
    return EventCatalogue(keys=frozenset(keys), resources=frozenset(resources))
