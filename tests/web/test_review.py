"""The human review queue end to end: abstentions and flags enter it, reviewers label, exports read back."""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from digitguard.audit.record import AuditRecord, parse_record
from digitguard.cli import main
from digitguard.data.idx import read_pair
from digitguard.inference.predictor import Abstention
from digitguard.review.queue import Reason, ReviewItem, Status, as_grid, input_bytes
from digitguard.review.store import ReviewStore
from digitguard.security.keys import Role
from digitguard.web import create_app
from tests.review.conftest import a_sample
from tests.web.servers import postgres_schema
from tests.web.test_access import PIXELS, bearer, csrf_from, sign_in
from tests.web.test_api import drawing_png
from tests.web.test_openapi import assert_matches_schema


@pytest.fixture
def app_config(app_config: dict) -> dict:
    # Not about the inference budget: the explanation ?details=1 computes may be slow on a busy machine.
    return {**app_config, "INFERENCE_BUDGET_S": 60.0}


@pytest.fixture
def abstaining(app_config: dict) -> Flask:
    """Abstains on everything: every prediction enters the queue."""
    return create_app({**app_config, "ABSTAIN_BELOW": 1.0})


@pytest.fixture
def answering(app_config: dict) -> Flask:
    """Answers everything (a second replica on the same database): only flags enter the queue."""
    return create_app({**app_config, "ABSTAIN_BELOW": 0.0})


def queue(app: Flask) -> ReviewStore:
    return app.extensions["digitguard.review"]


def records(app: Flask, kind: str | None = None) -> list[AuditRecord]:
    every = [parse_record(row.body) for row in app.extensions["digitguard.trail"].rows()]
    return [r for r in every if kind is None or r.kind == kind]


def token(app: Flask, role: Role) -> str:
    return app.extensions["digitguard.keys"].create(f"{role.value} user", role).token


def key_label(token: str) -> str:
    return f"key:{token.split('_')[1]}"


def pending(app: Flask) -> list[ReviewItem]:
    return queue(app).items(Status.PENDING, limit=100)


class TestAbstentionsEnterTheQueue:
    def test_an_abstained_prediction_is_queued_with_its_input_and_answer(self, abstaining: Flask) -> None:
        answer = abstaining.test_client().post("/api/v1/predict", json=PIXELS).get_json()
        assert answer["abstained"] is True
        [item] = pending(abstaining)
        sample = item.sample
        assert sample.request_id == answer["request_id"] and sample.reason == Reason.ABSTAINED
        assert sample.input == input_bytes(np.asarray(PIXELS["pixels"]))
        assert sample.digit is None and list(sample.probabilities) == answer["probabilities"]
        assert sample.confidence == answer["confidence"] and sample.model_sha256 == answer["model_sha256"]
        assert sample.abstention_reason == Abstention.LOW_CONFIDENCE == answer["reason"]
        [record] = records(abstaining, "prediction")
        assert record.details["input_u8_sha256"] == sample.input_sha256
        assert record.details["reason"] == "low_confidence"

    def test_a_not_a_digit_abstention_is_queued_and_shown_with_its_reason(
        self, app_config: dict, gate_model_dir
    ) -> None:
        gated = create_app({**app_config, "ABSTAIN_BELOW": 0.0, "GATE_DIR": str(gate_model_dir(10))})
        answer = gated.test_client().post("/api/v1/predict", json=PIXELS).get_json()
        assert answer["reason"] == "not_a_digit"
        [item] = pending(gated)
        assert item.sample.abstention_reason == Abstention.NOT_A_DIGIT
        client, headers = gated.test_client(), bearer(token(gated, Role.REVIEWER))
        [listed] = client.get("/api/v1/review/items", headers=headers).get_json()["items"]
        assert listed["abstention_reason"] == "not_a_digit"
        assert listed["abstention_text"] == "this doesn't look like a digit"
        sign_in(client, token(gated, Role.REVIEWER))
        assert "this doesn&#39;t look like a digit" in client.get("/review").get_data(as_text=True)
        page = client.get(f"/review/{item.id}").get_data(as_text=True)
        assert re.search(r'<dd id="why-queued">this doesn&#39;t look like a digit</dd>', page)

    @pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
    def test_the_reason_is_the_same_in_the_answer_the_record_and_the_queue(
        self, app_config: dict, gate_model_dir, backend: str
    ) -> None:
        with ExitStack() as stack:
            url = (
                app_config["DATABASE_URL"] if backend == "sqlite" else stack.enter_context(postgres_schema())
            )
            app = create_app({**app_config, "DATABASE_URL": url, "GATE_DIR": str(gate_model_dir(10))})
            stack.callback(app.extensions["digitguard.trail"].engine.dispose)
            stack.callback(app.extensions["digitguard.engine"].dispose)
            answer = app.test_client().post("/api/v1/predict", json=PIXELS).get_json()
            [record] = records(app, "prediction")
            [item] = pending(app)
            assert (
                answer["reason"] == record.details["reason"] == item.sample.abstention_code == "not_a_digit"
            )
            assert answer["gate_sha256"] == record.details["gate_sha256"] is not None
            assert item.sample.request_id == answer["request_id"] == record.request_id

    def test_an_answered_prediction_is_not_queued(self, answering: Flask) -> None:
        assert answering.test_client().post("/api/v1/predict", json=PIXELS).get_json()["abstained"] is False
        assert pending(answering) == []

    def test_an_abstention_the_queue_cannot_take_is_not_returned_nor_recorded(
        self, abstaining: Flask
    ) -> None:
        with abstaining.extensions["digitguard.engine"].begin() as connection:
            connection.exec_driver_sql("DROP TABLE review_items")
        response = abstaining.test_client().post("/api/v1/predict", json=PIXELS)
        assert response.status_code == 503 and response.get_json()["error"] == "audit_unavailable"
        assert "digit" not in response.get_json()
        assert records(abstaining, "prediction") == []  # one transaction: no record without its queue entry


