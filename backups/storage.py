"""Where backup files live: Django's storages API, ``STORAGES["backups"]``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.core.files.storage import Storage, storages

CHUNK = 1 << 20


def backup_storage() -> Storage:
    return storages["backups"]


def local_path(storage: Storage, name: str) -> Path | None:
    """The file's path when the storage is a local filesystem, else None."""
    try:
        return Path(storage.path(name))
    except NotImplementedError:
        return None


def stored_sha256(storage: Storage, name: str) -> tuple[str, int]:
    """Read the stored object back and hash it: what is there, not what was sent."""
    digest, size = hashlib.sha256(), 0
    with storage.open(name, "rb") as stored:
        while chunk := stored.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def storage_label(storage: Storage) -> str:
    bucket = getattr(storage, "bucket_name", None)
    if bucket:
        return f"s3://{bucket}"
    location = getattr(storage, "location", "")
    return f"file://{location}" if location else type(storage).__name__
