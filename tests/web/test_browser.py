"""A real browser draws on the canvas and reads the answer (Playwright + Debian's chromium)."""

from __future__ import annotations

import math
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from digitguard.inference.predictor import ABSTENTION_TEXT, Abstention
from digitguard.web import create_app

CHROMIUM = Path(os.environ.get("DIGITGUARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Strokes in canvas fractions (x, y); each inner list is one pen-down stroke.
DIGITS = {
    "1": [[(0.5, 0.15), (0.5, 0.85)]],
    "7": [[(0.25, 0.18), (0.75, 0.18), (0.42, 0.85)]],
    "0": [
        [
            (0.5 + 0.22 * math.sin(t / 20 * 2 * math.pi), 0.5 - 0.33 * math.cos(t / 20 * 2 * math.pi))
            for t in range(21)
        ]
    ],
}


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server(shipped_app: Flask) -> Iterator[str]:
    with serving(shipped_app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium; `make browser` does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(url)
    page.console_errors = errors
    return page


@pytest.fixture(scope="module")
def page(browser, live_server: str):
    page = open_page(browser, live_server)
    yield page
    page.close()


def draw(page, strokes) -> None:
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=8)
        page.mouse.up()


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_drawing_a_digit_and_pressing_recognise_shows_it(page, digit: str, tmp_path: Path) -> None:
    page.click("#clear")
    draw(page, DIGITS[digit])
    page.click("#recognise")
    # A locator, not wait_for_function: the page's CSP (rightly) forbids the eval that would need.
    page.locator("#digit:not([data-state='idle'])").wait_for(timeout=15_000)
    assert page.text_content("#digit") == digit
    assert page.locator("#reason").is_hidden()  # an answer needs no excuse
    assert page.locator("#bars li").count() == 10
    assert page.text_content("#confidence").endswith("%")
    screenshot = tmp_path / f"drawn-{digit}.png"
    page.screenshot(path=str(screenshot), full_page=True)
    if os.environ.get("DIGITGUARD_SCREENSHOT_DIR"):
        shutil.copy(screenshot, Path(os.environ["DIGITGUARD_SCREENSHOT_DIR"]) / screenshot.name)
    assert page.console_errors == []  # includes any Content-Security-Policy violation


def test_recognise_on_an_empty_canvas_says_nothing_drawn(page) -> None:
    page.click("#clear")
    page.click("#recognise")
    assert "Nothing drawn" in page.text_content("#status")
    assert page.text_content("#digit") == "?"


def test_the_page_fits_a_phone_screen(live_server: str, page) -> None:
    context = page.context.browser.new_context(
        viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True
    )
    phone = context.new_page()
    phone.goto(live_server)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    pad = phone.locator("#pad").bounding_box()
    assert pad["width"] <= 375 and pad["width"] >= 250
    context.close()


def test_a_wrong_answer_is_flagged_for_human_review(page, shipped_app: Flask) -> None:
    page.click("#clear")
    draw(page, DIGITS["7"])
    page.click("#recognise")
    page.locator("#digit:not([data-state='idle'])").wait_for(timeout=15_000)
    page.select_option("#flag-label", "1")
    page.click("#flag-button")  # the page posts back the 28×28 input it was shown
    page.locator("#status:has-text('a person will review')").wait_for(timeout=10_000)
    assert page.locator("#flag").is_hidden()
    flagged = [
        item
        for item in shipped_app.extensions["digitguard.review"].items(limit=100)
        if item.sample.reason.value == "flagged"
    ]
    assert [(item.sample.digit, item.sample.suggested_label) for item in flagged] == [(7, 1)]
    assert page.console_errors == []


@pytest.mark.parametrize("reason", [Abstention.LOW_CONFIDENCE, Abstention.NOT_A_DIGIT])
def test_an_abstention_says_why_beside_its_confidence(
    browser, app_config: dict, gate_model_dir, reason: Abstention
) -> None:
    # An untrained model never reaches a threshold of 1; a gate whose top class is always 10
    # says "not a digit" to anything, and with threshold 0 that is the only reason left.
    overrides = (
        {"ABSTAIN_BELOW": 1.0}
        if reason == Abstention.LOW_CONFIDENCE
        else {"ABSTAIN_BELOW": 0.0, "GATE_DIR": str(gate_model_dir(10))}
    )
    with serving(create_app({**app_config, **overrides})) as url:
        page = open_page(browser, url)
        draw(page, DIGITS["7"])
        page.click("#recognise")
        page.locator("#digit:not([data-state='idle'])").wait_for(timeout=15_000)
        assert page.get_attribute("#digit", "data-state") == "abstained"
        assert page.text_content("#digit") == (
            "not a digit" if reason == Abstention.NOT_A_DIGIT else "not sure"
        )
        why = page.locator("#reason")
        assert why.is_visible() and why.get_attribute("data-reason") == reason.value
        confidence = page.text_content("#confidence")
        assert confidence.endswith("%")
        assert why.text_content() == f"{ABSTENTION_TEXT[reason]} (top answer {confidence})"
        assert "a person will review it" in page.text_content("#status")
        page.click("#clear")
        assert why.is_hidden()
        assert page.console_errors == []
        page.close()