def predict_with_details(client: FlaskClient, headers: dict | None = None) -> dict:
    response = client.post(
        "/api/v1/predict?details=1", data=drawing_png(), content_type="image/png", headers=headers or {}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def flag(client: FlaskClient, request_id: str, pixels, headers: dict | None = None, **extra):
    return client.post(
        f"/api/v1/predictions/{request_id}/flag", json={"pixels": pixels, **extra}, headers=headers or {}
    )


class TestFlagging:
    def test_the_page_flow_flags_an_answer_with_the_input_it_was_shown(self, answering: Flask) -> None:
        client = answering.test_client()
        answer = predict_with_details(client)  # what the page does: a PNG, ?details=1
        response = flag(client, answer["request_id"], answer["input"], label=4)
        assert response.status_code == 201
        assert response.get_json() == {
            "request_id": answer["request_id"],
            "reason": "flagged",
            "status": "pending",
            "suggested_label": 4,
        }
        assert_matches_schema(response.get_json(), "Flagged")
        [item] = pending(answering)
        assert item.sample.reason == Reason.FLAGGED and item.sample.digit == answer["digit"]
        assert item.sample.suggested_label == 4
        assert item.sample.input == input_bytes(np.asarray(answer["input"]))
        [flagged] = records(answering, "prediction.flagged")
        [predicted] = records(answering, "prediction")
        assert flagged.details["prediction_request_id"] == answer["request_id"]
        assert flagged.principal == predicted.principal

    def test_one_flag_per_prediction(self, answering: Flask) -> None:
        client = answering.test_client()
        answer = predict_with_details(client)
        assert flag(client, answer["request_id"], answer["input"]).status_code == 201
        again = flag(client, answer["request_id"], answer["input"], label=2)
        assert again.status_code == 409 and again.get_json()["error"] == "already_queued"
        assert len(pending(answering)) == 1 and pending(answering)[0].sample.suggested_label is None
        assert len(records(answering, "prediction.flagged")) == 1

    def test_an_abstention_is_already_queued(self, abstaining: Flask) -> None:
        client = abstaining.test_client()
        answer = client.post("/api/v1/predict", json=PIXELS).get_json()
        assert flag(client, answer["request_id"], PIXELS["pixels"]).status_code == 409

    @pytest.mark.parametrize("request_id", [uuid.uuid4().hex, "not-a-request-id", "A" * 32])
    def test_an_unknown_request_id_is_refused(self, answering: Flask, request_id: str) -> None:
        response = flag(answering.test_client(), request_id, PIXELS["pixels"])
        assert response.status_code == 404 and response.get_json()["error"] == "unknown_prediction"
        assert pending(answering) == []

    def test_an_input_other_than_the_one_answered_is_refused(self, answering: Flask) -> None:
        client = answering.test_client()
        answer = predict_with_details(client)
        forged = np.asarray(answer["input"])
        forged[0, 0] = 1.0  # one pixel: another image, e.g. to plant a chosen sample in the training set
        response = flag(client, answer["request_id"], forged.tolist(), label=9)
        assert response.status_code == 422 and response.get_json()["error"] == "input_mismatch"
        assert pending(answering) == [] and records(answering, "prediction.flagged") == []

    def test_only_whoever_received_the_answer_may_flag_it(self, answering: Flask) -> None:
        client = answering.test_client()
        owner, other = token(answering, Role.PREDICT), token(answering, Role.PREDICT)
        answer = client.post("/api/v1/predict", json=PIXELS, headers=bearer(owner)).get_json()
        for headers in (bearer(other), {}):  # another key, and anonymous
            refused = flag(client, answer["request_id"], PIXELS["pixels"], headers)
            assert refused.status_code == 404 and refused.get_json()["error"] == "unknown_prediction"
        assert flag(client, answer["request_id"], PIXELS["pixels"], bearer(owner)).status_code == 201

    def test_a_flag_from_a_signed_in_page_needs_the_csrf_token(self, answering: Flask) -> None:
        client = answering.test_client()
        sign_in(client, token(answering, Role.REVIEWER))
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").get_data(as_text=True))[1]
        answer = predict_with_details(client, {"X-CSRF-Token": csrf})
        refused = flag(client, answer["request_id"], answer["input"])
        assert refused.status_code == 403 and refused.get_json()["error"] == "csrf_failed"
        assert flag(client, answer["request_id"], answer["input"], {"X-CSRF-Token": csrf}).status_code == 201

    def test_flags_are_rate_limited_like_predictions(self, app_config: dict) -> None:
        app = create_app({**app_config, "ABSTAIN_BELOW": 0.0, "ANONYMOUS_LIMIT": "2/minute"})
        client = app.test_client()
        answer = client.post("/api/v1/predict", json=PIXELS).get_json()
        statuses = [flag(client, answer["request_id"], PIXELS["pixels"]).status_code for _ in range(3)]
        assert statuses == [201, 409, 429]

    @pytest.mark.parametrize(
        ("body", "status", "code"),
        [
            ({"pixels": PIXELS["pixels"], "label": 10}, 422, "invalid_label"),
            ({"pixels": PIXELS["pixels"], "label": "seven"}, 422, "invalid_label"),
            ({"pixels": [[0.5] * 28] * 27}, 422, "invalid_pixels"),
            ({"pixels": [[0.0] * 28] * 28}, 422, "nothing_drawn"),
            ({"label": 3}, 400, "invalid_json"),
            ([1, 2], 400, "invalid_json"),
        ],
    )
    def test_malformed_flags_are_refused_with_stable_codes(
        self, answering: Flask, body: object, status: int, code: str
    ) -> None:
        client = answering.test_client()
        request_id = client.post("/api/v1/predict", json=PIXELS).get_json()["request_id"]
        response = client.post(f"/api/v1/predictions/{request_id}/flag", json=body)
        assert (response.status_code, response.get_json()["error"]) == (status, code)

    def test_a_flag_must_be_json(self, answering: Flask) -> None:
        response = answering.test_client().post(
            f"/api/v1/predictions/{uuid.uuid4().hex}/flag", data=b"x", content_type="text/plain"
        )
        assert response.status_code == 415


def review_page_csrf(client: FlaskClient, item_id: int) -> str:
    return csrf_from(client.get(f"/review/{item_id}").get_data(as_text=True))


class TestReviewing:
    def test_a_signed_in_reviewer_sees_the_item_and_records_its_label(self, abstaining: Flask) -> None:
        abstaining.test_client().post("/api/v1/predict", json=PIXELS)
        [item] = pending(abstaining)
        reviewer = token(abstaining, Role.REVIEWER)
        client = abstaining.test_client()
        sign_in(client, reviewer)
        listing = client.get("/review").get_data(as_text=True)
        assert f'href="/review/{item.id}"' in listing and "1 pending" in listing
        page = client.get(f"/review/{item.id}").get_data(as_text=True)
        assert f'src="/review/{item.id}/input.png"' in page and "not sure" in page
        assert "the model&#39;s confidence is below the threshold" in page  # why it was queued
        assert page.count("<meter") == 10 and 'name="label"' in page
        png = client.get(f"/review/{item.id}/input.png")
        assert png.mimetype == "image/png" and png.headers["Cache-Control"] == "no-store"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.data))), as_grid(item.sample.input))

        refused = client.post(f"/review/{item.id}", data={"label": "1"})  # no CSRF token
        assert refused.status_code == 403 and refused.get_json()["error"] == "csrf_failed"
        assert queue(abstaining).get(item.id).status == Status.PENDING
        done = client.post(
            f"/review/{item.id}", data={"label": "1", "csrf_token": review_page_csrf(client, item.id)}
        )
        assert done.status_code == 302 and done.headers["Location"].endswith("/review")

        decided = queue(abstaining).get(item.id)
        assert decided.decision is not None
        assert (decided.decision.label, decided.decision.reviewer) == (1, key_label(reviewer))
        [record] = records(abstaining, "review.decided")
        assert record.principal == key_label(reviewer)
        assert record.details["item_id"] == item.id and record.details["label"] == 1
        assert record.details["prediction_request_id"] == item.sample.request_id
        assert "Nothing to review" in client.get("/review").get_data(as_text=True)

    def test_a_reviewer_key_uses_the_api(self, answering: Flask) -> None:
        item = queue(answering).enqueue(a_sample())
        client, headers = answering.test_client(), bearer(token(answering, Role.REVIEWER))
        listed = client.get("/api/v1/review/items", headers=headers).get_json()
        assert_matches_schema(listed, "ReviewItemList")
        assert [i["id"] for i in listed["items"]] == [item.id] and listed["total"] == 1
        assert np.array_equal(
            np.asarray(listed["items"][0]["input"], dtype=np.uint8), as_grid(item.sample.input)
        )
        decided = client.post(
            f"/api/v1/review/items/{item.id}", json={"label": "not_a_digit"}, headers=headers
        )
        assert decided.status_code == 200
        assert_matches_schema(decided.get_json(), "ReviewDecided")
        assert decided.get_json()["item"]["status"] == "not_a_digit"
        again = client.post(f"/api/v1/review/items/{item.id}", json={"label": 4}, headers=headers)
        assert again.status_code == 409 and again.get_json()["error"] == "already_reviewed"
        assert queue(answering).get(item.id).status == Status.NOT_A_DIGIT
        assert [r.details["label"] for r in records(answering, "review.decided")] == ["not_a_digit"]
        assert [r.details["abstention_reason"] for r in records(answering, "review.decided")] == [None]
        rejected = client.get("/api/v1/review/items?status=not_a_digit", headers=headers).get_json()
        assert [i["id"] for i in rejected["items"]] == [item.id]

    def test_admins_may_review_too(self, answering: Flask) -> None:
        item = queue(answering).enqueue(a_sample())
        admin = token(answering, Role.ADMIN)
        response = answering.test_client().post(
            f"/api/v1/review/items/{item.id}", json={"label": 8}, headers=bearer(admin)
        )
        assert response.status_code == 200 and queue(answering).get(item.id).decision.reviewer == key_label(
            admin
        )

    @pytest.mark.parametrize(
        ("method", "path", "kwargs"),
        [
            ("GET", "/review", {}),
            ("GET", "/review/{id}", {}),
            ("GET", "/review/{id}/input.png", {}),
            ("POST", "/review/{id}", {"data": {"label": "3"}}),
            ("GET", "/api/v1/review/items", {}),
            ("POST", "/api/v1/review/items/{id}", {"json": {"label": 3}}),
        ],
    )
    def test_predict_keys_and_anonymous_callers_are_refused(
        self, answering: Flask, method: str, path: str, kwargs: dict
    ) -> None:
        item = queue(answering).enqueue(a_sample())
        client, url = answering.test_client(), path.format(id=item.id)
        predictor = bearer(token(answering, Role.PREDICT))
        assert client.open(url, method=method, headers=predictor, **kwargs).status_code == 403
        assert client.open(url, method=method, **kwargs).status_code == 401
        sign_in(client, token(answering, Role.PREDICT))  # a predict key cannot sign in to review either
        assert client.open(url, method=method, **kwargs).status_code in (401, 403)
        assert queue(answering).get(item.id).status == Status.PENDING
        assert records(answering, "review.decided") == []

    @pytest.mark.parametrize(
        ("path", "body", "status", "code"),
        [
            ("/api/v1/review/items/{id}", {"label": 10}, 422, "invalid_label"),
            ("/api/v1/review/items/{id}", {"label": True}, 422, "invalid_label"),
            ("/api/v1/review/items/{id}", {"verdict": 3}, 400, "invalid_json"),
            ("/api/v1/review/items/999999", {"label": 3}, 404, "unknown_item"),
            ("/api/v1/review/items/0", {"label": 3}, 404, "unknown_item"),
            ("/api/v1/review/items/abc", {"label": 3}, 404, "unknown_item"),
        ],
    )
    def test_bad_decisions_are_refused_with_stable_codes(
        self, answering: Flask, path: str, body: dict, status: int, code: str
    ) -> None:
        item = queue(answering).enqueue(a_sample())
        response = answering.test_client().post(
            path.format(id=item.id), json=body, headers=bearer(token(answering, Role.REVIEWER))
        )
        assert (response.status_code, response.get_json()["error"]) == (status, code)
        assert queue(answering).get(item.id).status == Status.PENDING

    def test_the_queue_is_newest_first_and_paginated(self, answering: Flask) -> None:
        ids = [queue(answering).enqueue(a_sample()).id for _ in range(30)]
        headers = bearer(token(answering, Role.REVIEWER))
        client = answering.test_client()
        second = client.get("/api/v1/review/items?per_page=10&page=2", headers=headers).get_json()
        assert [i["id"] for i in second["items"]] == ids[::-1][10:20] and second["total"] == 30
        page = client.get("/review?page=2", headers=headers).get_data(as_text=True)
        assert "page 2 of 2" in page and f'href="/review/{ids[0]}"' in page
        assert f'href="/review/{ids[-1]}"' not in page
        for query in ("page=0", "per_page=101", "status=done", "page=x"):
            bad = client.get(f"/api/v1/review/items?{query}", headers=headers)
            assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_query"

    def test_a_decision_that_cannot_be_audited_is_not_recorded(self, answering: Flask) -> None:
        item = queue(answering).enqueue(a_sample())
        with answering.extensions["digitguard.trail"].engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE audit_records")
        response = answering.test_client().post(
            f"/api/v1/review/items/{item.id}",
            json={"label": 3},
            headers=bearer(token(answering, Role.REVIEWER)),
        )
        assert response.status_code == 503 and response.get_json()["error"] == "audit_unavailable"
        assert queue(answering).get(item.id).status == Status.PENDING


