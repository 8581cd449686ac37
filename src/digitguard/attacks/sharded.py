"""A per-image evaluation of test images ``[start, stop)``, sharded across processes, resumable, merged
into one file whose bytes do not depend on how many processes ran it or how often it was interrupted.

A 10,000-image AutoAttack takes hours on CPU; this spreads it over ``torchrun`` processes (the group
:func:`digitguard.training.distributed.join` joins) and over interruptions. What is evaluated is a
per-batch function, :data:`BatchEvaluation` — ``(images, labels, indices) -> one record per image`` —
so any decision can be plugged in; :func:`attack_evaluation` is the built-in one: a model under an
attack from the registry.

**Work division.** The range is cut into *global* batches of ``batch_size`` consecutive indices,
``[start + k·b, start + (k+1)·b)``, and batch ``k`` goes to rank ``k mod world_size``. A batch holds
the same images whatever the world size, so an attack whose result for one image depends on its
batch-mates (AutoAttack's random starts do) still gives every image the same record; round robin
keeps the ranks' shares within one batch of each other.

**Files** (in ``OUT``):

* ``run.json`` — what defines the run (record schema, range, batch size, the caller's settings:
  model hash, attack, ε, seeds…), written once by rank 0; a resumed run must match it exactly.
* ``shards/shard-{rank}-of-{world}.jsonl`` — one line per image, ``{"record": …, "sha256": …}``,
  appended by one rank only, flushed and fsync'ed after every batch, so a kill loses at most the
  batch being evaluated. The name only keeps writers apart: a record is keyed by its ``index``, and
  a reader takes every shard file in the folder, so a run interrupted with 2 processes can be
  resumed with 1 or 3 (the new ranks write new files beside the old ones). A line's ``sha256``
  covers the run's key and the record: it catches a damaged or hand-edited line, or one copied from
  another run. It is not a signature — whoever can write the folder can recompute it.
* ``results.jsonl`` — every record, sorted by index, one canonical JSON object per line: nothing
  in it depends on the world size, the interruptions, the clock or the command line.
* ``summary.json`` — ``run.json``'s content, the results file's SHA-256, what ``summarise`` makes of
  the records (robust accuracy with a Wilson interval, for attacks), the command line and the world
  size of the run that merged.

**Resuming.** A batch whose indices are all recorded is skipped. A batch recorded only in part (a
write cut by a kill) is evaluated again whole — the same images, so the same records — and only
its missing records are written; a recomputed record that differs from the stored one is refused.
An unterminated last line is the trace of such a cut write and is ignored (and cut off before its
rank appends); any other malformed line, and an index recorded twice with different content, is a
:class:`ShardRecordError` naming the file and line.

Records are byte-identical across world sizes given the same torch version, thread count per
process and CPU vector width (``ATEN_CPU_CAPABILITY``), which decide the float rounding.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from digitguard.attacks.base import BUDGET_TOLERANCE, Attack, check_budget
from digitguard.errors import AttackCheckError, AttackError
from digitguard.training.distributed import Cluster

FORMAT = "digitguard-sharded/1"
RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
SHARDS_DIR = "shards"
# A rank that finishes its share waits for the slowest; AutoAttack's last batch can take hours.
FINAL_WAIT = timedelta(days=7)
WILSON_Z_95 = 1.959963984540054

BatchEvaluation = Callable[[torch.Tensor, torch.Tensor, list[int]], list[dict[str, Any]]]
Rule = Callable[[Mapping[str, Any]], str | None]

_SHARD_NAME = re.compile(r"^shard-(?P<rank>\d+)-of-(?P<world>\d+)\.jsonl$")
_JSON_TYPES = (int, float, bool, str)


class ShardedRunError(AttackError):
    """The output folder holds another run, or the range or batch size is invalid. Exit status 2."""


class ShardRecordError(AttackCheckError):
    """A shard line is damaged, edited or contradicts another, or the records do not cover the range.
    Exit status 1."""


@dataclass(frozen=True)
class RecordSchema:
    """Exactly which fields every record has, each of exactly one JSON type, and rules across them.

    ``index`` (an ``int``) is always one of the fields. A rule returns what is wrong, or ``None``.
    """

    name: str
    fields: tuple[tuple[str, type], ...]
    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        kinds = dict(self.fields)
        if kinds.get("index") is not int:
            raise ValueError(f"schema {self.name!r}: records need an int 'index' field")
        if any(kind not in _JSON_TYPES for kind in kinds.values()):
            raise ValueError(f"schema {self.name!r}: field types must be int, float, bool or str")

    def problem(self, record: Any, start: int, stop: int) -> str | None:
        """What is wrong with ``record`` for a run over ``[start, stop)``, or ``None``."""
        if not isinstance(record, dict):
            return "the record is not a JSON object"
        expected = [name for name, _ in self.fields]
        if set(record) != set(expected):
            missing, extra = sorted(set(expected) - set(record)), sorted(set(record) - set(expected))
            return f"fields differ from schema {self.name!r} (missing {missing}, unexpected {extra})"
        for name, kind in self.fields:
            value = record[name]
            if type(value) is not kind:  # exact: JSON true is not the integer 1
                return f"{name!r} must be {kind.__name__}, got {value!r}"
            if isinstance(value, float) and not math.isfinite(value):
                return f"{name!r} is not finite"
        if not start <= record["index"] < stop:
            return f"index {record['index']} is outside the run's range [{start}, {stop})"
        return next((problem for rule in self.rules if (problem := rule(record)) is not None), None)


@dataclass(frozen=True)
class ShardedRun:
    """What one sharded evaluation is: where, which images, in which batches, judged by what."""

    out: Path
    start: int
    stop: int
    batch_size: int
    schema: RecordSchema
    settings: Mapping[str, Any] = field(default_factory=dict)  # JSON: model hash, attack, ε, seeds…

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop:
            raise ShardedRunError(f"the range [{self.start}, {self.stop}) holds no image")
        if self.batch_size < 1:
            raise ShardedRunError(f"batch size must be at least 1, got {self.batch_size}")

    def header(self) -> dict[str, Any]:
        """``run.json``'s content: everything a resumed run must share with the first."""
        return {
            "format": FORMAT,
            "schema": self.schema.name,
            "fields": [name for name, _ in self.schema.fields],
            "start": self.start,
            "stop": self.stop,
            "batch_size": self.batch_size,
            "settings": dict(self.settings),
        }

    @property
    def key(self) -> str:
        return _sha256(canonical_json(self.header()))

    def batches(self) -> list[range]:
        return [
            range(i, min(i + self.batch_size, self.stop))
            for i in range(self.start, self.stop, self.batch_size)
        ]

    def batches_for(self, rank: int, world_size: int) -> list[range]:
        """Rank ``rank``'s share: global batches ``rank, rank + world_size, …``."""
        return self.batches()[rank::world_size]


