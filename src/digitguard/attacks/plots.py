"""Pictures of a robustness run: accuracy against ε, and a grid of clean and adversarial digits.

Both functions return PNG bytes (matplotlib's Agg canvas, no pyplot state, no display); the
caller decides where they go.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from digitguard.attacks.evaluate import Examples, RobustnessReport


def accuracy_vs_epsilon_png(reports: list[RobustnessReport], title: str = "") -> bytes:
    """One line per report: clean accuracy at ε = 0, then robust accuracy at each ε."""
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot()
    for report in reports:
        epsilons = [0.0] + [result.eps for result in report.results]
        accuracies = [100 * report.clean_accuracy] + [
            100 * result.robust_accuracy for result in report.results
        ]
        axes.plot(epsilons, accuracies, marker="o", label=f"{report.attack} ({report.samples} images)")
        for eps, accuracy in zip(epsilons, accuracies, strict=True):
            axes.annotate(
                f"{accuracy:.1f}",
                (eps, accuracy),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=7,
            )
    axes.set_xlabel("ε (L∞, pixels in [0, 1])")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(0, 105)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    return _png(figure)


def examples_png(examples: Examples, title: str = "") -> bytes:
    """Rows: the clean digits, then one row per ε; each cell titled with the model's answer."""
    count = len(examples.images)
    rows = 1 + len(examples.epsilons)
    figure = Figure(figsize=(1.2 * max(count, 1) + 1.2, 1.35 * rows + 0.4), dpi=100)
    grid = figure.subplots(rows, max(count, 1), squeeze=False)
    row_images = [examples.images, *examples.adversarial]
    row_predictions = [examples.labels, *examples.predictions]
    row_names = ["clean", *(f"ε={eps:g}" for eps in examples.epsilons)]
    for row, (images, predictions, name) in enumerate(
        zip(row_images, row_predictions, row_names, strict=True)
    ):
        for column in range(max(count, 1)):
            axes = grid[row][column]
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(name, fontsize=8)
            if column >= count:
                continue
            axes.imshow(images[column, 0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            predicted, truth = int(predictions[column]), int(examples.labels[column])
            axes.set_title(f"→ {predicted}", fontsize=8, color="black" if predicted == truth else "red")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
