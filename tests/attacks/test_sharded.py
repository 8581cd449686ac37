"""The sharded evaluation: global batches dealt round robin, checked shard lines, resuming, a merge whose
bytes do not depend on the world size or the interruptions."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from digitguard.attacks.pgd import PGD
from digitguard.attacks.sharded import (
    RESULTS_FILE,
    SHARDS_DIR,
    SUMMARY_FILE,
    RecordSchema,
    ShardedRun,
    ShardedRunError,
    ShardRecordError,
    attack_evaluation,
    attack_record_schema,
    collect,
    encode_line,
    merge,
    parse_shard,
    robust_summary,
    run_sharded,
    wilson_interval,
)
from digitguard.training.distributed import Cluster
from tests.conftest import REPO_ROOT, run_cli

EPS = 0.1
IMAGES = 20
BATCH = 6  # 4 batches, the last one short: 0–5, 6–11, 12–17, 18–19


def tiny_set() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A linear model and 20 images with random labels (some wrong before any attack)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(IMAGES, 1, 28, 28, generator=generator)
    return model, images, torch.randint(0, 10, (IMAGES,), generator=generator)


def attack_run(out: Path) -> ShardedRun:
    return ShardedRun(out, 0, IMAGES, BATCH, attack_record_schema(EPS), {"attack": "pgd", "steps": 2})


def pgd_evaluation(model: nn.Module) -> Any:
    # PGD's random start is seeded per image: deterministic, and independent of the batch.
    return attack_evaluation(model, PGD(model, EPS, steps=2, seed=0))


MEAN_SCHEMA = RecordSchema("batch-mean/1", (("index", int), ("batch_mean", float)))


def batch_mean(images: torch.Tensor, labels: torch.Tensor, indices: list[int]) -> list[dict[str, Any]]:
    """A record that depends on the image's batch-mates, as AutoAttack's random starts do."""
    return [{"index": index, "batch_mean": float(images.mean())} for index in indices]


def mean_run(out: Path) -> ShardedRun:
    return ShardedRun(out, 0, IMAGES, BATCH, MEAN_SCHEMA, {"probe": "batch mean"})


def run_alone(run: ShardedRun, evaluation: Any = None, **options: Any) -> Any:
    model, images, labels = tiny_set()
    return run_sharded(run, images, labels, evaluation or pgd_evaluation(model), Cluster(), **options)


def shard_lines(out: Path, name: str = "shard-0-of-1.jsonl") -> list[bytes]:
    return (out / SHARDS_DIR / name).read_bytes().splitlines(keepends=True)


@pytest.fixture
def reference(tmp_path: Path) -> bytes:
    """The merged results of one uninterrupted single-process run."""
    run_alone(attack_run(tmp_path / "reference"))
    return (tmp_path / "reference" / RESULTS_FILE).read_bytes()


class TestWorkDivision:
    def test_batches_are_global_and_dealt_round_robin(self, tmp_path: Path) -> None:
        run = attack_run(tmp_path)
        assert run.batches() == [range(0, 6), range(6, 12), range(12, 18), range(18, 20)]
        assert run.batches_for(0, 2) == [range(0, 6), range(12, 18)]
        assert run.batches_for(1, 2) == [range(6, 12), range(18, 20)]
        assert run.batches_for(4, 5) == []  # more ranks than batches: the last one idles

    @pytest.mark.parametrize(("start", "stop", "batch"), [(5, 5, 1), (-1, 3, 1), (0, 3, 0)])
    def test_an_empty_range_or_batch_is_refused(self, tmp_path: Path, start, stop, batch) -> None:
        with pytest.raises(ShardedRunError):
            ShardedRun(tmp_path, start, stop, batch, MEAN_SCHEMA)


class TestShardLines:
    record: ClassVar[dict[str, Any]] = {"index": 3, "batch_mean": 0.5}

    def test_a_line_reads_back_as_its_record(self, tmp_path: Path) -> None:
        run = mean_run(tmp_path)
        lines, torn = parse_shard(encode_line(self.record, run.key), "shard-0-of-1.jsonl", run, run.key)
        assert lines == [(1, self.record)] and not torn

    def test_an_edited_value_is_refused_naming_the_file_and_line(self, tmp_path: Path) -> None:
        run = mean_run(tmp_path)
        good = encode_line({"index": 2, "batch_mean": 0.25}, run.key)
        edited = encode_line(self.record, run.key).replace(b"0.5", b"0.6")
        with pytest.raises(
            ShardRecordError, match=r"^shard-0-of-1.jsonl line 2: the checksum does not match"
        ):
            parse_shard(good + edited, "shard-0-of-1.jsonl", run, run.key)

    def test_a_line_from_another_run_is_refused(self, tmp_path: Path) -> None:
        run, other = mean_run(tmp_path), ShardedRun(tmp_path, 0, IMAGES, BATCH + 1, MEAN_SCHEMA)
        with pytest.raises(ShardRecordError, match="another run's"):
            parse_shard(encode_line(self.record, other.key), "s", run, run.key)

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (b"\xff\xfe\n", "not a JSON line"),
            (b"{not json\n", "not a JSON line"),
            (b"[1, 2]\n", "'record' and 'sha256' only"),
            (b'{"record": 1, "sha256": "x"}\n', "not a JSON object"),
            (b'{"record": {"index": 1}, "sha256": "x"}\n', "missing ['batch_mean']"),
            (b'{"record": {"index": true, "batch_mean": 0.5}, "sha256": "x"}\n', "'index' must be int"),
            (b'{"record": {"index": 99, "batch_mean": 0.5}, "sha256": "x"}\n', "outside the run's range"),
            (b'{"record": {"index": 1, "batch_mean": NaN}, "sha256": "x"}\n', "not finite"),
            (b"\n", "not a JSON line"),
        ],
    )
    def test_a_damaged_line_is_a_clear_error_not_a_crash(self, tmp_path: Path, line: bytes, message) -> None:
        run = mean_run(tmp_path)
        with pytest.raises(ShardRecordError, match=re.escape(message)):
            parse_shard(line, "shard-1-of-2.jsonl", run, run.key)

    def test_an_attack_record_whose_fields_contradict_each_other_is_refused(self, tmp_path: Path) -> None:
        run = attack_run(tmp_path)
        record = {
            "index": 0, "label": 3, "clean_prediction": 3, "adversarial_prediction": 5, "robust": True,
            "linf": 0.1,
        }  # fmt: skip
        with pytest.raises(ShardRecordError, match="'robust' contradicts"):
            parse_shard(encode_line(record, run.key), "s", run, run.key)
        with pytest.raises(ShardRecordError, match="outside"):
            parse_shard(encode_line({**record, "robust": False, "linf": 0.2}, run.key), "s", run, run.key)

    def test_an_unterminated_last_line_is_a_cut_write_and_is_left_out(self, tmp_path: Path) -> None:
        run = mean_run(tmp_path)
        line = encode_line(self.record, run.key)
        lines, torn = parse_shard(line + line[:20], "s", run, run.key)
        assert lines == [(1, self.record)] and torn

    def test_an_index_recorded_twice_must_be_recorded_identically(self, tmp_path: Path) -> None:
        run = mean_run(tmp_path)
        same = encode_line(self.record, run.key)
        records, _ = collect({"a.jsonl": same, "b.jsonl": same}, run, run.key)
        assert records == {3: self.record}
        other = encode_line({**self.record, "batch_mean": 0.75}, run.key)
        with pytest.raises(
            ShardRecordError, match=r"index 3 is recorded differently in a.jsonl line 1 and b"
        ):
            collect({"a.jsonl": same, "b.jsonl": other}, run, run.key)

    def test_the_merge_refuses_a_range_with_images_missing(self, tmp_path: Path) -> None:
        run = mean_run(tmp_path)
        with pytest.raises(ShardRecordError, match=r"19 images of \[0, 20\) have no record: 0, 1, 2"):
            merge({3: self.record}, run)


class TestWilsonInterval:
    @pytest.mark.parametrize(
        ("successes", "trials", "expected"),
        [(10, 20, (0.2993, 0.7007)), (0, 10, (0.0, 0.2775)), (88, 100, (0.8019, 0.9300))],
    )
    def test_known_intervals(self, successes: int, trials: int, expected: tuple[float, float]) -> None:
        assert wilson_interval(successes, trials) == pytest.approx(expected, abs=1e-4)

    def test_no_trials_is_refused(self) -> None:
        with pytest.raises(ValueError, match="trials > 0"):
            wilson_interval(0, 0)


class TestOneProcess:
    def test_a_run_merges_every_image_in_order_and_summarises_apart(self, tmp_path: Path, reference) -> None:
        lines = [json.loads(line) for line in reference.splitlines()]
        assert [line["index"] for line in lines] == list(range(IMAGES))
        assert set(lines[0]) == {
            "index",
            "label",
            "clean_prediction",
            "adversarial_prediction",
            "robust",
            "linf",
        }
        outcome = run_alone(attack_run(tmp_path / "again"), summarise=robust_summary, command=["x", "--y"])
        assert outcome.results.read_bytes() == reference  # deterministic
        summary = json.loads((tmp_path / "again" / SUMMARY_FILE).read_text())
        assert summary["results"]["records"] == IMAGES and summary["command"] == ["x", "--y"]
        assert summary["run"]["settings"] == {"attack": "pgd", "steps": 2}
        robust = summary["summary"]
        assert robust["robust_correct"] == sum(line["robust"] for line in lines)
        assert robust["robust_accuracy"] <= robust["clean_accuracy"] < 1  # some labels are wrong
        low, high = robust["robust_accuracy_wilson_95"]
        assert low <= robust["robust_accuracy"] <= high

    def test_a_run_interrupted_after_two_batches_and_resumed_gives_the_same_file(
        self, tmp_path: Path, reference
    ) -> None:
        model, _, _ = tiny_set()
        evaluate, calls = pgd_evaluation(model), []

        def dies_on_the_third_batch(images, labels, indices):
            calls.append(indices)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return evaluate(images, labels, indices)

        run = attack_run(tmp_path / "run")
        with pytest.raises(KeyboardInterrupt):
            run_alone(run, dies_on_the_third_batch)
        assert len(shard_lines(run.out)) == 2 * BATCH  # both finished batches were kept
        resumed = []
        run_alone(run, resume=True, progress=resumed.append)
        assert [step.evaluated for step in resumed] == [False, False, True, True]
        assert (run.out / RESULTS_FILE).read_bytes() == reference

    def test_a_cut_last_line_is_cut_off_and_its_batch_evaluated_again(
        self, tmp_path: Path, reference
    ) -> None:
        run = attack_run(tmp_path / "run")
        run_alone(run)
        lines = shard_lines(run.out)
        # A kill during the second batch's write: its first 2 lines landed, the third only in part.
        (run.out / SHARDS_DIR / "shard-0-of-1.jsonl").write_bytes(b"".join(lines[:8]) + lines[8][:30])
        (run.out / RESULTS_FILE).unlink()
        steps = []
        run_alone(run, resume=True, progress=steps.append)
        assert [step.evaluated for step in steps] == [False, True, True, True]
        assert shard_lines(run.out)[8] == lines[8]  # the torn fragment is gone, not glued to a line
        assert (run.out / RESULTS_FILE).read_bytes() == reference

    def test_a_process_killed_mid_run_loses_at_most_one_batch_and_resumes_to_the_same_file(
        self, tmp_path: Path, reference
    ) -> None:
        run = attack_run(tmp_path / "run")
        process = torch.multiprocessing.get_context("spawn").Process(target=_slow_run, args=(str(run.out),))
        process.start()
        try:
            shard = run.out / SHARDS_DIR / "shard-0-of-1.jsonl"
            deadline = time.monotonic() + 60
            while (not shard.exists() or shard.read_bytes().count(b"\n") < 2 * BATCH) and process.is_alive():
                assert time.monotonic() < deadline, "the child never wrote two batches"
                time.sleep(0.05)
            process.kill()  # SIGKILL: no handler, no flush, no clean-up
        finally:
            process.join(10)
        assert process.exitcode == -9
        kept = shard.read_bytes().count(b"\n")
        assert kept >= 2 * BATCH and kept % BATCH == 0  # whole batches only; the one under way is lost
        run_alone(run, resume=True)
        assert (run.out / RESULTS_FILE).read_bytes() == reference


class TestRefusals:
    def test_a_used_folder_needs_resume(self, tmp_path: Path) -> None:
        run_alone(attack_run(tmp_path))
        with pytest.raises(ShardedRunError, match="already holds a run; pass --resume"):
            run_alone(attack_run(tmp_path))

    def test_resuming_with_other_settings_names_what_differs(self, tmp_path: Path) -> None:
        run_alone(attack_run(tmp_path))
        other = ShardedRun(
            tmp_path, 0, IMAGES, BATCH, attack_record_schema(EPS), {"attack": "pgd", "steps": 3}
        )
        with pytest.raises(ShardedRunError, match=r"differs from the stored one in settings\.steps$"):
            run_alone(other, resume=True)

    def test_shards_without_run_json_are_refused(self, tmp_path: Path) -> None:
        run_alone(attack_run(tmp_path))
        (tmp_path / "run.json").unlink()
        with pytest.raises(ShardedRunError, match=r"holds shards but .*run\.json is missing"):
            run_alone(attack_run(tmp_path), resume=True)

    def test_a_tampered_shard_line_is_refused_on_resume(self, tmp_path: Path) -> None:
        run_alone(attack_run(tmp_path))
        shard = tmp_path / SHARDS_DIR / "shard-0-of-1.jsonl"
        lines = shard.read_bytes().splitlines(keepends=True)
        line = json.loads(lines[4])
        record = line["record"]  # made robust, consistently, so only the checksum can tell
        record.update(adversarial_prediction=record["label"], clean_prediction=record["label"], robust=True)
        lines[4] = json.dumps(line).encode() + b"\n"
        shard.write_bytes(b"".join(lines))
        with pytest.raises(
            ShardRecordError, match=r"shard-0-of-1\.jsonl line 5: the checksum does not match"
        ):
            run_alone(attack_run(tmp_path), resume=True)

    def test_a_batch_function_that_breaks_the_contract_is_refused(self, tmp_path: Path) -> None:
        def one_short(images, labels, indices):
            return batch_mean(images, labels, indices)[:-1]

        def wrong_index(images, labels, indices):
            return [{**record, "index": IMAGES - 1} for record in batch_mean(images, labels, indices)]

        with pytest.raises(ShardRecordError, match="returned 5 records for 6 images"):
            run_alone(mean_run(tmp_path / "a"), one_short)
        with pytest.raises(ShardRecordError, match="record for index 19 where 0 was evaluated"):
            run_alone(mean_run(tmp_path / "b"), wrong_index)

    def test_an_evaluation_that_changes_its_mind_is_caught_when_a_batch_is_redone(
        self, tmp_path: Path
    ) -> None:
        run = mean_run(tmp_path)
        run_alone(run, batch_mean)
        shard = tmp_path / SHARDS_DIR / "shard-0-of-1.jsonl"
        shard.write_bytes(b"".join(shard.read_bytes().splitlines(keepends=True)[:-1]))  # image 19 lost

        def drifted(images, labels, indices):
            return [{**r, "batch_mean": r["batch_mean"] + 1} for r in batch_mean(images, labels, indices)]

        with pytest.raises(ShardRecordError, match="index 18: evaluated again, it gives a different record"):
            run_alone(run, drifted, resume=True)

    def test_an_attack_leaving_its_budget_stops_the_run(self, tmp_path: Path) -> None:
        from digitguard.attacks.base import Attack
        from digitguard.errors import PerturbationBudgetError

        class TooFar(Attack):
            name = "too-far"

            def __call__(self, images, labels):
                return (images + 2 * self.eps).clamp(0, 1)

        model, _, _ = tiny_set()
        with pytest.raises(PerturbationBudgetError):
            run_alone(attack_run(tmp_path), attack_evaluation(model, TooFar(model, EPS)))


def _slow_run(out: str) -> None:
    """A single-process run that takes its time per batch, to be killed part-way."""
    torch.set_num_threads(1)
    model, images, labels = tiny_set()
    evaluate = pgd_evaluation(model)

    def slowly(images, labels, indices):
        time.sleep(0.3)
        return evaluate(images, labels, indices)

    run_sharded(attack_run(Path(out)), images, labels, slowly, Cluster())


def _two_process_rank(rank: int, init_file: str, out: str) -> None:
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # both ranks on loopback, whatever the hostname
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    model, images, labels = tiny_set()
    cluster = Cluster(rank, 2)
    run_sharded(attack_run(Path(out) / "attack"), images, labels, pgd_evaluation(model), cluster)
    run_sharded(mean_run(Path(out) / "mean"), images, labels, batch_mean, cluster)
    cluster.leave(model)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both evaluations run by two gloo processes; the folder holding ``attack/`` and ``mean/``."""
    out = tmp_path_factory.mktemp("two-processes")
    context = torch.multiprocessing.get_context("spawn")
    ranks = [
        context.Process(target=_two_process_rank, args=(rank, str(out / "init"), str(out))) for rank in (0, 1)
    ]
    for process in ranks:
        process.start()
    try:
        for process in ranks:
            process.join(120)
        assert [process.exitcode for process in ranks] == [0, 0]
    finally:  # a hung rank must not outlive the test
        for process in ranks:
            if process.is_alive():
                process.kill()
                process.join(10)
    return out


