"""Dockyard: a trusted, cloud-native registry for container images and OCI artifacts."""

__version__ = "0.1.0"