@dataclass(frozen=True)
class Progress:
    rank: int
    world_size: int
    batch: range
    done: int  # images of this rank's share recorded so far, skipped ones included
    total: int  # images in this rank's share
    evaluated: bool  # False: the batch was already recorded and skipped
    seconds: float


@dataclass(frozen=True)
class Outcome:
    """What rank 0 merged: the two files and what they say."""

    results: Path
    summary_path: Path
    results_sha256: str
    records: int
    summary: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# The core: lines, shards and the merge as pure functions of bytes.


def canonical_json(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def encode_line(record: Mapping[str, Any], run_key: str) -> bytes:
    """One shard line: the record and the SHA-256 of the run's key and the record."""
    body = canonical_json(record)
    return f'{{"record":{body},"sha256":"{_sha256(run_key + chr(10) + body)}"}}\n'.encode("ascii")


def parse_shard(
    data: bytes, name: str, run: ShardedRun, run_key: str
) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """(line number, record) for each line of shard ``name``, and whether its last write was cut.

    :class:`ShardRecordError` names the first line that is not a record of this run.
    """
    lines = data.split(b"\n")
    torn = lines.pop() != b""  # the bytes after the last newline: none unless a write was cut
    records = []
    for number, raw in enumerate(lines, start=1):
        records.append((number, _parse_line(raw, f"{name} line {number}", run, run_key)))
    return records, torn


def collect(
    shards: Mapping[str, bytes], run: ShardedRun, run_key: str
) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Every index recorded in ``shards`` (name → bytes) and its record; and the shards with a cut last
    write. An index recorded twice must be recorded identically."""
    records: dict[int, dict[str, Any]] = {}
    where: dict[int, str] = {}
    torn = []
    for name in sorted(shards):
        lines, cut = parse_shard(shards[name], name, run, run_key)
        if cut:
            torn.append(name)
        for number, record in lines:
            index = record["index"]
            if index in records and records[index] != record:
                raise ShardRecordError(
                    f"index {index} is recorded differently in {where[index]} and {name} line {number}"
                )
            records.setdefault(index, record)
            where.setdefault(index, f"{name} line {number}")
    return records, torn


def merge(records: Mapping[int, Mapping[str, Any]], run: ShardedRun) -> bytes:
    """``results.jsonl``: one canonical line per index of the run's range, in order."""
    missing = [index for index in range(run.start, run.stop) if index not in records]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (", …" if len(missing) > 10 else "")
        raise ShardRecordError(f"{len(missing)} images of [{run.start}, {run.stop}) have no record: {shown}")
    return "".join(canonical_json(records[index]) + "\n" for index in range(run.start, run.stop)).encode()


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z_95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (95% by default)."""
    if not 0 <= successes <= trials or trials == 0:
        raise ValueError(f"need 0 ≤ successes ≤ trials and trials > 0, got {successes}/{trials}")
    p, n = successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _parse_line(raw: bytes, where: str, run: ShardedRun, run_key: str) -> dict[str, Any]:
    try:
        line = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ShardRecordError(f"{where}: not a JSON line (damaged or edited)") from None
    if not isinstance(line, dict) or set(line) != {"record", "sha256"}:
        raise ShardRecordError(f"{where}: expected an object with 'record' and 'sha256' only")
    record = line["record"]
    problem = run.schema.problem(record, run.start, run.stop)
    if problem is not None:
        raise ShardRecordError(f"{where}: {problem}")
    if line["sha256"] != _sha256(run_key + "\n" + canonical_json(record)):
        raise ShardRecordError(
            f"{where}: the checksum does not match (the line was edited, or is another run's)"
        )
    return record


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# The engine: the files, the batches of one rank, the barriers and the merge.


def run_sharded(
    run: ShardedRun,
    images: torch.Tensor,
    labels: torch.Tensor,
    evaluate_batch: BatchEvaluation,
    cluster: Cluster,
    *,
    resume: bool = False,
    summarise: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    command: Sequence[str] = (),
    progress: Callable[[Progress], None] | None = None,
) -> Outcome | None:
    """Evaluate this rank's share of ``run``, then (rank 0) merge every shard; ``None`` on other ranks.

    ``images``/``labels`` are the whole indexable set (``images[i]`` is image ``i``). Every rank must
    call this with the same arguments; the caller joins and leaves the process group.
    """
    if run.stop > len(images) or len(images) != len(labels):
        raise ShardedRunError(
            f"the range [{run.start}, {run.stop}) needs {run.stop} images, got {len(images)}"
        )
    run_key = run.key
    recorded = _prepare(run, run_key, resume)  # read-only on every rank: all reach the same verdict
    _barrier(cluster)  # every rank has looked before rank 0 writes
    if cluster.is_writer and not (run.out / RUN_FILE).exists():
        _write_atomically(run.out / RUN_FILE, json.dumps(run.header(), indent=2) + "\n")
    _barrier(cluster)  # and no shard is written before run.json, which names what the shards hold
    shard = run.out / SHARDS_DIR / f"shard-{cluster.rank}-of-{cluster.world_size}.jsonl"
    _evaluate_share(run, run_key, images, labels, evaluate_batch, cluster, shard, recorded, progress)
    _barrier(cluster, FINAL_WAIT)
    if not cluster.is_writer:
        return None
    return _merge_and_summarise(run, run_key, cluster, summarise, command)


def _prepare(run: ShardedRun, run_key: str, resume: bool) -> dict[int, dict[str, Any]]:
    """The records already in ``run.out``; :class:`ShardedRunError` if it holds another run."""
    stored = run.out / RUN_FILE
    shards = _read_shards(run.out)
    if stored.exists():
        if not resume:
            raise ShardedRunError(f"{run.out} already holds a run; pass --resume to continue it")
        try:
            header = json.loads(stored.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ShardedRunError(f"{stored}: not JSON") from None
        wanted = json.loads(json.dumps(run.header()))  # as JSON gives it back: lists, not tuples
        if header != wanted:
            differ = ", ".join(_differences(header, wanted))
            raise ShardedRunError(f"{stored}: this run differs from the stored one in {differ}")
    elif shards:
        raise ShardedRunError(f"{run.out / SHARDS_DIR} holds shards but {stored} is missing")
    records, _ = collect(shards, run, run_key)
    return records


def _differences(stored: Any, wanted: Any, path: str = "") -> list[str]:
    """The dotted paths at which two JSON documents differ."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        keys = sorted({*stored, *wanted})
        return [d for k in keys for d in _differences(stored.get(k), wanted.get(k), f"{path}.{k}".strip("."))]
    return [] if stored == wanted else [path or "the whole file"]


def _evaluate_share(
    run: ShardedRun,
    run_key: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    evaluate_batch: BatchEvaluation,
    cluster: Cluster,
    shard: Path,
    recorded: Mapping[int, Mapping[str, Any]],
    progress: Callable[[Progress], None] | None,
) -> None:
    share = run.batches_for(cluster.rank, cluster.world_size)
    total, done = sum(len(batch) for batch in share), 0
    with _appending(shard) as sink:
        for batch in share:
            started = time.perf_counter()
            missing = [index for index in batch if index not in recorded]
            if missing:
                indices = list(batch)  # the whole batch, whatever is missing: its images decide the records
                records = _checked(evaluate_batch(images[indices], labels[indices], indices), indices, run)
                for record in records:
                    index = record["index"]
                    if index in recorded and recorded[index] != record:
                        raise ShardRecordError(
                            f"index {index}: evaluated again, it gives a different record than the stored "
                            "one (the evaluation is not deterministic)"
                        )
                sink.write(b"".join(encode_line(r, run_key) for r in records if r["index"] in missing))
                sink.flush()
                os.fsync(sink.fileno())
            done += len(batch)
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress(
                    Progress(cluster.rank, cluster.world_size, batch, done, total, bool(missing), elapsed)
                )


def _checked(records: list[dict[str, Any]], indices: list[int], run: ShardedRun) -> list[dict[str, Any]]:
    """The batch function's records, refused unless they are one valid record per index, in order."""
    if not isinstance(records, list) or len(records) != len(indices):
        count = len(records) if isinstance(records, list) else type(records).__name__
        raise ShardRecordError(f"the batch function returned {count} records for {len(indices)} images")
    for index, record in zip(indices, records, strict=True):
        problem = run.schema.problem(record, run.start, run.stop)
        if problem is None and record["index"] != index:
            problem = f"record for index {record['index']} where {index} was evaluated"
        if problem is not None:
            raise ShardRecordError(f"the batch function's record for image {index}: {problem}")
    return records


def _merge_and_summarise(
    run: ShardedRun,
    run_key: str,
    cluster: Cluster,
    summarise: Callable[[list[dict[str, Any]]], dict[str, Any]] | None,
    command: Sequence[str],
) -> Outcome:
    records, _ = collect(_read_shards(run.out), run, run_key)
    merged = merge(records, run)
    ordered = [records[index] for index in range(run.start, run.stop)]
    digest = hashlib.sha256(merged).hexdigest()
    summary = {
        "run": run.header(),
        "run_key": run_key,
        "results": {"file": RESULTS_FILE, "sha256": digest, "records": len(ordered)},
        "summary": summarise(ordered) if summarise is not None else {},
        "command": list(command),
        "world_size": cluster.world_size,
    }
    _write_atomically(run.out / RESULTS_FILE, merged)
    _write_atomically(run.out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return Outcome(run.out / RESULTS_FILE, run.out / SUMMARY_FILE, digest, len(ordered), summary)


def _read_shards(out: Path) -> dict[str, bytes]:
    folder = out / SHARDS_DIR
    if not folder.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if _SHARD_NAME.match(path.name)}


@contextlib.contextmanager
def _appending(path: Path) -> Iterator[BinaryIO]:
    """This rank's shard, open for appending, after cutting off a last line that a kill left unfinished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with open(path, "ab") as sink:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            sink.truncate(data.rfind(b"\n") + 1)
        if created:
            _fsync_directory(path.parent)
        yield sink


def _write_atomically(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    os.replace(partial, path)


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _barrier(cluster: Cluster, timeout: timedelta | None = None) -> None:
    if cluster.world_size == 1:
        return
    if timeout is not None and torch.distributed.get_backend() == "gloo":
        # A plain barrier gives up after the group's default timeout (30 min), shorter than a
        # rank's last AutoAttack batch can take while the others wait; gloo's monitored one waits longer.
        torch.distributed.monitored_barrier(timeout=timeout, wait_all_ranks=True)
    else:
        torch.distributed.barrier()


# ---------------------------------------------------------------------------------------------
# The built-in evaluation: a model under an attack.


def attack_record_schema(eps: float) -> RecordSchema:
    """Records of :func:`attack_evaluation`: predictions in 0–9, ``robust`` consistent with them, L∞ ≤ ε."""

    def classes(record: Mapping[str, Any]) -> str | None:
        keys = ("label", "clean_prediction", "adversarial_prediction")
        return next((f"{key!r} must be a class 0–9" for key in keys if not 0 <= record[key] <= 9), None)

    def robust(record: Mapping[str, Any]) -> str | None:
        expected = record["clean_prediction"] == record["label"] == record["adversarial_prediction"]
        return None if record["robust"] == expected else "'robust' contradicts the label and predictions"

    def within(record: Mapping[str, Any]) -> str | None:
        if 0 <= record["linf"] <= eps + BUDGET_TOLERANCE:
            return None
        return f"'linf' {record['linf']} is outside [0, ε = {eps}]"

    fields = (
        ("index", int),
        ("label", int),
        ("clean_prediction", int),
        ("adversarial_prediction", int),
        ("robust", bool),
        ("linf", float),
    )
    return RecordSchema("attack/1", fields, (classes, robust, within))


def attack_evaluation(model: nn.Module, attack: Attack) -> BatchEvaluation:
    """Per image: its label, the model's prediction on it and on the attack's result, whether it is
    robust (right before and after the attack), and the L∞ distance the attack used."""

    def evaluate(images: torch.Tensor, labels: torch.Tensor, indices: list[int]) -> list[dict[str, Any]]:
        with torch.no_grad():
            clean = model(images).argmax(1)
        adversarial = attack(images, labels)
        check_budget(adversarial, images, attack.eps, attack.name)
        with torch.no_grad():
            fooled = model(adversarial).argmax(1)
        distances = (adversarial - images).flatten(1).abs().amax(1)
        return [
            {
                "index": index,
                "label": int(label),
                "clean_prediction": int(before),
                "adversarial_prediction": int(after),
                "robust": bool(before == label and after == label),
                "linf": float(distance),
            }
            for index, label, before, after, distance in zip(
                indices, labels, clean, fooled, distances, strict=True
            )
        ]

    return evaluate


def robust_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Clean and robust accuracy of attack records, robust accuracy with its 95% Wilson interval."""
    n = len(records)
    clean = sum(r["clean_prediction"] == r["label"] for r in records)
    robust = sum(r["robust"] for r in records)
    low, high = wilson_interval(robust, n)
    return {
        "images": n,
        "clean_correct": clean,
        "clean_accuracy": clean / n,
        "robust_correct": robust,
        "robust_accuracy": robust / n,
        "robust_accuracy_wilson_95": [low, high],
        "max_linf": max(r["linf"] for r in records),
    }
