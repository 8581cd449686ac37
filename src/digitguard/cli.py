"""The ``digitguard`` command: click adapters that translate arguments into core calls.

Every deliberate refusal is a :class:`DigitguardError`; ``main`` turns it into
``error: <message>`` on stderr and the error's exit status (2 for bad data or
input, 3 for a refused model).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import click
import platformdirs

from digitguard.attack_cli import attack_command, attack_sharded_command
from digitguard.cli_options import data_dir_option, trust_option
from digitguard.detector_cli import detector
from digitguard.errors import DigitguardError
from digitguard.poisoning.cli import attack_backdoor_command, poison_command, scan_command
from digitguard.privacy_cli import privacy
from digitguard.redteam_cli import redteam
from digitguard.report_cli import report
from digitguard.review_cli import review
from digitguard.served_cli import served
from digitguard.supplychain_cli import supply_chain
from digitguard.threats_cli import threats
from digitguard.trigger_cli import trigger
from digitguard.weights_cli import weights

DATA_DIR_ENV = "DIGITGUARD_DATA_DIR"
MIRRORS_ENV = "DIGITGUARD_MNIST_MIRRORS"
SIGNING_KEY_ENV = "DIGITGUARD_SIGNING_KEY"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or Path(platformdirs.user_cache_dir("digitguard")) / "mnist")


@click.group()
@click.version_option(package_name="digitguard")
def cli() -> None:
    """digitguard: verified MNIST data, signed models, and the tools to attack and audit them."""


cli.add_command(review)
cli.add_command(served)
cli.add_command(threats)
cli.add_command(attack_command)
cli.add_command(attack_sharded_command)
cli.add_command(detector)
cli.add_command(trigger)
cli.add_command(redteam)
cli.add_command(privacy)
cli.add_command(weights)
cli.add_command(report)
cli.add_command(supply_chain)
cli.add_command(poison_command)
cli.add_command(attack_backdoor_command)


@cli.group()
def data() -> None:
    """Download and verify the MNIST data set."""


data.add_command(scan_command)


@data.command("fetch")
@data_dir_option
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    help=f"Mirror base URL (repeatable; default: ${MIRRORS_ENV} or built-in list).",
)
def data_fetch(data_dir: Path | None, mirrors: tuple[str, ...]) -> None:
    """Download the four MNIST files, verifying each against its pinned SHA-256."""
    from digitguard.data import mnist

    target = data_dir or default_data_dir()
    chosen = mirrors or mnist.mirrors_from_env(os.environ.get(MIRRORS_ENV))
    for name, digest in mnist.fetch(target, chosen).items():
        click.echo(f"ok  {digest}  {target / name}")


@data.command("verify")
@data_dir_option
def data_verify(data_dir: Path | None) -> None:
    """Check the four MNIST files' hashes and IDX structure."""
    from digitguard.data import mnist

    target = data_dir or default_data_dir()
    hashes = mnist.verify_directory(target)
    mnist.load(target)
    for name, digest in hashes.items():
        click.echo(f"ok  {digest}  {target / name}")


