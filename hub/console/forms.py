"""The integration form: which fields each `integration_type` shows, how a posted form becomes
the use cases' input (`IntegrationCreate` / `IntegrationUpdate`), and where each of the use
cases' problems goes back on the form.

Nothing here judges the values: a form's text is only turned into the input's shape (lines into
a list, the conditions' JSON into an object, a checkbox into a boolean), and the input models and
the use cases (`hub.services.integrations`) decide, exactly as for the API. A problem's `source`
(`data.configuration.url`, `data.observes[2]`, `data.conditions.all[0]`) names the form field it
is shown next to (`field_for`).

Secrets are write-only. A secret field is never filled in; left blank on an edit it sends the
stored secret back in its masked form, which the update use case reads as "keep the stored
value" (`IntegrationUpdate`), so a nested secret (`web_push`'s `keys.auth`) and the secret-bearing
AMQP URL keep theirs too; its "remove" box sends `null`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from deliverers.config import CONFIG_MODELS, secret_at
from hub.events import EventCatalogue, observable_keys
from hub.services.inputs import nesting_problem
from hub.store.records import IntegrationRecord

Kind = Literal["text", "url", "secret", "lines", "pairs", "number", "select", "checkbox"]


@dataclass(frozen=True, slots=True)
class ConfigField:
    """One configuration field of a type's form: `path` is its dotted path in the
    configuration (`keys.auth`)."""

    path: str
    label: str
    kind: Kind = "text"
    required: bool = False
    hint: str = ""
    choices: tuple[str, ...] = ()
    placeholder: str = ""

    def name(self, integration_type: str) -> str:
        """The form control's name: the type and the path (`web_push:keys.auth`)."""
        return f"{integration_type}:{self.path}"

    def dom_id(self, integration_type: str) -> str:
        return f"f-{integration_type}-{self.path.replace('.', '-')}"

    @property
    def secret(self) -> bool:
        return self.kind == "secret"


#: Each type's configuration fields, in the order the form shows them (`deliverers.config`
#: holds the rules; a test checks that every field of every model is here).
CONFIG_FIELDS: dict[str, tuple[ConfigField, ...]] = {
    "webhook": (
        ConfigField(
            "url",
            "URL",
            "url",
            True,
            "POSTed to; http:// or https://.",
            placeholder="https://example.com/hooks/orders",
        ),
        ConfigField("secret_key", "Secret key", "secret", hint="Sent as X-MOLTIN-SECRET-KEY."),
    ),
    "aws_sqs": (
        ConfigField(
            "url",
            "Queue URL",
            "url",
            True,
            placeholder="https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
        ),
        ConfigField("region", "Region", required=True, placeholder="eu-west-1"),
        ConfigField("aws_access_key_id", "Access key id", "secret", True),
        ConfigField("aws_secret_access_key", "Secret access key", "secret", True),
        ConfigField(
            "message_group_key",
            "Message group key",
            hint="FIFO queues: a payload path whose value is the MessageGroupId.",
            placeholder="data.id",
        ),
    ),
    "stomp": (
        ConfigField(
            "addresses",
            "Addresses",
            "lines",
            True,
            "One stomp://host:port (or stomp+ssl://) per line; the first reachable one is used.",
            placeholder="stomp://broker.internal:61613",
        ),
        ConfigField("destination", "Destination", required=True, placeholder="/queue/orders"),
        ConfigField("username", "Username"),
        ConfigField("password", "Password", "secret"),
    ),
    "amqp": (
        ConfigField(
            "url",
            "Broker URL",
            "secret",
            True,
            "amqp://user:password@host[:port][/vhost] or amqps://; stored encrypted.",
            placeholder="amqp://user:password@broker.internal/vhost",
        ),
        ConfigField("exchange", "Exchange", required=True, placeholder="orders"),
        ConfigField("routing_key", "Routing key", hint="Default: the event key."),
        ConfigField(
            "headers", "Headers", "pairs", hint="Extra message headers, one “name: value” per line."
        ),
        ConfigField(
            "declare",
            "Declare the exchange",
            "checkbox",
            hint="Declare it (durable) instead of requiring it to exist.",
        ),
        ConfigField(
            "exchange_type",
            "Exchange type",
            "select",
            choices=("topic", "direct", "fanout", "headers"),
            hint="The type a declared exchange gets.",
        ),
    ),
    "web_push": (
        ConfigField(
            "endpoint",
            "Endpoint",
            "url",
            True,
            "The push service's https:// URL from the browser's PushSubscription.",
            placeholder="https://push.example.net/send/abc",
        ),
        ConfigField("keys.p256dh", "Public key (p256dh)", required=True),
        ConfigField("keys.auth", "Authentication secret (auth)", "secret", True),
        ConfigField(
            "ttl",
            "TTL (seconds)",
            "number",
            hint="How long the push service keeps an undelivered message; default 86400.",
        ),
        ConfigField(
            "urgency", "Urgency", "select", choices=("", "very-low", "low", "normal", "high")
        ),
        ConfigField(
            "topic",
            "Topic",
            hint="A newer message with the same topic replaces an undelivered one.",
        ),
        ConfigField(
            "expirationTime",
            "Expiration time",
            "number",
            hint="As the browser gives it (ms since the epoch); kept, not acted on.",
        ),
    ),
}

