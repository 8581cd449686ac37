"""``digitguard redteam``: attacks on a running service through its public HTTP API only.

``extract --url URL --key K --queries N`` is a black-box model-extraction attacker
(:mod:`digitguard.attacks.extraction`): it labels its queries with ``POST /api/v1/predict`` and
trains a substitute. It stops when the service stops answering (429: a rate limit, the quota, or
``extraction_suspected`` — the PRADA watch) and says at which query. Its results are measured
against ``--reference-model``, a local verified copy of the served model that the attack itself
never touches.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from digitguard.cli_options import data_dir_option, trust_option
from digitguard.outputs import figure_png, json_bytes, write_outputs


@dataclass
class HttpOracle:
    """Labels from ``POST {url}/api/v1/predict`` with a bearer key, one JSON request per image."""

    url: str
    key: str
    timeout_s: float = 30.0
    refusal: str | None = None  # the error code that stopped it, once it stopped
    answered: int = 0
    abstentions: int = field(default=0)

    def __post_init__(self) -> None:
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise click.BadParameter(f"{self.url!r}: an http:// or https:// URL", param_hint="--url")

    def label(self, images: Any) -> Any:
        import numpy as np
        import torch

        labels: list[int] = []
        for image in images:
            if self.refusal is not None:
                break
            body = self._post({"pixels": np.round(image[0].numpy(), 4).tolist()})
            if body is None:
                break
            self.answered += 1
            labels.append(self._label_of(body))
        return torch.tensor(labels, dtype=torch.long)

    def _label_of(self, body: dict[str, Any]) -> int:
        if body.get("digit") is not None:
            return int(body["digit"])
        self.abstentions += 1
        probabilities = body.get("probabilities")
        return max(range(10), key=lambda d: probabilities[d]) if probabilities else -1

    def _post(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked to be http or https)
            urllib.parse.urljoin(self.url, "/api/v1/predict"),
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310  # nosec B310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 429):
                try:
                    self.refusal = str(json.loads(exc.read()).get("error", exc.code))
                except ValueError:
                    self.refusal = str(exc.code)
                return None
            raise click.ClickException(f"{self.url}: HTTP {exc.code} on a prediction") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise click.ClickException(f"{self.url}: {exc}") from exc


@click.group("redteam")
def redteam() -> None:
    """Attacks on a running service through its public HTTP API."""


@redteam.command("extract")
@click.option("--url", required=True, help="The service, e.g. http://127.0.0.1:8000")
@click.option("--key", envvar="DIGITGUARD_REDTEAM_KEY", required=True, help="An API key (role predict).")
@click.option("--queries", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--strategy", type=click.Choice(["jacobian", "pool"]), default="jacobian", show_default=True)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=100, show_default=True, help="Natural starting digits."
)
@click.option("--step", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True, help="λ.")
@click.option(
    "--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Substitute epochs a round."
)
@click.option(
    "--reference-model",
    type=click.Path(path_type=Path),
    default=None,
    help="A local copy of the served model, to measure agreement and transfer (never queried); it "
    "must be the model the server reports (default: the served default, models/robust-drawing).",
)
@click.option("--eval-samples", type=click.IntRange(min=10), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="extraction-result.json + plot.",
)
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
@trust_option
def extract_command(
    url: str,
    key: str,
    queries: int,
    strategy: str,
    seeds: int,
    step: float,
    epochs: int,
    reference_model: Path | None,
    eval_samples: int,
    seed: int,
    out: Path | None,
    as_json: bool,
    data_dir: Path | None,
    trust_dirs: tuple[Path, ...],
) -> None:
    """Steal a substitute of the served model with at most --queries labelled queries."""
    import torch

    from digitguard.attacks.extraction import ExtractionSettings, extract
    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.models.artifact import load_verified
    from digitguard.training.loop import to_model_input
    from digitguard.web import default_model_dir

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    reference_model = reference_model or default_model_dir()
    reference = load_verified(reference_model, list(trust_dirs))
    served = served_model_sha256(url)
    if served != reference.weights_sha256:
        # The result is evidence about the served model: a different local copy would bind it to the
        # wrong weights (or to none, if the server does not say what it serves).
        raise click.ClickException(
            f"{reference_model}: weights {reference.weights_sha256[:12]}… are not the served model "
            f"({str(served)[:12]}… at {url}); pass the served model as --reference-model"
        )
    test = mnist.load(data_dir or default_data_dir()).test
    # The attacker's unlabelled pool: the first half of the test digits; the yardstick: the second.
    pool = to_model_input(torch.from_numpy(test.images[:5000].copy()))
    evaluation = (
        to_model_input(torch.from_numpy(test.images[5000 : 5000 + eval_samples].copy())),
        torch.from_numpy(test.labels[5000 : 5000 + eval_samples].astype("int64")),
    )
    settings = ExtractionSettings(queries, strategy, seeds, step, epochs, seed=seed)
    oracle = HttpOracle(url, key)

    def progress(result: Any) -> None:
        if not as_json:
            click.echo(
                f"{result.queries:>6} queries: substitute accuracy {result.substitute_accuracy:.2%}, "
                f"agreement {result.agreement:.2%}, FGSM ε={settings.transfer_eps:g} transfer "
                f"{result.transfer_success:.2%}"
            )

    result = extract(oracle, pool, evaluation, reference.model.eval(), settings, progress)
    document = {
        "url": url,
        "reference_model": str(reference_model),
        "model_sha256": reference.weights_sha256,
        **result.to_dict(),
        "refusal": oracle.refusal,
        "abstentions": oracle.abstentions,
        "command": f"digitguard redteam extract --url {url} --queries {queries} --strategy {strategy} "
        f"--seeds {seeds} --step {step} --epochs {epochs} --eval-samples {eval_samples} --seed {seed}",
    }
    if out is not None:
        _write(out, document)
    if as_json:
        click.echo(json.dumps(document))
    elif result.refused_at is not None:
        click.echo(f"the service stopped answering at query {result.refused_at} ({oracle.refusal})")
    else:
        click.echo(f"all {result.rounds[-1].queries if result.rounds else 0} queries answered; never refused")


def _write(out: Path, document: dict[str, Any]) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot()
    rounds = document["rounds"]
    for key, label in (
        ("substitute_accuracy", "substitute accuracy"),
        ("agreement", "agreement with the served model"),
        ("transfer_success", "FGSM transfer success"),
    ):
        axes.plot([r["queries"] for r in rounds], [100 * r[key] for r in rounds], marker="o", label=label)
    if document["refused_at"] is not None:
        axes.axvline(
            document["refused_at"], color="red", linestyle="--", label=f"refused ({document['refusal']})"
        )
    axes.set_xlabel("queries answered")
    axes.set_ylabel("%")
    axes.set_ylim(0, 105)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    write_outputs(out, {"extraction-result.json": json_bytes(document), "extraction.png": figure_png(figure)})


@redteam.command("replay")
@click.option("--url", required=True, help="The service, e.g. http://127.0.0.1:8000")
@click.option("--key", envvar="DIGITGUARD_REDTEAM_KEY", required=True, help="An API key (role predict).")
@click.option("--count", type=click.IntRange(1, 10_000), default=10_000, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), default=None, help="replay-result.json."
)
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def replay_command(
    url: str, key: str, count: int, out: Path | None, as_json: bool, data_dir: Path | None
) -> None:
    """An ordinary user: send the first --count MNIST test digits in order; report any refusal.

    The control run for the extraction watch: natural queries must never be paused.
    """
    import torch

    from digitguard.cli import default_data_dir
    from digitguard.data import mnist
    from digitguard.training.loop import to_model_input

    test = mnist.load(data_dir or default_data_dir()).test
    oracle = HttpOracle(url, key)
    labels = oracle.label(to_model_input(torch.from_numpy(test.images[:count].copy())))
    truth = torch.from_numpy(test.labels[: len(labels)].astype("int64"))
    document = {
        "url": url,
        "model_sha256": served_model_sha256(url),
        "sent": count,
        "answered": len(labels),
        "refusal": oracle.refusal,
        "accuracy_of_answers": float((labels == truth).double().mean()) if len(labels) else None,
        "abstentions": oracle.abstentions,
    }
    document["command"] = f"digitguard redteam replay --url {url} --count {count}"
    if out is not None:
        write_outputs(out, {"replay-result.json": json_bytes(document)})
    if as_json:
        click.echo(json.dumps(document))
    elif oracle.refusal is None:
        accuracy = document["accuracy_of_answers"]
        click.echo(f"all {count} test digits answered; never refused (accuracy {accuracy:.2%})")
    else:
        click.echo(f"refused after {len(labels)} of {count} digits ({oracle.refusal})")
    if oracle.refusal is not None:
        raise SystemExit(1)


def served_model_sha256(url: str) -> str | None:
    """The weights hash the service says it serves (``/readyz``), or None when it will not say."""
    import urllib.request

    if not url.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=10) as response:  # noqa: S310  # nosec B310
            return json.loads(response.read()).get("model_sha256")
    except (OSError, ValueError):
        return None
