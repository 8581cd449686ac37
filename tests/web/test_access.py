"""Who may do what: the whole authorization matrix, key lifecycle, sign-in, sessions and CSRF."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from digitguard.security.keys import Role, parse_token
from digitguard.web import create_app
from tests.review.conftest import a_sample

PIXELS = {"pixels": [[1.0 if 4 <= row < 24 and col == 14 else 0.0 for col in range(28)] for row in range(28)]}
ROLES = ("anonymous", "predict", "reviewer", "admin")


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


def admins_only(ok: int) -> dict[str, int]:
    return {"anonymous": 401, "predict": 403, "reviewer": 403, "admin": ok}


def reviewers(ok: int) -> dict[str, int]:
    return {"anonymous": 401, "predict": 403, "reviewer": ok, "admin": ok}


# The expected status of every route for every caller. Written independently of the app's
# rules: a route added without a row here fails test_every_route_has_a_row.
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/"): everyone(200),
    ("GET", "/static/<path:filename>"): everyone(200),
    ("GET", "/healthz"): everyone(200),
    ("GET", "/readyz"): everyone(200),
    ("GET", "/api/v1/openapi.json"): everyone(200),
    ("POST", "/api/v1/predict"): everyone(200),
    ("GET", "/api/v1/keys"): admins_only(200),
    ("POST", "/api/v1/keys"): admins_only(201),
    ("POST", "/api/v1/keys/<key_id>/revoke"): admins_only(200),
    ("POST", "/api/v1/model/reload"): admins_only(200),
    ("GET", "/signin"): everyone(200),
    ("POST", "/signin"): everyone(403),  # no CSRF token in this request: refused for everyone
    ("POST", "/signout"): {"anonymous": 401, "predict": 302, "reviewer": 302, "admin": 302},
    ("GET", "/account"): {"anonymous": 401, "predict": 403, "reviewer": 200, "admin": 200},
    ("GET", "/admin/keys"): admins_only(200),
    ("POST", "/admin/keys/<key_id>/revoke"): admins_only(302),
    ("GET", "/metrics"): admins_only(200),
    ("POST", "/api/v1/predictions/<request_id>/flag"): everyone(201),  # each flags its own answer
    ("GET", "/review"): reviewers(200),
    ("GET", "/review/<item_id>"): reviewers(200),
    ("GET", "/review/<item_id>/input.png"): reviewers(200),
    ("POST", "/review/<item_id>"): reviewers(302),  # Bearer, not a session: no CSRF token needed
    ("GET", "/api/v1/review/items"): reviewers(200),
    ("POST", "/api/v1/review/items/<item_id>"): reviewers(200),
    ("GET", "/security"): reviewers(200),
}


@pytest.fixture
def app_config(app_config: dict) -> dict:
    # Answers rather than abstentions (the test model is untrained): an abstention is queued at
    # once, so flagging it would be 409 and the flag route's 201 would be out of reach.
    return {**app_config, "ABSTAIN_BELOW": 0.0}


@pytest.fixture
def tokens(app: Flask) -> dict[str, str | None]:
    store = app.extensions["digitguard.keys"]
    return {
        "anonymous": None,
        **{role.value: store.create(f"{role.value} user", role).token for role in Role},
    }


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def call(client: FlaskClient, app: Flask, method: str, rule: str, token: str | None):
    victim = app.extensions["digitguard.keys"].create("victim", Role.PREDICT).key.key_id
    path = rule.replace("<key_id>", victim).replace("<path:filename>", "app.css")
    kwargs: dict = {"headers": bearer(token)}
    if "<item_id>" in rule:
        path = path.replace("<item_id>", str(app.extensions["digitguard.review"].enqueue(a_sample()).id))
    if "<request_id>" in rule:  # the caller's own prediction, flagged with the input it was answered
        answered = client.post("/api/v1/predict", json=PIXELS, headers=bearer(token)).get_json()
        path = path.replace("<request_id>", answered["request_id"])
    if rule in ("/api/v1/predict", "/api/v1/predictions/<request_id>/flag"):
        kwargs["json"] = PIXELS
    elif rule == "/api/v1/keys" and method == "POST":
        kwargs["json"] = {"name": "new", "role": "predict"}
    elif rule == "/api/v1/review/items/<item_id>":
        kwargs["json"] = {"label": 3}
    elif rule == "/review/<item_id>" and method == "POST":
        kwargs["data"] = {"label": "3"}
    response = client.open(path, method=method, **kwargs)
    response.close()
    return response


class TestAuthorizationMatrix:
    def test_every_route_has_a_row(self, app: Flask) -> None:
        routes = {
            (method, rule.rule)
            for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}
        }
        assert routes == set(EXPECTED)

    @pytest.mark.parametrize(("method", "rule"), sorted(EXPECTED))
    @pytest.mark.parametrize("role", ROLES)
    def test_status(self, app: Flask, client: FlaskClient, tokens, method: str, rule: str, role: str) -> None:
        assert call(client, app, method, rule, tokens[role]).status_code == EXPECTED[(method, rule)][role]

    def test_anonymous_prediction_can_be_switched_off(self, app_config: dict) -> None:
        app = create_app({**app_config, "ALLOW_ANONYMOUS": False})
        response = app.test_client().post("/api/v1/predict", json=PIXELS)
        assert response.status_code == 401
        assert response.get_json()["error"] == "authentication_required"
        token = app.extensions["digitguard.keys"].create("p", Role.PREDICT).token
        assert (
            app.test_client().post("/api/v1/predict", json=PIXELS, headers=bearer(token)).status_code == 200
        )

    def test_a_route_without_a_rule_is_closed(self, app_config: dict) -> None:
        app = create_app(app_config)
        app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
        token = app.extensions["digitguard.keys"].create("a", Role.ADMIN).token
        assert app.test_client().get("/forgotten", headers=bearer(token)).status_code == 403


class TestKeyLifecycle:
    def test_created_over_the_api_used_then_revoked_and_refused_at_once(
        self, client: FlaskClient, tokens
    ) -> None:
        created = client.post(
            "/api/v1/keys", json={"name": "bot", "role": "predict"}, headers=bearer(tokens["admin"])
        )
        assert created.status_code == 201
        token, key_id = created.get_json()["token"], created.get_json()["key"]["key_id"]
        assert client.post("/api/v1/predict", json=PIXELS, headers=bearer(token)).status_code == 200
        revoked = client.post(f"/api/v1/keys/{key_id}/revoke", headers=bearer(tokens["admin"]))
        assert revoked.get_json()["key"]["revoked_at"] is not None
        refused = client.post("/api/v1/predict", json=PIXELS, headers=bearer(token))
        assert refused.status_code == 401 and refused.get_json()["message"] == "revoked API key"

    def test_revocation_on_one_replica_is_refused_by_another_at_once(self, app_config: dict) -> None:
        first, second = create_app(app_config), create_app(app_config)
        token = first.extensions["digitguard.keys"].create("shared", Role.PREDICT).token
        assert (
            first.test_client().post("/api/v1/predict", json=PIXELS, headers=bearer(token)).status_code == 200
        )
        key_id = token.split("_")[1]
        second.extensions["digitguard.keys"].revoke(key_id)
        assert (
            first.test_client().post("/api/v1/predict", json=PIXELS, headers=bearer(token)).status_code == 401
        )

    @pytest.mark.parametrize(
        "header",
        ["Bearer dgk_000000000000_" + "A" * 43, "Bearer nonsense", "Basic abc", "Bearer "],
    )
    def test_bad_credentials_are_401_not_anonymous(self, client: FlaskClient, header: str) -> None:
        response = client.post("/api/v1/predict", json=PIXELS, headers={"Authorization": header})
        assert response.status_code == 401
        assert response.get_json()["error"] == "invalid_credentials"

    def test_a_wrong_secret_for_a_real_key_id_is_refused(self, client: FlaskClient, tokens) -> None:
        real = tokens["predict"]
        forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
        assert client.post("/api/v1/predict", json=PIXELS, headers=bearer(forged)).status_code == 401

    def test_secrets_are_stored_only_as_scrypt_hashes(self, app: Flask, tokens) -> None:
        import sqlalchemy as sa

        with app.extensions["digitguard.engine"].connect() as connection:
            stored = [
                row.secret_hash for row in connection.execute(sa.text("select secret_hash from api_keys"))
            ]
        assert all(value.startswith("scrypt$16384$8$1$") for value in stored)
        secrets = [parse_token(token)[1] for token in tokens.values() if token]
        assert not any(secret in " ".join(stored) for secret in secrets)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def sign_in(client: FlaskClient, token: str):
    csrf = csrf_from(client.get("/signin").get_data(as_text=True))
    return client.post("/signin", data={"api_key": token, "csrf_token": csrf})


class TestBrowserSessions:
    def test_sign_in_sets_a_strict_http_only_session_cookie(self, client: FlaskClient, tokens) -> None:
        response = sign_in(client, tokens["admin"])
        assert response.status_code == 302 and response.headers["Location"].endswith("/admin/keys")
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
        assert client.get("/admin/keys").status_code == 200

    def test_the_cookie_is_secure_behind_tls(self, app_config: dict, tokens) -> None:
        app = create_app({**app_config, "TLS": True})
        token = app.extensions["digitguard.keys"].create("a", Role.ADMIN).token
        client = app.test_client()
        response = sign_in(client, token)
        assert "Secure" in response.headers["Set-Cookie"]

    def test_sign_in_without_the_csrf_token_is_refused(self, client: FlaskClient, tokens) -> None:
        client.get("/signin")
        response = client.post("/signin", data={"api_key": tokens["admin"]})
        assert response.status_code == 403 and response.get_json()["error"] == "csrf_failed"

    def test_state_changing_forms_need_the_csrf_token(self, client: FlaskClient, tokens, app: Flask) -> None:
        sign_in(client, tokens["admin"])
        victim = app.extensions["digitguard.keys"].create("victim", Role.PREDICT).key.key_id
        refused = client.post(f"/admin/keys/{victim}/revoke")
        assert refused.status_code == 403 and refused.get_json()["error"] == "csrf_failed"
        assert app.extensions["digitguard.keys"].get(victim).active
        csrf = csrf_from(client.get("/admin/keys").get_data(as_text=True))
        assert client.post(f"/admin/keys/{victim}/revoke", data={"csrf_token": csrf}).status_code == 302
        assert not app.extensions["digitguard.keys"].get(victim).active

    def test_predicting_from_a_signed_in_browser_needs_the_csrf_header(
        self, client: FlaskClient, tokens
    ) -> None:
        sign_in(client, tokens["reviewer"])
        assert client.post("/api/v1/predict", json=PIXELS).status_code == 403
        page = client.get("/").get_data(as_text=True)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        assert client.post("/api/v1/predict", json=PIXELS, headers={"X-CSRF-Token": csrf}).status_code == 200

    def test_a_session_ends_when_its_key_is_revoked(self, client: FlaskClient, tokens, app: Flask) -> None:
        sign_in(client, tokens["admin"])
        app.extensions["digitguard.keys"].revoke(tokens["admin"].split("_")[1])
        assert client.get("/admin/keys").status_code == 401

    def test_sign_out_ends_the_session(self, client: FlaskClient, tokens) -> None:
        sign_in(client, tokens["reviewer"])
        csrf = csrf_from(client.get("/account").get_data(as_text=True))
        assert client.post("/signout", data={"csrf_token": csrf}).status_code == 302
        assert client.get("/account").status_code == 401


class TestBruteForce:
    def test_failed_sign_ins_lock_out_with_growing_delays(self, app_config: dict, tokens) -> None:
        app = create_app({**app_config, "SIGNIN_FREE_ATTEMPTS": 3, "SIGNIN_BASE_DELAY_S": 30})
        token = app.extensions["digitguard.keys"].create("a", Role.ADMIN).token
        client = app.test_client()
        wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        statuses = [sign_in(client, wrong).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 401]
        locked = sign_in(client, token)  # even the right key waits out the lock
        assert locked.status_code == 429
        assert locked.get_json()["error"] == "signin_locked"
        assert 25 <= int(locked.headers["Retry-After"]) <= 30

    def test_the_delay_doubles_with_each_further_failure(self, app: Flask) -> None:
        throttle = app.extensions["digitguard.throttle"]
        delays = [throttle.delay_after(n) for n in range(1, 8)]
        assert delays[:3] == [0, 0, 0]
        assert delays[3:] == [1.0, 2.0, 4.0, 8.0]
        assert throttle.delay_after(100) == 900.0
