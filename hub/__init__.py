"""hub: an event-driven integration hub with an Elastic Path-compatible integrations API."""

__version__ = "0.1.0"
