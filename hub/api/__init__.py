"""The HTTP edge: aiohttp routes, pydantic models, auth, errors and the OpenAPI document."""