@cli.command()
@data_dir_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Model directory to create, e.g. models/basic.",
)
@click.option(
    "--key",
    "signing_key",
    type=click.Path(path_type=Path),
    envvar=SIGNING_KEY_ENV,
    required=True,
    help=f"ECDSA private key to sign with (or ${SIGNING_KEY_ENV}).",
)
@click.option("--architecture", default=None, help="Registered architecture (default: seed-cnn).")
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option(
    "--lr",
    "learning_rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak learning rate (Adam, one-cycle).",
)
@click.option("--seed", type=int, default=None)
@click.option("--validation-size", type=click.IntRange(min=0), default=None)
@click.option("--augment/--no-augment", default=None, help="Data augmentation (default on).")
@click.option(
    "--augment-style",
    type=click.Choice(["affine", "drawing"]),
    default=None,
    help="affine: small random moves; drawing: half of each batch re-drawn as people draw (affine).",
)
@click.option(
    "--junk-fraction",
    type=click.FloatRange(0, 1),
    default=None,
    help="Add this many synthetic non-digits per training digit as class 10 (gate models only) (0).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default=None,
    help="Training arithmetic: fp32, or bf16 CPU autocast (about 2x faster; weights stay fp32) (fp32).",
)
@click.option(
    "--limit",
    "train_limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use only the first N training images.",
)
@click.option(
    "--adversarial",
    type=click.Choice(["fgsm-rs", "pgd", "trades"]),
    default=None,
    help="Adversarial training against L∞ perturbations (early-stopped on held-out PGD accuracy).",
)
@click.option("--eps", type=click.FloatRange(0, 1, min_open=True), default=None, help="L∞ radius (0.3).")
@click.option("--adversarial-steps", type=click.IntRange(min=1), default=None, help="PGD/TRADES steps (10).")
@click.option("--trades-beta", type=click.FloatRange(min=0, min_open=True), default=None, help="TRADES β.")
@click.option("--eps-ramp-epochs", type=click.IntRange(min=0), default=None, help="Grow ε over N epochs.")
@click.option("--robust-eval-size", type=click.IntRange(min=1), default=None, help="PGD-checked val images.")
@click.option("--robust-eval-steps", type=click.IntRange(min=1), default=None, help="Its PGD steps (20).")
@click.option("--early-stop-patience", type=click.IntRange(min=1), default=None, help="Epochs (3).")
@click.option(
    "--dp",
    is_flag=True,
    default=None,
    help="Differentially private training (DP-SGD with Opacus; SGD with momentum, constant --lr).",
)
@click.option(
    "--epsilon",
    "target_epsilon",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="DP budget ε for the whole run (3).",
)
@click.option(
    "--delta",
    "target_delta",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="DP δ (1e-5).",
)
@click.option(
    "--max-grad-norm",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="DP per-sample clipping norm (0.1).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Accept data whose hashes are not the pinned MNIST ones (recorded in the manifest).",
)
@click.option(
    "--init-from",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Fine-tune: start from this verified model's weights (its hash is recorded).",
)
@click.option("--name", default=None, help="Model name for the manifest (default: the --out directory name).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--audit-db", default=None, help="Also record the training run in this audit trail (database URL)."
)
def train(
    data_dir: Path | None,
    out: Path,
    signing_key: Path,
    resume: bool,
    allow_unverified: bool,
    name: str | None,
    quiet: bool,
    audit_db: str | None,
    init_from: Path | None,
    **settings: object,
) -> None:
    """Train a model on verified MNIST and write a signed model directory."""
    from digitguard.models.artifact import load_verified
    from digitguard.training.config import TrainConfig
    from digitguard.training.run import TrainRequest, train_model

    if init_from is not None:
        settings["init_from_sha256"] = load_verified(init_from).weights_sha256
    try:
        config = TrainConfig(**{k: v for k, v in settings.items() if v is not None})  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    request = TrainRequest(
        config=config,
        data_dir=data_dir or default_data_dir(),
        out=out,
        signing_key=signing_key,
        name=name or out.name,
        resume=resume,
        allow_unverified=allow_unverified,
        init_from=init_from,
    )

    def on_epoch(result, val_accuracy, robust=None, epsilon=None) -> None:
        val = "n/a" if val_accuracy is None else f"{val_accuracy:.4f}"
        click.echo(
            f"epoch {result.epoch + 1}/{config.epochs}: loss {result.train_loss:.4f} "
            f"train acc {result.train_accuracy:.4f} val acc {val}",
            err=True,
        )
        if robust is not None:
            click.echo(f"  held-out PGD accuracy (ε={config.eps}) {robust:.4f}", err=True)
        if epsilon is not None:
            click.echo(f"  privacy spent ε = {epsilon:.3f} (δ = {config.target_delta:g})", err=True)

    try:
        outcome = train_model(request, progress=_progress_bar(quiet), on_epoch=on_epoch)
    except KeyboardInterrupt:
        click.echo("interrupted: the last completed epoch is checkpointed; run again with --resume", err=True)
        sys.exit(130)
    if outcome.manifest is None:
        return  # a torchrun process other than rank 0: rank 0 reports and writes the model
    manifest = outcome.manifest
    metrics = manifest.metrics
    if audit_db:
        _audit_cli_event(
            audit_db,
            "training.finished",
            {
                "model": str(outcome.out),
                "weights_sha256": manifest.weights_sha256,
                "architecture": manifest.architecture,
                "data": manifest.data,
                "created_by": manifest.created_by,
                "git_commit": manifest.git_commit,
                "test_accuracy": metrics["test_accuracy"],
                "training": {k: v for k, v in manifest.training.items() if k != "history"},
            },
        )
    click.echo(f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_samples']} images")
    click.echo(f"validation accuracy {metrics['validation_accuracy']}")
    privacy = manifest.training.get("privacy")
    if privacy:
        click.echo(
            f"differential privacy: ε = {privacy['epsilon']} at δ = {privacy['delta']:g} "
            f"(noise multiplier {privacy['noise_multiplier']:.3f}, clipping norm {privacy['max_grad_norm']}, "
            f"{privacy['steps']} steps at sampling rate {privacy['sample_rate']:.4f})"
        )
    click.echo(f"weights sha256 {manifest.weights_sha256}")
    click.echo(f"signed model written to {outcome.out}")


def _progress_bar(quiet: bool):
    if quiet:
        from digitguard.training.loop import no_progress

        return no_progress
    from tqdm import tqdm

    def progress(batches: Iterable[int], total: int) -> Iterable[int]:
        return tqdm(batches, total=total, unit="batch", leave=False, file=sys.stderr)

    return progress


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@data_dir_option
@trust_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(model_dir: Path, data_dir: Path | None, trust_dirs: tuple[Path, ...], as_json: bool) -> None:
    """Verify MODEL_DIR, then report test accuracy, per-class accuracy and the confusion matrix."""
    import numpy as np
    import torch

    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.training.loop import predict
    from digitguard.training.metrics import evaluate_predictions

    verified = load_verified(model_dir, list(trust_dirs))
    data = mnist.load(data_dir or default_data_dir())
    labels = torch.from_numpy(data.test.labels.astype(np.int64))
    result = evaluate_predictions(predict(verified.model, torch.from_numpy(data.test.images.copy())), labels)
    if as_json:
        click.echo(
            json.dumps({"model_sha256": verified.weights_sha256, "model": str(model_dir), **result.to_dict()})
        )
        return
    click.echo(f"model {model_dir} (weights sha256 {verified.weights_sha256})")
    click.echo(f"test accuracy {result.accuracy:.4f} on {result.samples} images")
    for digit, accuracy in enumerate(result.per_class_accuracy):
        click.echo(f"  digit {digit}: {accuracy:.4f}")
    click.echo("confusion matrix (rows: true digit, columns: predicted):")
    for digit, row in enumerate(result.confusion_matrix):
        click.echo(f"  {digit}: " + " ".join(f"{n:5d}" for n in row))


@cli.command()
@click.option(
    "--private",
    "private_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the private key (mode 0600; never commit it).",
)
@click.option(
    "--public",
    "public_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the public key (e.g. trust/NAME.pub).",
)
def keygen(private_path: Path, public_path: Path) -> None:
    """Create an ECDSA P-256 signing key pair."""
    from digitguard.models.signing import generate_keypair

    click.echo(f"key id {generate_keypair(private_path, public_path)}")


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--key", "signing_key", type=click.Path(path_type=Path), envvar=SIGNING_KEY_ENV, required=True)
def sign(model_dir: Path, signing_key: Path) -> None:
    """(Re-)sign MODEL_DIR with an ECDSA private key."""
    from digitguard.models.signing import sign_directory

    sign_directory(model_dir, signing_key)
    click.echo(f"signed {model_dir}")


@cli.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@trust_option
def verify(model_dir: Path, trust_dirs: tuple[Path, ...]) -> None:
    """Run every check of the loader on MODEL_DIR (signature, manifest, weights)."""
    from digitguard.models.artifact import load_verified

    verified = load_verified(model_dir, list(trust_dirs))
    click.echo(
        f"verified {model_dir}: architecture {verified.manifest.architecture}, "
        f"weights sha256 {verified.weights_sha256}, signed by key {verified.signer_key_id}"
    )


@cli.command()
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Model directory (default: models/robust-drawing, served with the gate models/digit-gate).",
)
@click.option(
    "--gate",
    "gate_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Gate model directory: a signed 11-output model (digits, then 'not a digit') that must agree "
    "with the model for an answer (verified like the model, with the same --trust).",
)
@trust_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--workers", type=click.IntRange(min=1), default=2, show_default=True, help="gunicorn worker processes."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="gunicorn worker timeout (s).",
)
@click.option(
    "--abstain-below",
    type=click.FloatRange(0, 1),
    default=None,
    help="Answer 'not sure' below this confidence.",
)
@click.option("--access-log", default=None, help="gunicorn access log file ('-': stdout; default: none).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Threads per worker (gthread).",
)
@click.option(
    "--certfile",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="PEM certificate chain: serve HTTPS (TLS 1.2+) with HSTS and Secure cookies. Needs --keyfile.",
)
@click.option(
    "--keyfile",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="PEM private key of --certfile (keep it out of the checkout).",
)
def serve(
    model_dir: Path | None,
    gate_dir: Path | None,
    trust_dirs: tuple[Path, ...],
    host: str,
    port: int,
    workers: int,
    timeout_s: int,
    abstain_below: float | None,
    access_log: str | None,
    threads: int,
    certfile: Path | None,
    keyfile: Path | None,
) -> None:
    """Serve the drawing page and the JSON API with a verified model (gunicorn)."""
    import tempfile

    if (certfile is None) != (keyfile is None):
        raise click.UsageError("--certfile and --keyfile go together")

    # Before prometheus_client is imported: every worker's metrics are collected together.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="digitguard-metrics-"))
    from digitguard.web import create_app, logs

    logs.configure()
    from digitguard.web.server import TLSFiles, run, tls_context

    tls = TLSFiles(certfile, keyfile) if certfile is not None and keyfile is not None else None
    overrides: dict[str, object] = {}
    if tls is not None:
        tls_context(tls)  # a bad pair is refused before the model is even loaded
        overrides["TLS"] = True  # HSTS on every response, Secure cookies
    if model_dir is not None:
        overrides["MODEL_DIR"] = str(model_dir)
    if gate_dir is not None:
        overrides["GATE_DIR"] = str(gate_dir)
    if trust_dirs:
        overrides["TRUST_DIRS"] = [str(p) for p in trust_dirs]
    if abstain_below is not None:
        overrides["ABSTAIN_BELOW"] = abstain_below
    app = create_app(overrides or None)
    predictor = app.extensions["digitguard"]
    verified, gate = predictor.verified, predictor.gate
    gated = f", gate {gate.path} (weights sha256 {gate.weights_sha256})" if gate is not None else ""
    click.echo(
        f"serving {verified.path} (weights sha256 {verified.weights_sha256}){gated} "
        f"at {'https' if tls else 'http'}://{host}:{port}",
        err=True,
    )
    run(
        app,
        host=host,
        port=port,
        workers=workers,
        timeout_s=timeout_s,
        threads=threads,
        access_log=access_log,
        tls=tls,
    )


