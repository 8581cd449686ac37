"""The click adapter: exit statuses and messages for each kind of refusal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from digitguard.cli import cli, main
from tests.conftest import KeyPair
from tests.models.test_artifact import manifest_for


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def signed_model(tmp_path: Path, seed_cnn, trusted_key: KeyPair) -> Path:
    from digitguard.models.artifact import write_signed_artifact

    return write_signed_artifact(tmp_path / "model", seed_cnn, manifest_for(seed_cnn), trusted_key.private)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


class TestVerify:
    def test_a_signed_model_verifies_with_its_key_trusted(
        self, signed_model: Path, trusted_key: KeyPair, capsys
    ) -> None:
        main(["verify", str(signed_model), "--trust", str(trusted_key.trust_dir)])
        assert "verified" in capsys.readouterr().out

    def test_without_the_key_in_the_trust_store_exit_status_is_3(self, signed_model: Path, capsys) -> None:
        code, _, err = run_main(["verify", str(signed_model)], capsys)
        assert code == 3
        assert "error:" in err and "not in the trust store" in err
        assert "Traceback" not in err

    def test_trust_directories_come_from_the_environment_too(
        self, signed_model: Path, trusted_key: KeyPair, monkeypatch, capsys
    ) -> None:
        monkeypatch.setenv("DIGITGUARD_TRUST_DIRS", str(trusted_key.trust_dir))
        main(["verify", str(signed_model)])
        assert "verified" in capsys.readouterr().out


class TestDataCommands:
    def test_verify_accepts_the_shared_copy(self, mnist_dir: Path, capsys) -> None:
        main(["data", "verify", "--data-dir", str(mnist_dir)])
        assert capsys.readouterr().out.count("ok  ") == 4

    def test_verify_of_a_corrupt_file_exits_2_naming_the_file(
        self, mnist_dir: Path, tmp_path: Path, capsys
    ) -> None:
        data = tmp_path / "data"
        shutil.copytree(mnist_dir, data)
        (data / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
        code, _, err = run_main(["data", "verify", "--data-dir", str(data)], capsys)
        assert code == 2
        assert "t10k-labels-idx1-ubyte.gz: SHA-256 mismatch" in err

    def test_fetch_uses_the_mirror_option(self, mnist_dir: Path, tmp_path: Path, capsys) -> None:
        main(["data", "fetch", "--data-dir", str(tmp_path / "d"), "--mirror", mnist_dir.as_uri()])
        assert len(list((tmp_path / "d").iterdir())) == 4

    def test_fetch_with_only_bad_mirrors_exits_2_and_writes_nothing(self, tmp_path: Path, capsys) -> None:
        code, _, err = run_main(
            ["data", "fetch", "--data-dir", str(tmp_path / "d"), "--mirror", "file:///nope/"], capsys
        )
        assert code == 2
        assert "no mirror delivered" in err
        assert list((tmp_path / "d").iterdir()) == []


class TestKeysAndSigning:
    def test_keygen_then_sign_then_verify(self, tmp_path: Path, signed_model: Path, capsys) -> None:
        main(["keygen", "--private", str(tmp_path / "k.pem"), "--public", str(tmp_path / "trust" / "k.pub")])
        assert oct((tmp_path / "k.pem").stat().st_mode & 0o777) == "0o600"
        main(["sign", str(signed_model), "--key", str(tmp_path / "k.pem")])
        main(["verify", str(signed_model), "--trust", str(tmp_path / "trust")])
        assert "verified" in capsys.readouterr().out

    def test_keygen_refuses_to_overwrite(self, tmp_path: Path, capsys) -> None:
        (tmp_path / "k.pem").write_text("existing")
        code, _, err = run_main(
            ["keygen", "--private", str(tmp_path / "k.pem"), "--public", str(tmp_path / "k.pub")], capsys
        )
        assert code == 2 and "refusing to overwrite" in err
        assert (tmp_path / "k.pem").read_text() == "existing"


class TestTrainAndEvaluateArguments:
    def test_train_without_a_signing_key_is_a_usage_error(self, runner: CliRunner, tmp_path: Path) -> None:
        result = runner.invoke(cli, ["train", "--out", str(tmp_path / "m")])
        assert result.exit_code == 2
        assert "--key" in result.output

    def test_train_with_a_missing_key_file_exits_2_before_training(
        self, tmp_path: Path, mnist_dir, capsys
    ) -> None:
        code, _, err = run_main(
            [
                "train",
                "--data-dir",
                str(mnist_dir),
                "--out",
                str(tmp_path / "m"),
                "--key",
                str(tmp_path / "absent.pem"),
            ],
            capsys,
        )
        assert code == 2 and "signing key not found" in err

    def test_evaluate_json_prints_accuracy_and_model_hash(
        self, signed_model: Path, trusted_key: KeyPair, mnist_dir: Path, capsys
    ) -> None:
        main(
            [
                "evaluate",
                str(signed_model),
                "--data-dir",
                str(mnist_dir),
                "--trust",
                str(trusted_key.trust_dir),
                "--json",
            ]
        )
        report = json.loads(capsys.readouterr().out)
        assert 0 <= report["accuracy"] <= 1
        assert len(report["model_sha256"]) == 64
        assert len(report["confusion_matrix"]) == 10
        assert sum(map(sum, report["confusion_matrix"])) == 10_000


class TestKeysCommands:
    def test_create_list_revoke(self, tmp_path: Path, capsys) -> None:
        db = f"sqlite:///{tmp_path / 'keys.db'}"
        main(["keys", "create", "--role", "reviewer", "--name", "Rita", "--db", db])
        token = capsys.readouterr().out.strip()
        assert token.startswith("dgk_")
        main(["keys", "list", "--db", db, "--json"])
        listed = json.loads(capsys.readouterr().out)
        assert [(k["name"], k["role"], k["revoked_at"]) for k in listed] == [("Rita", "reviewer", None)]
        assert token not in json.dumps(listed)
        main(["keys", "revoke", listed[0]["key_id"], "--db", db])
        main(["keys", "list", "--db", db, "--json"])
        assert json.loads(capsys.readouterr().out.splitlines()[-1])[0]["revoked_at"] is not None

    def test_revoking_an_unknown_key_exits_2(self, tmp_path: Path, capsys) -> None:
        code, _, err = run_main(["keys", "revoke", "nope", "--db", f"sqlite:///{tmp_path / 'k.db'}"], capsys)
        assert code == 2 and "no key with id 'nope'" in err

    def test_an_unknown_role_is_a_usage_error(self, runner: CliRunner) -> None:
        result = runner.invoke(cli, ["keys", "create", "--role", "root", "--name", "x"])
        assert result.exit_code == 2


class TestCommandLineChangesAreAudited:
    def test_key_commands_append_to_the_trail(self, tmp_path: Path, monkeypatch, capsys) -> None:
        from digitguard.audit.store import AuditStore, audit_engine

        monkeypatch.setenv("DIGITGUARD_INSTANCE_DIR", str(tmp_path / "instance"))
        db = f"sqlite:///{tmp_path / 'state.db'}"
        main(["keys", "create", "--role", "admin", "--name", "ops", "--db", db])
        key_id = capsys.readouterr().out.strip().split("_")[1]
        main(["keys", "revoke", key_id, "--db", db])
        trail = AuditStore(audit_engine(db))
        records = [json.loads(row.body) for row in trail.rows()]
        assert [(r["kind"], r["details"]["key_id"]) for r in records] == [
            ("key.created", key_id),
            ("key.revoked", key_id),
        ]
        assert records[0]["principal"].startswith("cli:")
        assert trail.verify({}).ok

    def test_a_training_run_can_be_recorded(
        self, tmp_path: Path, mnist_dir: Path, trusted_key, monkeypatch, capsys
    ):
        from digitguard.audit.store import AuditStore, audit_engine

        monkeypatch.setenv("DIGITGUARD_INSTANCE_DIR", str(tmp_path / "instance"))
        db = f"sqlite:///{tmp_path / 'trail.db'}"
        main(
            [
                "train",
                "--data-dir",
                str(mnist_dir),
                "--out",
                str(tmp_path / "m"),
                "--key",
                str(trusted_key.private),
                "--epochs",
                "1",
                "--limit",
                "600",
                "--validation-size",
                "100",
                "--no-augment",
                "--quiet",
                "--audit-db",
                db,
            ]
        )
        (row,) = AuditStore(audit_engine(db)).rows()
        record = json.loads(row.body)
        assert record["kind"] == "training.finished"
        assert record["details"]["data"]["verified"] is True
        assert len(record["details"]["weights_sha256"]) == 64
