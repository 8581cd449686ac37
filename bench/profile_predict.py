"""Where one ``POST /api/v1/predict`` spends its time, in process, with every control on.

    python bench/profile_predict.py [--requests 1000] [--top 25]

Builds the app as ``digitguard serve`` does (API key, limits and quota counted, trail on,
metrics, headers; limits raised only so the run is not refused), sends the benchmark's canvas
PNG through Flask's test client under ``cProfile`` and prints the cost per request grouped by
area, then the functions with the most own time. Absolute times move with machine noise;
the split between areas is what this is for.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.serve_latency import drawing  # noqa: E402

AREAS = (
    ("flask_limiter", "limits (Flask-Limiter)"),
    ("/limits/", "limits (Flask-Limiter)"),
    ("digitguard/audit", "audit trail"),
    ("web/trail.py", "audit trail"),
    ("sqlalchemy", "database (SQLAlchemy)"),
    ("sqlite3", "database (SQLAlchemy)"),
    ("{method 'commit'", "database (SQLAlchemy)"),
    ("inference/preprocess", "decode + preprocess"),
    ("PIL", "decode + preprocess"),
    ("torch", "model"),
    ("inference/predictor", "model"),
    ("prometheus", "metrics"),
    ("cryptography", "audit trail"),
    ("werkzeug", "Flask/Werkzeug"),
    ("flask", "Flask/Werkzeug"),
    ("json", "JSON"),
)


def area_of(filename: str, function: str) -> str:
    where = f"{filename}:{function}"
    for needle, area in AREAS:
        if needle in where:
            return area
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--audit-sqlite-synchronous", choices=["FULL", "NORMAL"], default="FULL")
    args = parser.parse_args()
    instance = Path(tempfile.mkdtemp(prefix="digitguard-profile-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(instance / "metrics")
    (instance / "metrics").mkdir()
    import torch

    from digitguard.security.keys import Role
    from digitguard.security.store import KeyStore, connect
    from digitguard.web import create_app

    torch.set_num_threads(1)  # as each gunicorn worker does

    database_url = f"sqlite:///{instance / 'digitguard.db'}"
    token = KeyStore(connect(database_url)).create("profile", Role.PREDICT).token
    app = create_app(
        {
            "MODEL_DIR": str(REPO / "models" / "basic"),
            "DATABASE_URL": database_url,
            "SECRET_KEY_FILE": None,
            "SECRET_KEY": "p" * 48,
            "KEY_LIMIT": "1000000/minute",
            "KEY_QUOTA": "10000000/day",
            "IP_LIMIT": "1000000/minute",
            "AUDIT_SQLITE_SYNCHRONOUS": args.audit_sqlite_synchronous,
        }
    )
    client = app.test_client()
    body = drawing()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/png"}
    for _ in range(50):
        assert client.post("/api/v1/predict", data=body, headers=headers).status_code == 200
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(args.requests):
        client.post("/api/v1/predict", data=body, headers=headers)
    profiler.disable()
    wall = (time.perf_counter() - started) / args.requests
    stats = pstats.Stats(profiler)
    per_area: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        per_area[area_of(filename, function)] += own
    total = sum(per_area.values())
    print(f"{args.requests} requests, {wall * 1e3:.2f} ms each under the profiler")
    for area, own in sorted(per_area.items(), key=lambda item: -item[1]):
        print(f"  {area:<26}{own / args.requests * 1e3:8.3f} ms  {own / total:6.1%}")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
