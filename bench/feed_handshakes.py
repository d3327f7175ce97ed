"""What a board's socket costs the socket process to open and close: N staff sockets of one
restaurant opened (50 handshakes at a time, each up to its hello) and then dropped, a few
rounds, the server's own CPU time per socket read from the kernel. Side by side: the same
handshake written the textbook Channels way (``baseline_staff_asgi.py``: AuthMiddlewareStack,
database_sync_to_async, a group per socket on channels-redis) and opsite's. A reconnect storm is
this cost times the boards coming back.

    .venv/bin/python bench/feed_handshakes.py [--sockets 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psutil
from _support import Listener, bench_env, free_port, fresh_database, server, session_cookie, uvicorn


def listening_process(port: int) -> psutil.Process:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and getattr(conn.laddr, "port", None) == port and conn.pid:
            return psutil.Process(conn.pid)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def rounds(app: str, args: argparse.Namespace, cookie: str) -> tuple[list[float], list[float]]:
    """Per round: µs of server CPU per socket opened and closed, and seconds until every socket
    had its hello."""
    port = free_port()
    per_socket, opened_s = [], []
    with server(uvicorn(port, app), port=port, env=bench_env()):
        process = listening_process(port)
        for _ in range(args.rounds):
            before, started = cpu_s(process), time.monotonic()
            with Listener(f"ws://127.0.0.1:{port}", ["hs"], args.sockets, cookie):
                opened_s.append(time.monotonic() - started)  # every socket had its hello; leaving drops them
            time.sleep(2)  # the closes are handled
            per_socket.append((cpu_s(process) - before) / args.sockets * 1e6)
    return per_socket, opened_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fresh_database()
    from realtime.services import restaurant_create, staff_add

    restaurant_create(slug="hs", name="Handshakes")
    staff_add(slug="hs", username="bench-staff")  # a board's user: staff of its restaurant, no superuser
    cookie = session_cookie("bench-staff")
    print(f"{args.sockets} staff sockets of one restaurant opened and dropped, {args.rounds} rounds, one uvicorn "
          f"process on {os.cpu_count()} cores shared with the client")  # fmt: skip
    results = {
        "baseline (textbook Channels handshake)": rounds("bench.baseline_staff_asgi:application", args, cookie),
        "opsite": rounds("opsite.asgi:application", args, cookie),
    }
    for name, (values, opened) in results.items():
        print(f"  {name:40s} {statistics.median(values):6.0f} µs of server CPU per socket "
              f"(rounds: {', '.join(f'{v:.0f}' for v in values)}); all open in {statistics.median(opened):.2f} s")  # fmt: skip
    base, ours = (statistics.median(v) for v, _ in results.values())
    print(f"  ratio opsite / baseline: {ours / base:.2f}")


if __name__ == "__main__":
    main()
