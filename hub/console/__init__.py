"""The operator console served at /console: pages (`views`), sessions and CSRF (`sessions`).
It builds no SQL: its pages read through the store (`hub.store.pages` and the aggregates'
modules)."""

from hub.console.views import console_app

__all__ = ["console_app"]
