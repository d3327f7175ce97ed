from __future__ import annotations

import hashlib

import boto3
import pytest
from django.contrib.auth.models import Permission

from backups.models import Backup
from backups.services import backup_create, backup_verify
from tests.conftest import s3_storages


@pytest.mark.django_db(transaction=True)
def test_backups_round_trip_through_s3(s3_server, settings, tmp_path, make_staff, needs_postgres):
    settings.OPSITE_BACKUP_DIR = tmp_path
    settings.STORAGES = s3_storages(s3_server)
    make_staff()
    backup = backup_create(reason="test")
    assert backup.storage == "s3://opsite-test" and backup.status == Backup.Status.SUCCEEDED
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")  # fmt: skip
    body = s3.get_object(Bucket="opsite-test", Key=f"backups/{backup.path}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == backup.sha256 and len(body) == backup.size_bytes
    assert not any((tmp_path / "partial").iterdir()), "the local staging file is removed after upload"
    assert backup_verify(backup=backup).status == Backup.Status.VERIFIED


@pytest.mark.django_db(transaction=True)
def test_admin_lists_backups_and_guards_downloads(client, backup_dir, django_user_model, needs_postgres):
    backup = backup_create(reason="test")
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_backup"))
    client.force_login(staff)
    listing = client.get("/admin/backups/backup/")
    assert listing.status_code == 200 and b"Back up now" not in listing.content  # viewing is not running
    staff.user_permissions.add(Permission.objects.get(codename="run_backup"))
    assert b"Back up now" in client.get("/admin/backups/backup/").content
    download = f"/admin/backups/backup/{backup.pk}/download/"
    assert client.get(download).status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="download_backup"))
    response = client.get(download)
    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == backup.sha256
