"""The opsite image's PostgreSQL client tools refuse a server of a newer major version (pg_dump
aborts on the mismatch; pg_basebackup too): the compose file's server must not be newer."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_the_compose_server_is_not_newer_than_the_image_client_tools():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    compose = (ROOT / "deploy" / "docker-compose.prod.yml").read_text()
    client = re.search(r"postgresql-client-(\d+)", dockerfile)
    server = re.search(r"image: postgres:(\d+)\.", compose)
    assert client is not None and server is not None
    assert int(server.group(1)) <= int(client.group(1)), (
        f"postgres {server.group(1)} in compose, client tools {client.group(1)} in the image"
    )
