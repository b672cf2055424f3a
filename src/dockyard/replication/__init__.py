"""Remote registries: endpoints, their credentials, and the OCI client that
talks to them (used by proxy-cache projects and by replication)."""
