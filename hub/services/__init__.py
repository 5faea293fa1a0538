"""Use cases: what the API (and the CLI) ask of the hub, each in one transaction."""
