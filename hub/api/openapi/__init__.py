"""The OpenAPI 3.1 description of the API (`document`), built from the pydantic models and the
table of operations (`operations`, `parameters`, `examples`), and its HTML page (`docs_page`)."""

from hub.api.openapi.document import build_openapi, openapi_routes

__all__ = ["build_openapi", "openapi_routes"]
