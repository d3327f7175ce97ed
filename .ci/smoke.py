"""Start the README's run command on the embedded default, check it answers, open one
WebSocket as a demo staff member, then stop everything cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
PORT = 8765


def main() -> int:
    data_dir = tempfile.mkdtemp(prefix="opsite-smoke-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_", "CELERY_"))}
    env.update(OPSITE_DATA_DIR=data_dir, OPSITE_PORT=str(PORT))
    log_path = Path(data_dir) / "run.log"
    with log_path.open("wb") as log:
        run = subprocess.Popen([str(ROOT / "bin" / "run")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{PORT}"
        deadline = time.monotonic() + 240
        while True:
            if run.poll() is not None or time.monotonic() > deadline:
                print(log_path.read_text()[-4000:])
                print("smoke: FAIL, the run command never became ready")
                return 1
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        logins = re.findall(r"login (\S+) / (\S+)\s+-- staff of (\S+):", log_path.read_text())
        username, password, slug = logins[0]
        with httpx.Client(base_url=base) as client:
            client.get("/accounts/login/")
            response = client.post(
                "/accounts/login/",
                data={"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
                headers={"Referer": f"{base}/accounts/login/"},
            )
            assert response.status_code == 302, f"login failed: {response.status_code}"
            cookie = f"sessionid={client.cookies['sessionid']}"

        async def open_socket() -> dict[str, object]:
            async with websockets.connect(
                f"ws://127.0.0.1:{PORT}/ws/restaurants/{slug}/orders/",
                additional_headers={"Cookie": cookie},
                origin=base,
            ) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 10))

        hello = asyncio.run(open_socket())
        assert hello["type"] == "hello" and hello["restaurant"] == slug, hello
        print(f"smoke: ready, logged in as {username}, socket said hello at seq {hello['seq']}")
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        try:
            code = run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            print("smoke: FAIL, the run command did not stop within 30 s of SIGTERM")
            return 1
    print(f"smoke: stopped cleanly (exit {code})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
