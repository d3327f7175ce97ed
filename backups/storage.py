"""Where backup files live: Django's storages API, ``STORAGES["backups"]``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from django.conf import settings
from django.core.files.storage import Storage, storages

from common.resilience import BreakerPolicy, call_through

CHUNK = 1 << 20
T = TypeVar("T")
STORE_BREAKER = "backup_storage"  # the circuit of a remote (S3) store, shared by uploads and checks


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


def is_remote(storage: Storage) -> bool:
    return bool(getattr(storage, "bucket_name", None))


def remote_call(storage: Storage, call: Callable[[], T]) -> T:
    """A call to the store, through its circuit breaker when the store is remote: after
    ``OPSITE_DEPENDENCY_FAILURES`` failures in a row it fails at once for
    ``OPSITE_DEPENDENCY_RESET_S`` instead of waiting on a store that is down."""
    if not is_remote(storage):
        return call()
    policy = BreakerPolicy(settings.OPSITE_DEPENDENCY_FAILURES, settings.OPSITE_DEPENDENCY_RESET_S)
    return call_through(STORE_BREAKER, call, breaker=policy)


class HashingWriter:
    """The compressed bytes on their way to disk: counted and hashed as they pass."""

    def __init__(self, target: BinaryIO) -> None:
        self.target, self.digest, self.size = target, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()
