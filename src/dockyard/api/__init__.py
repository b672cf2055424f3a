"""The management REST API, compatible with Harbor's API v2.0 (`/api/v2.0`).

Same paths, query parameters, JSON field names, status codes and error body
as Harbor, so that Harbor's clients work unchanged. One module per resource
under `routes/`; conventions (errors, callers, pagination, `q`) beside it.
"""
