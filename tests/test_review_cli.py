"""``digitguard review list|export``: the queue from the command line, refusals with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from digitguard.audit.store import AuditStore, audit_engine
from digitguard.cli import main
from digitguard.data.idx import read_pair
from digitguard.migrations import migrate
from digitguard.review.queue import Decision, Reason
from digitguard.review.store import ReviewStore
from tests.review.conftest import a_sample
from tests.test_cli import run_main


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A queue with one labelled, one rejected, one pending and one flagged-with-a-suggestion item."""
    monkeypatch.setenv("DIGITGUARD_INSTANCE_DIR", str(tmp_path / "instance"))
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = sa.create_engine(url)
    migrate(engine)
    store = ReviewStore(engine)
    labelled, rejected = store.enqueue(a_sample()), store.enqueue(a_sample())
    store.enqueue(a_sample())
    store.enqueue(a_sample(Reason.FLAGGED, digit=1, suggested_label=7))
    store.decide(labelled.id, Decision(4, "key:reviewer", "t"))
    store.decide(rejected.id, Decision(None, "key:reviewer", "t"))
    engine.dispose()
    return url


class TestExport:
    def test_writes_reviewed_samples_and_records_the_export(
        self, database: str, tmp_path: Path, capsys
    ) -> None:
        out = tmp_path / "export"
        main(["review", "export", "--db", database, "--out", str(out)])
        assert "exported 1 samples" in capsys.readouterr().out
        _, labels = read_pair(out / "train-images-idx3-ubyte", out / "train-labels-idx1-ubyte")
        assert labels.tolist() == [4]
        trail = AuditStore(audit_engine(database))
        [record] = [json.loads(row.body) for row in trail.rows()]
        assert record["kind"] == "review.exported" and record["principal"].startswith("cli:")
        assert record["details"]["count"] == 1 and trail.verify({}).ok

    def test_flagged_unreviewed_samples_only_when_asked(self, database: str, tmp_path: Path, capsys) -> None:
        main(
            [
                "review",
                "export",
                "--db",
                database,
                "--out",
                str(tmp_path / "o"),
                "--include-flagged-unreviewed",
                "yes",
            ]
        )
        _, labels = read_pair(
            tmp_path / "o" / "train-images-idx3-ubyte", tmp_path / "o" / "train-labels-idx1-ubyte"
        )
        assert labels.tolist() == [4, 7]
        manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
        assert manifest["label_sources"] == {"reviewer": 1, "user": 1}

    def test_a_non_empty_output_directory_is_refused_with_status_2(
        self, database: str, tmp_path: Path, capsys
    ) -> None:
        out = tmp_path / "taken"
        out.mkdir()
        (out / "data").write_text("keep")
        code, _, err = run_main(["review", "export", "--db", database, "--out", str(out)], capsys)
        assert code == 2 and "exists and is not an empty directory" in err
        assert [p.name for p in out.iterdir()] == ["data"]

    def test_nothing_reviewed_is_refused_with_status_2(self, tmp_path: Path, capsys) -> None:
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        code, _, err = run_main(["review", "export", "--db", url, "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and "nothing to export" in err and not (tmp_path / "o").exists()


class TestList:
    def test_pending_items_newest_first(self, database: str, capsys) -> None:
        main(["review", "list", "--db", database])
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2 and "flagged" in lines[0] and "abstained" in lines[1]

    def test_all_items_as_json(self, database: str, capsys) -> None:
        main(["review", "list", "--db", database, "--status", "all", "--json"])
        entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [e["status"] for e in entries] == ["pending", "pending", "not_a_digit", "labelled"]
        assert entries[-1]["label"] == 4 and entries[-1]["reviewer"] == "key:reviewer"
        assert entries[0]["suggested_label"] == 7
