"""What each control costs one ``POST /api/v1/predict``, in process, by switching it off in turn.

    python bench/ablate_predict.py [--requests 200] [--repeats 3]

Builds the app as ``digitguard serve`` does (API key, limits and quota counted, trail on with
``synchronous=FULL`` and ``NORMAL``, metrics, headers; limits raised only so the run is not
refused) and the minimal baseline of ``bench/serve_latency.py``, then times the benchmark's
canvas PNG through Flask's test client: the baseline, everything on, and everything on but one
control (the limits; the trail's append). Variants are interleaved ``--repeats`` times and the
fastest round of each is kept, so machine noise hits all of them alike; the differences
between variants are what this is for, not the absolute times. No HTTP: gunicorn's share is
the same for both servers and is measured by ``bench/serve_latency.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.serve_latency import drawing  # noqa: E402

RAISED_LIMITS = {"KEY_LIMIT": "1000000/minute", "KEY_QUOTA": "10000000/day", "IP_LIMIT": "1000000/minute"}


def best_ms(send: Callable[[], int], requests: int, rounds: int = 5) -> float:
    """The fastest of ``rounds`` rounds, in ms per request; every answer must be a 200."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(requests):
            if send() != 200:
                raise SystemExit("a benchmark request was refused")
        best = min(best, (time.perf_counter() - started) / requests * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    instance = Path(tempfile.mkdtemp(prefix="digitguard-ablate-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(instance / "metrics")
    (instance / "metrics").mkdir()
    os.environ["DIGITGUARD_MODEL_DIR"] = str(REPO / "models" / "basic")
    import torch

    from bench.minimal_server import create_app as minimal_app
    from digitguard.security.keys import Role
    from digitguard.security.store import KeyStore, connect
    from digitguard.web import create_app

    torch.set_num_threads(1)  # as each gunicorn worker does
    body = drawing()

    def ours(synchronous: str):
        url = f"sqlite:///{instance / f'trail-{synchronous}.db'}"
        token = KeyStore(connect(url)).create("ablate", Role.PREDICT).token
        app = create_app(
            {
                "MODEL_DIR": str(REPO / "models" / "basic"),
                "DATABASE_URL": url,
                "SECRET_KEY": "a" * 48,
                "AUDIT_SQLITE_SYNCHRONOUS": synchronous,
                **RAISED_LIMITS,
            }
        )
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/png"}
        return app, lambda: client.post("/api/v1/predict", data=body, headers=headers).status_code

    base = minimal_app().test_client()
    send_base = lambda: base.post("/predict", data=body, content_type="image/png").status_code  # noqa: E731
    _full_app, send_full = ours("FULL")
    normal_app, send_normal = ours("NORMAL")
    limiter, trail = normal_app.extensions["digitguard.limiter"], normal_app.extensions["digitguard.trail"]
    append = trail.append

    def without_limits() -> int:
        limiter.enabled = False
        try:
            return send_normal()
        finally:
            limiter.enabled = True

    def without_trail_append() -> int:
        trail.append = lambda *_args, **_kwargs: None
        try:
            return send_normal()
        finally:
            trail.append = append

    from digitguard.web import EXTENSION

    predictor = normal_app.extensions[EXTENSION]
    detector = predictor.detector

    def without_detector() -> int:
        object.__setattr__(predictor, "detector", None)
        try:
            return send_normal()
        finally:
            object.__setattr__(predictor, "detector", detector)

    variants: dict[str, Callable[[], int]] = {
        "minimal baseline": send_base,
        "every control, trail FULL": send_full,
        "every control, trail NORMAL": send_normal,
        "NORMAL without the limits": without_limits,
        "NORMAL without the trail append": without_trail_append,
        "NORMAL without the detector": without_detector,
    }
    for send in variants.values():
        best_ms(send, 30, rounds=1)  # warm-up
    results: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeats):
        for name, send in variants.items():
            results[name].append(best_ms(send, args.requests))
    baseline = min(results["minimal baseline"])
    print(f"{args.requests} requests a round, {args.repeats} interleaved repeats, fastest round kept")
    print(f"{'variant':<34}{'ms/request':>12}{'vs baseline':>13}")
    for name, times in results.items():
        print(f"{name:<34}{min(times):>12.3f}{min(times) / baseline:>12.2f}x")


if __name__ == "__main__":
    main()
