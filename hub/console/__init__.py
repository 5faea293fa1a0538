"""The operator console served at /console (see `hub.console.views`)."""
