"""``GET /security``: the threat-model report for the running configuration and the served model."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from digitguard.security.keys import Role
from digitguard.threatmodel.catalog import MODEL
from digitguard.threatmodel.evidence import all_nodes, covered_files
from digitguard.web import create_app
from tests.conftest import REPO_ROOT
from tests.threatmodel.conftest import hashes, write_junit
from tests.threatmodel.test_report import _Balance


@pytest.fixture
def app_config(app_config: dict, tmp_path: Path) -> dict:
    junit = write_junit(
        tmp_path / "junit.xml",
        dict.fromkeys(all_nodes(MODEL), "passed"),
        hashes(REPO_ROOT, covered_files(MODEL)),
    )
    return {**app_config, "THREATS_JUNIT": str(junit)}


def page(app: Flask, role: Role = Role.REVIEWER):
    token = app.extensions["digitguard.keys"].create("staff", role).token
    return app.test_client().get("/security", headers={"Authorization": f"Bearer {token}"})


def status_cell(html: str, threat_id: str) -> str:
    row = html.split(f"<tr><td>{threat_id}</td>", 1)[1].split("</tr>", 1)[0]
    return row


class TestSecurityPage:
    def test_shows_the_report_for_the_served_model(self, app: Flask) -> None:
        response = page(app)
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert app.extensions["digitguard"].model_sha256 in html
        assert "<svg" in html and "STRIDE per element" in html and "Corrections" in html
        assert response.headers["Cache-Control"] == "no-store"

    def test_is_well_formed_and_needs_nothing_the_csp_forbids(self, app: Flask) -> None:
        response = page(app)
        parser = _Balance()
        parser.feed(response.get_data(as_text=True))
        parser.close()
        assert parser.problems == [] and parser.stack == []
        assert "script" not in parser.tags and "style" not in parser.tags
        assert not {a for a in parser.attributes if a == "style" or a.startswith("on")}
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]

    def test_switching_a_control_off_in_the_config_shows(self, app_config: dict) -> None:
        # The suite's generous limits already fail the rate-limit check: back to the defaults here.
        production_limits = {**app_config, "ANONYMOUS_LIMIT": "30/minute", "IP_LIMIT": "1200/minute"}
        on = page(create_app(production_limits)).get_data(as_text=True)
        off = page(create_app({**production_limits, "RATELIMIT_ENABLED": False})).get_data(as_text=True)
        assert "partly mitigated" in status_cell(on, "MODEL-EXTRACTION")
        assert "not mitigated" in status_cell(off, "MODEL-EXTRACTION")
        assert "RATELIMIT_ENABLED = False" in off

    def test_the_suite_s_own_generous_limits_are_reported_as_failing(self, app: Flask) -> None:
        html = page(app).get_data(as_text=True)
        assert "ANONYMOUS_LIMIT = &#x27;100000/minute&#x27;, needs at most 60/minute" in html

    def test_no_secret_is_shown(self, app: Flask) -> None:
        html = page(app, Role.ADMIN).get_data(as_text=True)
        assert app.config["SECRET_KEY"] not in html
        assert app.config["DATABASE_URL"] not in html

    @pytest.mark.parametrize(("role", "status"), [(None, 401), (Role.PREDICT, 403), (Role.ADMIN, 200)])
    def test_is_for_reviewers_and_admins(self, app: Flask, role: Role | None, status: int) -> None:
        if role is None:
            assert app.test_client().get("/security").status_code == status
        else:
            assert page(app, role).status_code == status
