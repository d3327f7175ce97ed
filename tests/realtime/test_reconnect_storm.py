"""A reconnect storm at test scale: 100 boards on one socket process, a till sending orders
through another, the socket process killed with SIGKILL and started again. Every board
resumes from its last seq with nothing lost or repeated, soon after the process is back, and
their resume reads are answered by a few queries, not one per board."""

from __future__ import annotations

import asyncio
import shutil
import sys

import httpx
import pytest

from tests.conftest import ROOT, _need

sys.path.insert(0, str(ROOT / "bench"))
from storm import run_storm

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes, pytest.mark.timeout(180)]


def metric(text: str, name: str, kind: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'{name}{{kind="{kind}"}} '):
            return float(line.split()[-1])
    return 0.0


def test_a_hundred_boards_resume_after_their_process_is_killed(make_staff, start_server, needs_redis):
    # the boards are a Node.js fleet (bench/storm_boards.mjs, with the `ws` that bin/test installs)
    _need("Node.js with node_modules/ws", shutil.which("node") is not None and (ROOT / "node_modules/ws").is_dir())
    staff = make_staff()
    env = {"OPSITE_FEED_MAX_SOCKETS_PER_USER": "1000"}
    sockets = start_server(env)
    ingest = start_server(env)
    port = int(sockets.url.rsplit(":", 1)[1])
    current = {"server": sockets}

    async def kill() -> None:
        current["server"].process.kill()
        await asyncio.to_thread(current["server"].process.wait)
        await asyncio.sleep(1.0)  # down for a while, orders still arriving

    async def restart() -> None:
        current["server"] = await asyncio.to_thread(start_server, env, "/health/ready", port)

    result = asyncio.run(run_storm(
        ws_url=f"ws://127.0.0.1:{port}/ws/restaurants/{staff.restaurant.slug}/orders/", origin=sockets.url,
        cookie=staff.cookie, ingest_base=ingest.url, token=staff.token, boards=100, rate=20,
        kill=kill, restart=restart,
    ))  # fmt: skip
    print(result)
    assert result.orders >= 60 and result.till_failures == 0
    assert (result.lost, result.duplicated, result.out_of_order, result.resets) == (0, 0, 0, 0), result
    assert result.not_resumed == 0, result
    assert result.resumed_within_s <= 5.0, result

    # the restarted process answered 100 boards' resume reads with a handful of queries
    page = httpx.get(f"{current['server'].url}/metrics").text
    head_reads = metric(page, "opsite_feed_resume_reads_total", "head")
    head_queries = metric(page, "opsite_feed_resume_queries_total", "head")
    frame_reads = metric(page, "opsite_feed_resume_reads_total", "frames")
    frame_queries = metric(page, "opsite_feed_resume_queries_total", "frames")
    print(f"resume reads: head {head_reads:g} -> {head_queries:g} queries, frames {frame_reads:g} -> {frame_queries:g}")
    assert head_reads >= 100 and frame_reads >= 100, page
    assert head_queries <= head_reads / 4 and frame_queries <= frame_reads / 4, (head_queries, frame_queries)
