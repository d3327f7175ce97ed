"""The ops dashboard socket under hostile input and lost access: bad frames get error frames,
and logout, a removed permission, deactivation or a password change close it (4403); sockets
per user are capped (4429)."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from tests.monitoring.test_dashboard import frame_of, make_user, open_ops

pytestmark = pytest.mark.django_db(transaction=True)
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's parser recurses


def _cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def test_the_ops_socket_survives_bad_frames(settings):
    settings.OPSITE_DASHBOARD_PUSH_S = 60
    user = await database_sync_to_async(make_user)("ops-frames", dashboard=True)
    ops = await open_ops(await database_sync_to_async(_cookie)(user))
    await frame_of(ops, "hello")
    for text in (DEEP, "not json", '{"type": {"a": 1}}'):
        await ops.send_to(text_data=text)
        assert (await frame_of(ops, "error"))["code"] in {"bad_json", "unknown_type"}
    await ops.send_to(text_data='{"type":"ping"}')
    assert (await frame_of(ops, "pong"))["type"] == "pong"
    await ops.disconnect()


async def _closed(communicator: Any, timeout: float = 5) -> int:
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return int(output["code"])


@pytest.mark.parametrize("change", ["logout", "permission", "deactivate", "password"])
async def test_the_ops_socket_closes_when_access_ends(change, settings):
    settings.OPSITE_DASHBOARD_PUSH_S = 60
    settings.OPSITE_FEED_ACCESS_RECHECK_S = 0.2
    user = await database_sync_to_async(make_user)(f"ops-{change}", dashboard=True)
    cookie = await database_sync_to_async(_cookie)(user)
    ops = await open_ops(cookie)
    await frame_of(ops, "hello")

    def end_access() -> None:
        from django.contrib.auth.models import Permission

        if change == "logout":
            client = Client()
            client.cookies["sessionid"] = cookie.split("=", 1)[1]
            client.post("/accounts/logout/")
        elif change == "permission":
            user.user_permissions.remove(Permission.objects.get(codename="view_dashboard"))
        elif change == "deactivate":
            user.is_active = False
            user.save()
        else:
            user.set_password("changed-password-1")
            user.save()

    await database_sync_to_async(end_access)()
    assert await _closed(ops) == 4403
    await ops.disconnect()


async def test_the_ops_socket_is_capped_per_user(settings):
    settings.OPSITE_OPS_MAX_SOCKETS_PER_USER = 2
    settings.OPSITE_DASHBOARD_PUSH_S = 60
    user = await database_sync_to_async(make_user)("ops-cap", dashboard=True)
    cookie = await database_sync_to_async(_cookie)(user)
    first, second = await open_ops(cookie), await open_ops(cookie)
    for ops in (first, second):
        await frame_of(ops, "hello")
    third = await open_ops(cookie)
    assert await _closed(third) == 4429
    await third.disconnect()
    await first.disconnect()
    fourth = await open_ops(cookie)
    assert (await frame_of(fourth, "hello"))["type"] == "hello"
    for ops in (second, fourth):
        await ops.disconnect()
