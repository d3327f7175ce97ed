"""HTTP throughput of the two layouts: everything through Django's ASGI handler on uvicorn
(the embedded default) against WSGI workers on gunicorn (the production layout, with
sockets on uvicorn behind a /ws/ split at the proxy; threaded, as gunicorn.conf.py sets, and
sync for comparison). One process each, same view, wrk -c8.

    .venv/bin/python bench/http_layouts.py [--seconds 10] [--path /health/live]
Needs wrk (Debian package wrk).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys

from _support import bench_env, free_port, fresh_database, gunicorn, server, uvicorn


def wrk(url: str, seconds: int, connections: int, core: int | None = None) -> float:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url]
    if core is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    if re.search(r"Non-2xx", output):
        raise AssertionError(f"non-2xx answers:\n{output}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--path", default="/health/live")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    fresh_database()
    env = bench_env()
    layouts = {
        "uvicorn, Django ASGI handler (embedded layout)": uvicorn,
        "gunicorn, WSGI, 4 threads (production layout)": gunicorn,
        "gunicorn, WSGI, sync worker": lambda port: [*gunicorn(port), "--worker-class", "sync"],
    }
    results = {}
    for name, command_for in layouts.items():
        port = free_port()
        with server(command_for(port), port=port, env=env) as url:
            wrk(url + args.path, 2, args.connections)  # warm up
            results[name] = wrk(url + args.path, args.seconds, args.connections)
    asgi, wsgi, _sync = results.values()
    print(f"GET {args.path}, one process, wrk -c{args.connections} -d{args.seconds}s (Postgres + Redis settings)")
    for name, rate in results.items():
        print(f"  {name:50s} {rate:8.0f} req/s")
    print(f"  WSGI / ASGI: {wsgi / asgi:.2f}x")


if __name__ == "__main__":
    main()