#: The form's fields that are no configuration field, by the input attribute they fill.
COMMON = (
    "name", "description", "enabled", "integration_type", "observes", "conditions",
    "max_in_flight", "rate_limit", "ordering_key",
)  # fmt: skip
OTHER = "_form"
"""Where a problem that names no field of the form is shown (at the top)."""
OBSERVES_OTHER = "observes_other"
"""The free-text field for observes beyond the catalogue (custom keys, wildcards)."""


@dataclass
class FormState:
    """What the form shows: each control's value, each field's problems, and which secrets
    are stored (shown as "stored; blank keeps it")."""

    values: dict[str, str] = field(default_factory=dict)
    observes: list[str] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    stored_secrets: set[str] = field(default_factory=set)
    typed_secrets: set[str] = field(default_factory=set)
    masked_hints: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, message: str) -> None:
        self.errors.setdefault(where, []).append(message)

    @staticmethod
    def anchor(where: str) -> str:
        """The id of the place on the page where `where`'s problems are shown."""
        return "at-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in where)


@dataclass(frozen=True, slots=True)
class Picker:
    """The event catalogue as the observes picker shows it: resources and their keys."""

    groups: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, catalogue: EventCatalogue) -> Picker:
        by_resource: dict[str, list[str]] = {}
        for key in observable_keys(catalogue):  # the hub's own events (`job.failed`, …) too
            by_resource.setdefault(key.partition(".")[0], []).append(key)
        return cls(tuple((r, tuple(keys)) for r, keys in sorted(by_resource.items())))

    @property
    def size(self) -> int:
        """How many keys it offers."""
        return sum(len(keys) for _, keys in self.groups)


# --- from a form to an input -------------------------------------------------------------------


def _text(form: Mapping[str, str], name: str) -> str:
    return form.get(name, "").strip()


def _lines(raw: str) -> list[str]:
    return [line.strip() for line in raw.splitlines() if line.strip()]


def _pairs(raw: str, where: str, state: FormState) -> dict[str, str] | None:
    out: dict[str, str] = {}
    for number, line in enumerate(_lines(raw), start=1):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            state.add(where, f"line {number} is not “name: value”")
            continue
        out[name.strip()] = value.strip()
    return out


def chosen_type(form: Mapping[str, str], default: str) -> str:
    """The type the form names, or `default` when it names none of the known types (the
    input model then refuses whatever was sent)."""
    kind = _text(form, "integration_type")
    return kind or default


def observes_of(form: Mapping[str, str], observed: list[str]) -> list[str]:
    """The picked catalogue keys then the typed ones, in order, each once."""
    typed = [part.strip() for part in form.get(OBSERVES_OTHER, "").replace(",", "\n").splitlines()]
    out: list[str] = []
    for key in [*observed, *typed]:
        if key and key not in out:
            out.append(key)
    return out


def _conditions(raw: str, state: FormState) -> tuple[bool, Any]:
    """(given, value): blank is no conditions (None)."""
    if not raw.strip():
        return True, None
    try:
        value = json.loads(raw)
    except RecursionError:
        state.add("conditions", "conditions: nested too deeply to read")
        return False, None
    except ValueError as exc:
        state.add("conditions", f"conditions: not valid JSON ({exc})")
        return False, None
    problem = nesting_problem(raw.encode())
    if problem is not None:
        state.add("conditions", f"conditions: {problem}")
        return False, None
    return True, value


def _configuration(
    form: Mapping[str, str],
    kind: str,
    current: IntegrationRecord | None,
    state: FormState,
) -> dict[str, Any]:
    """The configuration a form gives for `kind`. On an edit of the same type a blank field
    is `None` (the update removes it) and a blank secret its stored masked form (it stays);
    otherwise blanks are left out (required ones are then reported missing)."""
    keep = current is not None and current.integration_type == kind
    model = CONFIG_MODELS.get(kind)
    out: dict[str, Any] = {}
    for spec in CONFIG_FIELDS.get(kind, ()):
        name = spec.name(kind)
        raw = form.get(name, "")
        value: Any
        if spec.kind == "checkbox":
            value = name in form and raw != "false"
        elif spec.kind == "lines":
            value = _lines(raw) or None
        elif spec.kind == "pairs":
            value = _pairs(raw, name, state) or None
        elif spec.secret:
            value = raw or None  # a secret is taken as typed: spaces may be part of it
            if value is not None:
                state.typed_secrets.add(name)
            if value is None and keep and current and model and f"{name}!clear" not in form:
                stored = secret_at(current.configuration, spec.path)
                if isinstance(stored, str):
                    value = model.mask_secret(spec.path, stored)  # echoed masked: kept
        else:
            value = raw.strip() or None
        if value is None and not keep:
            continue
        head, dot, rest = spec.path.partition(".")
        if dot:
            if value is not None:
                out.setdefault(head, {})[rest] = value
        else:
            out[head] = value
    return out