class TestTwoProcesses:
    def test_two_processes_write_one_shard_each_and_merge_the_same_bytes_as_one(
        self, two_process_run: Path, reference: bytes
    ) -> None:
        shards = sorted(path.name for path in (two_process_run / "attack" / SHARDS_DIR).iterdir())
        assert shards == ["shard-0-of-2.jsonl", "shard-1-of-2.jsonl"]
        assert (two_process_run / "attack" / RESULTS_FILE).read_bytes() == reference

    def test_a_batch_dependent_evaluation_agrees_too_because_batches_are_global(
        self, two_process_run: Path, tmp_path: Path
    ) -> None:
        run_alone(mean_run(tmp_path), batch_mean)
        assert (two_process_run / "mean" / RESULTS_FILE).read_bytes() == (
            tmp_path / RESULTS_FILE
        ).read_bytes()

    def test_a_two_process_run_cut_short_is_finished_by_one_process(
        self, two_process_run: Path, tmp_path: Path, reference: bytes
    ) -> None:
        out = tmp_path / "run"
        shutil.copytree(two_process_run / "attack", out)
        (out / RESULTS_FILE).unlink()
        (out / SUMMARY_FILE).unlink()
        rank1 = out / SHARDS_DIR / "shard-1-of-2.jsonl"
        rank1.write_bytes(rank1.read_bytes().splitlines(keepends=True)[0])  # rank 1 died early
        steps = []
        run_alone(attack_run(out), resume=True, progress=steps.append)
        assert [(step.batch, step.evaluated) for step in steps] == [
            (range(0, 6), False), (range(6, 12), True), (range(12, 18), False), (range(18, 20), True),
        ]  # fmt: skip
        assert sorted(p.name for p in (out / SHARDS_DIR).iterdir())[0] == "shard-0-of-1.jsonl"
        assert (out / RESULTS_FILE).read_bytes() == reference


