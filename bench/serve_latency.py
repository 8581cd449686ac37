"""Latency and throughput of POST /api/v1/predict under gunicorn, against a minimal Flask baseline.

    python bench/serve_latency.py [--requests 2000] [--clients 2] [--workers 2]

Starts both servers (gunicorn, 2 workers each, 1 torch thread per worker) on loopback — ours as
`digitguard serve` runs it by default (gthread workers, 4 threads; ``--threads 1``: sync), with
every control on (API-key authentication, rate limits and quota, CSRF rules, concurrency slots,
inference budget, security headers, metrics; only the limits' values are raised) — sends
the same canvas-sized PNG drawing to each from persistent connections, alternating the two
in rounds so machine noise hits both, and prints p50/p99 latency and requests/s side by side.
Targets (2-core machine): digitguard p50 <= 5 ms, throughput >= 70% of the baseline.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]


def drawing() -> bytes:
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.line([(70, 50), (210, 50), (120, 240)], fill=(0, 0, 0, 255), width=20, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server on port {port} did not start: {' '.join(command)}")


def load(
    port: int, path: str, body: bytes, requests: int, clients: int, token: str = ""
) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    headers = {"Content-Type": "image/png", **({"Authorization": f"Bearer {token}"} if token else {})}

    def client(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(count):
            start_time = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                print(f"{path}: HTTP {response.status}", file=sys.stderr)
                break
            mine.append(time.perf_counter() - start_time)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, len(latencies) / (time.perf_counter() - started)


def serve_default_threads() -> int:
    """``digitguard serve``'s own default, so that the benchmark measures what is served."""
    from digitguard.cli import serve

    return next(int(option.default) for option in serve.params if option.name == "threads")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=serve_default_threads(),
        help="serve --threads (default: serve's own; 1: sync workers, >1: gthread workers)",
    )
    parser.add_argument(
        "--audit-sqlite-synchronous",
        choices=["FULL", "NORMAL"],
        default="FULL",
        help="trail durability: FULL fsyncs every record (default); NORMAL survives process crashes",
    )
    parser.add_argument(
        "--detector",
        choices=["auto", "off"],
        default="auto",
        help="ADVERSARIAL_DETECTOR of the served model (auto: on when the model is calibrated, as served)",
    )
    args = parser.parse_args()
    instance = tempfile.mkdtemp(prefix="digitguard-bench-")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DIGITGUARD_MODEL_DIR": str(REPO / "models" / "basic"),
        "DIGITGUARD_INSTANCE_DIR": instance,
        # Every control stays on; the limits are only set high enough for a benchmark's volume.
        "DIGITGUARD_KEY_LIMIT": "1000000/minute",
        "DIGITGUARD_KEY_QUOTA": "10000000/day",
        "DIGITGUARD_IP_LIMIT": "1000000/minute",
        "DIGITGUARD_AUDIT_SQLITE_SYNCHRONOUS": args.audit_sqlite_synchronous,
        "DIGITGUARD_ADVERSARIAL_DETECTOR": args.detector,
    }
    ours_port, base_port = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    token = subprocess.run(
        [str(bin_dir / "digitguard"), "keys", "create", "--role", "predict", "--name", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = start(
        [
            str(bin_dir / "digitguard"),
            "serve",
            "--port",
            str(ours_port),
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
        ],
        ours_port,
        env,
    )
    base = start(
        [
            str(bin_dir / "gunicorn"),
            "-w",
            str(args.workers),
            "-b",
            f"127.0.0.1:{base_port}",
            "bench.minimal_server:create_app()",
        ],
        base_port,
        env,
    )
    body = drawing()
    try:
        for port, path in ((ours_port, "/api/v1/predict"), (base_port, "/predict")):
            load(port, path, body, 100, args.clients, token)  # warm-up
        results: dict[str, tuple[list[float], list[float]]] = {"digitguard": ([], []), "minimal": ([], [])}
        for _ in range(args.rounds):
            for name, port, path in (
                ("digitguard", ours_port, "/api/v1/predict"),
                ("minimal", base_port, "/predict"),
            ):
                latencies, rate = load(port, path, body, args.requests // args.rounds, args.clients, token)
                results[name][0].extend(latencies)
                results[name][1].append(rate)
    finally:
        for process in (ours, base):
            process.terminate()
            process.wait(timeout=30)
    print(
        f"{args.requests} requests per server, {args.clients} clients, gunicorn {args.workers} "
        f"{'sync workers' if args.threads == 1 else f'gthread workers x {args.threads} threads'}, "
        f"audit trail synchronous={args.audit_sqlite_synchronous}, adversarial detector {args.detector}"
    )
    print(f"{'server':<12}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    summary = {}
    for name, (latencies, rates) in results.items():
        p50, p99, rate = (
            percentile(latencies, 50) * 1e3,
            percentile(latencies, 99) * 1e3,
            statistics.median(rates),
        )
        summary[name] = (p50, rate)
        print(f"{name:<12}{p50:>10.2f}{p99:>10.2f}{rate:>10.1f}")
    ratio = summary["digitguard"][1] / summary["minimal"][1]
    print(
        f"throughput ratio digitguard/minimal {ratio:.3f} (target >= 0.70); digitguard p50 "
        f"{summary['digitguard'][0]:.2f} ms (target <= 5 ms)"
    )


if __name__ == "__main__":
    main()