db_option = click.option(
    "--db",
    "database_url",
    default=None,
    help="Database URL (default: $DIGITGUARD_DATABASE_URL or sqlite in the instance directory).",
)


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys (roles: predict, reviewer, admin)."""


def _key_store(database_url: str | None):
    from digitguard.paths import default_database_url
    from digitguard.security.store import KeyStore, connect

    return KeyStore(connect(database_url or default_database_url()))


def _audit_cli_event(database_url: str | None, kind: str, details: dict[str, object]) -> None:
    """Record a change made from the command line in the same trail the server writes."""
    import getpass
    import socket

    from digitguard.audit.keys import ensure_signer
    from digitguard.audit.store import AuditStore, audit_engine
    from digitguard.paths import default_database_url, instance_dir

    store = AuditStore(
        audit_engine(database_url or default_database_url()),
        ensure_signer(instance_dir() / "audit-signing.pem"),
    )
    store.append(kind, f"cli:{getpass.getuser()}@{socket.gethostname()}", None, details)
    store.engine.dispose()


@keys.command("create")
@click.option("--role", type=click.Choice(["predict", "reviewer", "admin"]), required=True)
@click.option("--name", required=True, help="Who or what the key is for.")
@db_option
def keys_create(role: str, name: str, database_url: str | None) -> None:
    """Create a key; its secret token is printed once and never stored."""
    from digitguard.security.keys import Role

    created = _key_store(database_url).create(name, Role(role))
    _audit_cli_event(
        database_url, "key.created", {"key_id": created.key.key_id, "name": created.key.name, "role": role}
    )
    click.echo(
        f"created key {created.key.key_id} ({created.key.role.value}) for {created.key.name}", err=True
    )
    click.echo("the token below is shown once; only an scrypt hash of it is stored:", err=True)
    click.echo(created.token)


@keys.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True)
def keys_list(database_url: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    listed = _key_store(database_url).list()
    if as_json:
        click.echo(json.dumps([_key_dict(key) for key in listed]))
        return
    for key in listed:
        status = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        click.echo(
            f"{key.key_id}  {key.role.value:<8}  {key.created_at:%Y-%m-%d %H:%M}  {status:<24}  {key.name}"
        )


def _key_dict(key) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "role": key.role.value,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at and key.revoked_at.isoformat(),
    }


@keys.command("revoke")
@click.argument("key_id")
@db_option
def keys_revoke(key_id: str, database_url: str | None) -> None:
    """Revoke a key; every replica refuses it from the next request on."""
    key = _key_store(database_url).revoke(key_id)
    _audit_cli_event(database_url, "key.revoked", {"key_id": key.key_id, "name": key.name})
    click.echo(f"revoked {key.key_id} ({key.name})")


@cli.group()
def db() -> None:
    """The database schema (keys, lock-outs, model target, audit trail)."""


@db.command("upgrade")
@db_option
def db_upgrade(database_url: str | None) -> None:
    """Apply any missing schema migrations (also done automatically at start)."""
    import sqlalchemy as sa

    from digitguard.migrations import migrate
    from digitguard.paths import default_database_url

    click.echo(f"schema at version {migrate(sa.create_engine(database_url or default_database_url()))}")


@db.command("version")
@db_option
def db_version(database_url: str | None) -> None:
    """Print the schema version of the database and the newest this code knows."""
    import sqlalchemy as sa

    from digitguard.migrations import LATEST, current_version
    from digitguard.paths import default_database_url

    with sa.create_engine(database_url or default_database_url()).begin() as connection:
        click.echo(
            f"database schema version {current_version(connection)}; this digitguard knows up to {LATEST}"
        )


@cli.group()
def audit() -> None:
    """Verify, export and query the tamper-evident audit trail."""


def _audit_store(database_url: str | None):
    from digitguard.audit.store import AuditStore, audit_engine
    from digitguard.paths import default_database_url

    return AuditStore(audit_engine(database_url or default_database_url()))


@audit.command("verify")
@db_option
@click.option(
    "--key",
    "public_keys",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Public key(s) of the checkpoint signer (default: instance/audit-signing.pub).",
)
def audit_verify(database_url: str | None, public_keys: tuple[Path, ...]) -> None:
    """Re-walk the chain and the signed checkpoints; exit 1 at the first broken record."""
    from digitguard.audit.store import load_public_keys
    from digitguard.paths import instance_dir

    paths = list(public_keys) or [p for p in [instance_dir() / "audit-signing.pub"] if p.is_file()]
    report = _audit_store(database_url).verify(load_public_keys(paths))
    if report.ok:
        click.echo(f"ok: {report.records} records, {report.checkpoints} signed checkpoints, chain intact")
        return
    click.echo(f"TAMPERED: {report.first.problem}", err=True)
    for finding in report.findings[1:10]:
        click.echo(f"  also: {finding.problem}", err=True)
    sys.exit(1)


@audit.command("export")
@db_option
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File (default: stdout)."
)
def audit_export(database_url: str | None, out: Path | None) -> None:
    """Write every record as JSON Lines (canonical text plus its hash)."""
    lines = (
        json.dumps({"seq": row.seq, "hash": row.hash, "record": json.loads(row.body)}) + "\n"
        for row in _audit_store(database_url).rows()
    )
    if out is None:
        for line in lines:
            click.echo(line, nl=False)
        return
    with out.open("w", encoding="utf-8") as handle:
        handle.writelines(lines)


@audit.command("show")
@db_option
@click.option("--request-id", required=True)
def audit_show(database_url: str | None, request_id: str) -> None:
    """What did the model say to whom, when, with which model — for one request id."""
    records = _audit_store(database_url).find(request_id)
    if not records:
        click.echo(f"no audit record for request {request_id}", err=True)
        sys.exit(1)
    for record in records:
        click.echo(
            json.dumps(
                {
                    "seq": record.seq,
                    "time": record.time,
                    "kind": record.kind,
                    "principal": record.principal,
                    **record.details,
                },
                indent=2,
            )
        )


@cli.group()
def model() -> None:
    """Operate on the model a running server serves."""


@model.command("reload")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The server's base URL.")
@click.option(
    "--model", "model_dir", default=None, help="Server-side model directory (default: the current one)."
)
@click.option(
    "--token-env",
    default="DIGITGUARD_API_KEY",
    show_default=True,
    help="Environment variable holding an admin API key (kept out of the command line).",
)
def model_reload(url: str, model_dir: str | None, token_env: str) -> None:
    """Ask the server to verify a model and serve it; the old model stays if verification fails."""
    import urllib.error
    import urllib.request

    token = os.environ.get(token_env)
    if not token:
        raise click.UsageError(f"set ${token_env} to an admin API key")
    if not url.startswith(("http://", "https://")):
        raise click.BadParameter("the URL must be http:// or https://", param_hint="--url")
    # The scheme is checked just above.
    request = urllib.request.Request(  # noqa: S310
        url.rstrip("/") + "/api/v1/model/reload",
        method="POST",
        data=json.dumps({"model_dir": model_dir} if model_dir else {}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310  # nosec B310
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}")
        click.echo(f"error: {exc.code} {detail.get('error')}: {detail.get('message')}", err=True)
        sys.exit(3 if exc.code == 422 else 2)
    except urllib.error.URLError as exc:
        click.echo(f"error: cannot reach {url}: {exc.reason}", err=True)
        sys.exit(2)
    click.echo(f"serving {body['model']} (weights sha256 {body['model_sha256']}) from {body['path']}")


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, standalone_mode=False)
    except DigitguardError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
