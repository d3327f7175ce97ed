from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def backup_dir(tmp_path: Path, settings) -> Path:
    """Backups of this test go to a directory of its own."""
    settings.OPSITE_BACKUP_DIR = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "files")},
        },
    }
    return tmp_path
