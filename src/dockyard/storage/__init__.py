"""Blob storage: where content lives, addressed by digest.

`BlobStorage` is the contract every backend meets; `filesystem` is the
embedded default. Metadata (which repository may read what) is never kept
here: see `dockyard.db.schema`.
"""
