"""Many restaurants at once: N sockets over M restaurants, orders at a steady rate through
the HTTP ingest API; ingest -> receive latency, lost events and cross-tenant leaks.

Runs the production layout (gunicorn WSGI workers for HTTP, uvicorn for sockets, one process
and --ws-workers) and, side by side, everything on the one uvicorn process. The sockets are
held by the benches' Node.js listener (feed_listener.mjs) and the orders posted by its Node.js
till (order_sender.mjs), after a warm-up that is not measured (fresh processes' first requests);
the CPU share of each client is printed.

    .venv/bin/python bench/feed_tenants.py [--sockets 1000] [--restaurants 50] [--rate 100] [--seconds 20]
                                           [--warmup 3]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from _support import (
    Listener,
    OrderSender,
    bench_env,
    free_port,
    fresh_database,
    gunicorn,
    percentile,
    server,
    session_cookie,
    uvicorn,
)


def scenario(args: argparse.Namespace, ws_port: int, http_url: str, tenants: list[tuple[str, str]],
             cookie: str) -> dict[str, Any]:  # fmt: skip
    slugs = [slug for slug, _ in tenants]
    per_tenant = [len(range(i, args.sockets, len(slugs))) for i in range(len(slugs))]  # round-robin
    measured = round(args.rate * args.seconds)
    expected = sum(per_tenant[n % len(tenants)] for n in range(measured))
    with Listener(f"ws://127.0.0.1:{ws_port}", slugs, args.sockets, cookie) as listener:
        sent = OrderSender(http_url).send(tenants, rate=args.rate, seconds=args.seconds, warmup_s=args.warmup)
        result = listener.results(expected=expected)
    latencies = [ms for _, ms in result["samples"]]
    return {
        "achieved_rate": sent["achieved_rate"],
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "http_p99_ms": percentile(sent["http_ms"], 99),
        "lost": expected - len(latencies),
        "leaks": result["cross_tenant"],
        "statuses": sent["statuses"],
        "client_share": result["client_share"],
        "sender_share": sent["client_share"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--restaurants", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of orders first, not measured")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--ws-workers", type=int, default=2, help="uvicorn workers of the scaled-out layout")
    args = parser.parse_args()
    fresh_database()
    from realtime.services import restaurant_create

    tenants = []
    for i in range(args.restaurants):
        restaurant, token = restaurant_create(slug=f"t{i:03d}", name=f"Tenant {i}")
        tenants.append((restaurant.slug, token))
    cookie = session_cookie("bench-admin")
    env = bench_env()
    print(
        f"{args.sockets} sockets over {args.restaurants} restaurants, {args.rate:.0f} orders/s for {args.seconds:.0f} s"
    )
    results = {}
    ws_port = free_port()
    with server(uvicorn(ws_port, socket_tier=False), port=ws_port, env=env) as ws_url:
        results["one uvicorn process (HTTP + sockets)"] = scenario(args, ws_port, ws_url, tenants, cookie)
    ws_port, http_port = free_port(), free_port()
    with (
        server(uvicorn(ws_port), port=ws_port, env=env),
        server(gunicorn(http_port, workers=args.gunicorn_workers), port=http_port, env=env) as http_url,
    ):
        name = f"gunicorn x{args.gunicorn_workers} (HTTP) + uvicorn (sockets)"
        results[name] = scenario(args, ws_port, http_url, tenants, cookie)
    if args.ws_workers > 1:
        ws_port, http_port = free_port(), free_port()
        with (
            server(uvicorn(ws_port, workers=args.ws_workers), port=ws_port, env=env),
            server(gunicorn(http_port, workers=args.gunicorn_workers), port=http_port, env=env) as http_url,
        ):
            name = f"gunicorn x{args.gunicorn_workers} (HTTP) + uvicorn x{args.ws_workers} (sockets)"
            results[name] = scenario(args, ws_port, http_url, tenants, cookie)
    for name, r in results.items():
        print(f"  {name:52s} sent {r['achieved_rate']:6.1f}/s  p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
              f"lost {r['lost']}  cross-tenant {r['leaks']}  HTTP {r['statuses']} p99 {r['http_p99_ms']:.1f} ms  "
              f"(listener {r['client_share']:.0%} of a core, the till {r['sender_share']:.0%})")  # fmt: skip
    print(f"  {os.cpu_count()} cores, shared by the servers and the clients")
    print("  target: p99 <= 25 ms, 0 lost, 0 cross-tenant")


if __name__ == "__main__":
    main()
