"""Metadata: tables (`schema`), engines and transactions (`database`), migrations."""
