"""The operator console served at /console: pages (`views`), sessions and CSRF (`sessions`),
and the reads only its pages need (`queries`)."""

from hub.console.views import console_app

__all__ = ["console_app"]
