"""Run the app under gunicorn from ``digitguard serve``.

The app — and so the signature check — is built in the master before any
worker forks: a model that does not verify stops the command before a socket
is opened. Each worker then uses a fixed number of torch threads, so that
workers do not fight over the cores.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gunicorn.config
import gunicorn.http.wsgi
from flask import Flask
from gunicorn.app.base import BaseApplication

# No server banner beyond a name (gunicorn already omits its version).
gunicorn.http.wsgi.SERVER = "digitguard"


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


@dataclass(frozen=True)
class TLSFiles:
    """The PEM certificate chain and private key gunicorn terminates TLS with."""

    certfile: Path
    keyfile: Path


def tls_context(files: TLSFiles) -> ssl.SSLContext:
    """A server context that only speaks TLS 1.2 or later, with ``files`` loaded.

    ``digitguard serve`` calls it before the model is loaded (a certificate that does not match
    its key, or an unreadable file, is a :class:`~digitguard.errors.TLSConfigError`), and
    gunicorn's ``ssl_context`` hook calls it again to build the listening context.
    """
    from digitguard.errors import TLSConfigError

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(files.certfile), keyfile=str(files.keyfile))
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"cannot use certificate {files.certfile} with key {files.keyfile}: {exc}"
        ) from None
    return context


def _ssl_context(files: TLSFiles):
    def hook(_config: Any, _default_factory: Any) -> ssl.SSLContext:
        return tls_context(files)

    return hook


def _post_fork(threads: int):
    # Database connections opened in the master are not shared: every engine starts a forked
    # child with an empty pool (digitguard.db).
    def hook(_server: Any, _worker: Any) -> None:
        import torch

        torch.set_num_threads(threads)

    return hook


def run(
    app: Flask,
    *,
    host: str,
    port: int,
    workers: int,
    timeout_s: int,
    threads: int = 1,
    torch_threads: int = 1,
    access_log: str | None = None,
    tls: TLSFiles | None = None,
) -> None:
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        # `digitguard serve` defaults to gthread (--threads 4): a client that is slow to send its
        # headers then holds one thread, not a whole worker (a sync worker waits up to `timeout`).
        # Sync workers (threads=1) answered 6-17% more requests a second (docs/benchmarks.md).
        # Slow request bodies are cut off by the app's BODY_READ_TIMEOUT_S either way.
        "worker_class": "gthread" if threads > 1 else "sync",
        "threads": threads,
        "keepalive": 5,
        "limit_request_line": 4094,
        "limit_request_fields": 50,
        "limit_request_field_size": 8190,
        "timeout": timeout_s,
        "graceful_timeout": timeout_s,
        "preload_app": True,
        "post_fork": _post_fork(torch_threads),
        "accesslog": access_log,
    }
    if "control_socket_disable" in gunicorn.config.Config().settings:  # gunicorn >= 25.1
        # Its runtime control socket (worker counts, shutdown) is not needed, and the default
        # path is one per user: replicas on one host would take it over from each other.
        options["control_socket_disable"] = True
    if tls is not None:  # `digitguard serve` has already refused a bad pair, before loading the model
        options |= {
            "certfile": str(tls.certfile),
            "keyfile": str(tls.keyfile),
            "ssl_context": _ssl_context(tls),
        }
    _Gunicorn(app, options).run()