class TestEndToEnd:
    def test_queue_review_export_and_verify(
        self, abstaining: Flask, answering: Flask, database_url: str, tmp_path: Path, monkeypatch, capsys
    ) -> None:
        monkeypatch.setenv("DIGITGUARD_INSTANCE_DIR", str(tmp_path / "instance"))
        abstained = abstaining.test_client().post("/api/v1/predict", json=PIXELS).get_json()
        client = answering.test_client()
        answered = predict_with_details(client)
        assert flag(client, answered["request_id"], answered["input"], label=1).status_code == 201
        scribble = predict_with_details(client)
        assert flag(client, scribble["request_id"], scribble["input"]).status_code == 201

        reviewer = bearer(token(answering, Role.REVIEWER))
        items = {
            i["request_id"]: i
            for i in client.get("/api/v1/review/items", headers=reviewer).get_json()["items"]
        }
        assert set(items) == {abstained["request_id"], answered["request_id"], scribble["request_id"]}
        for request_id, label in [
            (abstained["request_id"], 1),
            (answered["request_id"], 7),
            (scribble["request_id"], "not_a_digit"),
        ]:
            path = f"/api/v1/review/items/{items[request_id]['id']}"
            assert client.post(path, json={"label": label}, headers=reviewer).status_code == 200

        out = tmp_path / "reviewed"
        main(["review", "export", "--db", database_url, "--out", str(out)])
        assert "exported 2 samples" in capsys.readouterr().out
        images, labels = read_pair(out / "train-images-idx3-ubyte", out / "train-labels-idx1-ubyte")
        assert labels.tolist() == [1, 7]  # queue order; "not a digit" is left out
        assert images[0].tobytes() == input_bytes(np.asarray(PIXELS["pixels"]))
        assert images[1].tobytes() == input_bytes(np.asarray(answered["input"]))
        manifest = json.loads((out / "manifest.json").read_text())
        reasons = [entry["abstention_reason"] for entry in manifest["samples"]]
        assert reasons == ["low_confidence", None]  # the abstention, then the flagged answer
        for name, entry in manifest["files"].items():
            assert hashlib.sha256((out / name).read_bytes()).hexdigest() == entry["sha256"]
        assert manifest["request_ids"] == [abstained["request_id"], answered["request_id"]]
        assert manifest["model_sha256"] == {answered["model_sha256"]: 2}

        trail = records(answering)
        assert [r.kind for r in trail].count("review.decided") == 3
        exported = [r for r in trail if r.kind == "review.exported"]
        assert (
            exported[0].details["manifest_sha256"]
            == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
        )
        answering.extensions["digitguard.trail"].checkpoint()
        public = Path(answering.config["AUDIT_SIGNING_KEY_FILE"]).with_suffix(".pub")
        main(["audit", "verify", "--db", database_url, "--key", str(public)])
        assert "chain intact" in capsys.readouterr().out