def form_input(
    form: Mapping[str, str],
    observed: list[str],
    current: IntegrationRecord | None,
    state: FormState,
) -> dict[str, Any] | None:
    """The `data` of an `IntegrationCreate` (no `current`) or `IntegrationUpdate`, or None when
    the form's own text cannot be read (JSON that is not JSON: in `state.errors`)."""
    kind = chosen_type(form, current.integration_type if current else "")
    data: dict[str, Any] = {"type": "integration"}
    data["name"] = _text(form, "name")  # blank: the model says it must not be empty
    data["description"] = _text(form, "description") or None
    data["enabled"] = form.get("enabled") == "true"
    if kind:
        data["integration_type"] = kind
    data["observes"] = observes_of(form, observed)
    readable, conditions = _conditions(form.get("conditions", ""), state)
    if readable:
        data["conditions"] = conditions
    for number in ("max_in_flight", "rate_limit"):
        data[number] = _text(form, number) or None  # the model reads the number
    data["ordering_key"] = _text(form, "ordering_key") or None
    if kind in CONFIG_FIELDS:
        data["configuration"] = _configuration(form, kind, current, state)
    elif current is None:
        data["configuration"] = {}
    if current is None:
        data = {k: v for k, v in data.items() if v is not None}
    return None if state.errors else data


# --- from a problem back to the form -----------------------------------------------------------


def field_for(source: str | None, kind: str) -> str:
    """The form control a problem's `source` is about (`OTHER` when none is)."""
    if not source:
        return OTHER
    path = source.removeprefix("data.").removeprefix("data")
    top = path.split(".", 1)[0].split("[", 1)[0]
    if top == "configuration":
        inner = path.removeprefix("configuration").lstrip(".")
        plain = ".".join(part.split("[", 1)[0] for part in inner.split("."))
        best = ""
        for spec in CONFIG_FIELDS.get(kind, ()):
            if (plain == spec.path or plain.startswith(spec.path + ".")) and len(spec.path) > len(
                best
            ):
                best = spec.path
        return f"{kind}:{best}"  # `kind:` alone: the type's fieldset as a whole
    if top == "type":
        return OTHER
    return top if top in COMMON else OTHER


def place_problems(problems: list[tuple[str, str | None]], kind: str, state: FormState) -> None:
    for message, source in problems:
        # The API's sentences name fields from its body (`data.configuration.url`); the form
        # has no `data`.
        state.add(field_for(source, kind), message.removeprefix("data."))


# --- from a record to the form -----------------------------------------------------------------


def _shown(value: Any, spec: ConfigField) -> str:
    if value is None:
        return ""
    if spec.kind == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if spec.kind == "pairs" and isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    if spec.kind == "checkbox":
        return "true" if value else ""
    return str(value)


def state_of(record: IntegrationRecord | None, catalogue: EventCatalogue) -> FormState:
    """The form as it first shows: a new integration's defaults, or `record`'s values
    (secrets only as "stored")."""
    state = FormState()
    if record is None:
        state.values.update(integration_type="webhook", enabled="true")
        return state
    kind = record.integration_type
    state.values.update(
        name=record.name,
        description=record.description or "",
        enabled="true" if record.enabled else "",
        integration_type=kind,
        conditions=json.dumps(record.conditions, indent=2) if record.conditions else "",
        max_in_flight="" if record.max_in_flight is None else str(record.max_in_flight),
        rate_limit="" if record.rate_limit is None else f"{record.rate_limit:g}",
        ordering_key=record.ordering_key or "",
    )
    state.observes = [key for key in record.observes if key in catalogue]
    state.values[OBSERVES_OTHER] = ", ".join(k for k in record.observes if k not in catalogue)
    model = CONFIG_MODELS[kind]
    for spec in CONFIG_FIELDS.get(kind, ()):
        stored = secret_at(record.configuration, spec.path)
        if spec.secret:
            if isinstance(stored, str):
                state.stored_secrets.add(spec.name(kind))
                if kind == "amqp":  # the URL's masked form hides only its password
                    state.masked_hints[spec.name(kind)] = model.mask_secret(spec.path, stored)
            continue
        state.values[spec.name(kind)] = _shown(stored, spec)
    return state


def resubmitted(
    form: Mapping[str, str], observed: list[str], record: IntegrationRecord | None
) -> FormState:
    """The form as it was posted (every value but the secrets), to show again with problems."""
    state = FormState()
    state.values = {k: v for k, v in form.items() if k in COMMON or k == OBSERVES_OTHER}
    for kind, specs in CONFIG_FIELDS.items():
        for spec in specs:
            name = spec.name(kind)
            if spec.secret:
                if form.get(name):
                    state.typed_secrets.add(name)
                continue
            if name in form:
                state.values[name] = form[name]
    state.observes = list(observed)
    if record is not None:
        stored = state_of(record, EventCatalogue(frozenset(), frozenset()))
        state.stored_secrets = stored.stored_secrets
        state.masked_hints = stored.masked_hints
    return state
