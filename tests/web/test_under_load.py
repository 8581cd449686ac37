"""The served app (gunicorn) under a bounded load and slow-loris bodies: no 5xx but documented 503s."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.web.test_api import drawing_png
from tests.web.test_serve import _wait_ready, free_port

REQUESTS = int(os.environ.get("DIGITGUARD_LOAD_REQUESTS", "5000"))
CONCURRENCY = 32


@pytest.fixture(scope="module")
def server(test_model_dir: Path, trusted_key, tmp_path_factory) -> str:
    port = free_port()
    env = {
        **os.environ,
        "DIGITGUARD_TRUST_DIRS": str(trusted_key.trust_dir),
        "DIGITGUARD_INSTANCE_DIR": str(tmp_path_factory.mktemp("instance")),
        "DIGITGUARD_ANONYMOUS_LIMIT": "1000000/minute",
        "DIGITGUARD_IP_LIMIT": "1000000/minute",
        "DIGITGUARD_BODY_READ_TIMEOUT_S": "1.5",
    }
    command = [
        sys.executable,
        "-m",
        "digitguard",
        "serve",
        "--model",
        str(test_model_dir),
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=30)


def post(address: str, body: bytes) -> tuple[int, dict]:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", "/api/v1/predict", body=body, headers={"Content-Type": "image/png"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_a_bounded_load_gets_no_5xx_other_than_documented_load_shedding(server: str) -> None:
    body = drawing_png()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(lambda _: post(server, body), range(REQUESTS)))
    statuses = [status for status, _ in results]
    unexpected = [
        (status, reply) for status, reply in results if status >= 500 and reply.get("error") != "overloaded"
    ]
    assert unexpected == []
    assert statuses.count(200) >= 0.95 * REQUESTS
    assert post(server, body)[0] == 200


def read_reply(sock: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def test_slow_loris_bodies_get_408_and_the_service_keeps_answering(server: str) -> None:
    host, port = server.split(":")
    head = (
        b"POST /api/v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n"
    )
    slow = [socket.create_connection((host, int(port))) for _ in range(2)]  # as many as there are workers
    try:
        for sock in slow:
            sock.sendall(head + b"\x89PNG")  # ... and then nothing more
        started = time.monotonic()
        status, _ = post(server, drawing_png())
        assert status == 200
        assert time.monotonic() - started < 10
        for sock in slow:
            sock.settimeout(10)
            reply = read_reply(sock)
            assert reply.startswith("HTTP/1.1 408"), reply[:200]
            assert '"error":"request_timeout"' in reply.replace(" ", "")
    finally:
        for sock in slow:
            sock.close()
