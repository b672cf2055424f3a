"""The OCI Distribution API (Docker Registry HTTP API v2): Dockyard's data plane.

Pure rules (digests, names, media types) live in `digest`, `reference` and
`mediatypes`; services over storage and the database in `blobs`, `uploads`,
`manifests` and `tags`; HTTP in `routes`. Errors raised anywhere here are the
`RegistryError` subclasses from `errors`, rendered by one handler.
"""