class TestCommand:
    args: ClassVar[list[str]] = ["--attack", "fgsm", "--eps", "0.1", "--first", "10", "--batch-size", "4"]

    def test_it_prints_robust_accuracy_with_its_wilson_interval(self, mnist_dir, tmp_path, capsys) -> None:
        out = tmp_path / "out"
        base = ["attack-sharded", str(REPO_ROOT / "models" / "basic"), *self.args, "--out", str(out)]
        code, stdout, err = run_cli([*base, "--data-dir", str(mnist_dir)], capsys)
        assert code == 0, err
        assert "95% Wilson interval [" in stdout and "robust accuracy" in stdout
        assert "[rank 0/1] images 8–9 evaluated" in err
        summary = json.loads((out / SUMMARY_FILE).read_text())
        assert summary["run"]["settings"]["attack"] == "fgsm" and summary["run"]["stop"] == 10
        code, _, err = run_cli([*base, "--data-dir", str(mnist_dir)], capsys)
        assert code == 2 and "pass --resume" in err
        code, stdout, err = run_cli([*base, "--resume", "--quiet", "--data-dir", str(mnist_dir)], capsys)
        assert code == 0 and err == "" and "robust accuracy" in stdout

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            (["--first", "5", "--stop", "6"], "not both"),
            ([], "say which test images"),
            (["--first", "5", "--attack", "nope"], "unknown attack 'nope'"),
            (["--first", "5", "--eps", "2"], "must be in (0, 1]"),
        ],
    )
    def test_bad_arguments_exit_with_status_2(self, mnist_dir, tmp_path, capsys, extra, message) -> None:
        base = ["attack-sharded", str(REPO_ROOT / "models" / "basic"), "--attack", "fgsm", "--eps", "0.1"]
        code, _, err = run_cli([*base, *extra, "--out", str(tmp_path), "--data-dir", str(mnist_dir)], capsys)
        assert code == 2 and message in err

    def test_under_torchrun_two_processes_merge_what_one_merges(self, mnist_dir, tmp_path, capsys) -> None:
        import socket
        import subprocess
        import sys

        base = ["attack-sharded", str(REPO_ROOT / "models" / "basic"), *self.args, "--quiet"]
        code, _, err = run_cli([*base, "--out", str(tmp_path / "one"), "--data-dir", str(mnist_dir)], capsys)
        assert code == 0, err
        with socket.socket() as probe:  # an explicit free port (see tests/training/test_adversarial.py)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "--master_addr", "127.0.0.1", "--master_port", str(port),
            "-m", "digitguard", *base, "--out", str(tmp_path / "two"), "--data-dir", str(mnist_dir),
        ]  # fmt: skip
        environment = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=180, check=False, env=environment
        )
        assert finished.returncode == 0, finished.stderr[-3000:]
        assert finished.stdout.count("robust accuracy") == 1  # rank 0 alone reports
        assert "2 process(es)" in finished.stdout
        one, two = ((tmp_path / name / RESULTS_FILE).read_bytes() for name in ("one", "two"))
        assert one == two
