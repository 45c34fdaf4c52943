"""The web page in a real browser: Debian's Chromium driven by Playwright against `digitread serve`.

Chromium is installed with apt-get when it is absent (CI machines start without it). Screenshots of
the page after each test are kept in reports/screenshots/ (never committed).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from digitread.feedback.store import FeedbackStore

ROOT = Path(__file__).parents[1]
SCREENSHOTS = ROOT / "reports" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.browser


def chromium_path() -> str:
    """Debian's Chromium, installed now if it is missing (Playwright's own browser download is not used)."""
    found = os.environ.get("DIGITREAD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.fail("Chromium is not installed and apt-get is not here to install it; set DIGITREAD_CHROMIUM")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run([*sudo, *command], capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed: {result.stderr[-1500:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.fail("apt-get installed chromium, yet no chromium command is on PATH")
    return found


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import LiveServer

    folder = tmp_path_factory.mktemp("browser")
    server = LiveServer(f"sqlite:///{folder / 'feedback.db'}", folder / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def ellipse(steps: int = 24) -> list[tuple[float, float]]:
    return [
        (0.5 + 0.32 * math.sin(2 * math.pi * k / steps), 0.5 - 0.42 * math.cos(2 * math.pi * k / steps))
        for k in range(steps + 1)
    ]


# Each digit as pen strokes in a unit box, x to the right and y down; digits the shipped models read
# when drawn this plainly (a bare vertical 1 is not among them: see docs/service.md).
STROKES = {
    "0": [ellipse()],
    "3": [[(0.2, 0.15), (0.5, 0.07), (0.75, 0.18), (0.72, 0.38), (0.45, 0.48), (0.75, 0.6), (0.78, 0.8), (0.5, 0.93)]],
    "4": [[(0.62, 0.92), (0.62, 0.08), (0.12, 0.65), (0.88, 0.65)]],
    "7": [[(0.15, 0.1), (0.85, 0.1), (0.42, 0.92)]],
}


def draw_number(page, text: str) -> None:
    """Write ``text`` on the canvas with mouse strokes, digit by digit, left to right."""
    pad = page.locator("#pad").bounding_box()
    cell = pad["height"] * 0.55
    for i, char in enumerate(text):
        left = pad["x"] + 40 + i * cell * 1.3
        for stroke in STROKES[char]:
            points = [(left + x * cell, pad["y"] + 20 + y * (pad["height"] - 40)) for x, y in stroke]
            page.mouse.move(*points[0])
            page.mouse.down()
            for point in points[1:]:
                page.mouse.move(*point, steps=8)
            page.mouse.up()


def wait_for_reading(page) -> None:
    page.wait_for_function("['read', 'error'].includes(document.body.dataset.state)", timeout=30_000)
    assert page.evaluate("document.body.dataset.state") == "read", page.locator("#status").text_content()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_number_drawn_with_mouse_strokes_is_read_as_it_is_drawn(browser, server):
    page = browser.new_page(viewport={"width": 1000, "height": 1200})
    page.goto(server.url)
    draw_number(page, "3470")
    wait_for_reading(page)  # nothing was clicked: the page read the drawing by itself
    screenshot(page, "drawn_3470")
    assert page.locator("#number").text_content() == "3470"
    assert page.locator("#digits li").count() == 4
    assert not page.locator("#view").is_hidden()
    # Undo takes the last stroke away (the 0) and the page reads again.
    page.get_by_role("button", name="Undo").click()
    page.wait_for_function("document.getElementById('number').textContent === '347'", timeout=30_000)
    page.get_by_role("button", name="Clear").click()
    assert page.locator("#number").text_content() == ""
    assert page.get_by_role("button", name="Undo").is_disabled()
    page.close()


def test_an_uploaded_image_is_read_and_its_digits_are_boxed(browser, server):
    page = browser.new_page(viewport={"width": 1000, "height": 1200})
    page.goto(server.url)
    page.set_input_files("#file", str(ROOT / "examples" / "numbers" / "form_507318.png"))
    wait_for_reading(page)
    screenshot(page, "uploaded_form_507318")
    assert page.locator("#number").text_content() == "507318"
    assert page.locator("#digits li").count() == 6
    # The boxes are painted on the image: the view has coloured (box) pixels, which a gray photo has not.
    coloured = page.evaluate(
        """() => {
        const c = document.getElementById('view');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 1] > d[i] + 60 && d[i + 1] > d[i + 2] + 40) n++;
        return n; }"""
    )
    assert coloured > 200
    page.close()


def test_a_correction_can_be_sent_with_the_keyboard_alone_on_a_phone_sized_screen(browser, server):
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, has_touch=True)
    page.goto(server.url)
    # Nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_input_files("#camera", str(ROOT / "examples" / "numbers" / "score_87.png"))
    wait_for_reading(page)
    assert page.locator("#number").text_content() == "87"
    page.locator("#wrong").focus()
    page.keyboard.press("Enter")  # opens the form and puts the cursor in it
    assert page.evaluate("document.activeElement.id") == "truth"
    page.keyboard.press("Control+A")
    page.keyboard.type("81")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('thanks').textContent.startsWith('Thank you')", timeout=30_000)
    screenshot(page, "phone_correction_87")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.close()
    store = FeedbackStore(server.feedback_db)
    assert [(r.number, r.read_text, r.source) for r in store] == [("81", "87", "score_87.png")]
    store.close()


def test_every_control_is_reached_with_the_tab_key_and_has_a_name(browser, server):
    page = browser.new_page(viewport={"width": 1000, "height": 1200})
    page.goto(server.url)
    page.set_input_files("#file", str(ROOT / "examples" / "numbers" / "meter_4096.png"))
    wait_for_reading(page)
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.textContent"))
    assert reached[:5] == ["stroke", "file", "camera", "wrong", "API documentation"], reached
    # Undo and Clear are in the order too once there is something to undo.
    names = page.evaluate(
        """() => [...document.querySelectorAll('button, input, canvas')].map(e =>
            e.getAttribute('aria-label') || (e.labels && e.labels[0] && e.labels[0].textContent) || e.textContent)"""
    )
    assert all(name and name.strip() for name in names), names
    page.close()


def test_the_api_docs_render_with_no_outside_asset(browser, server):
    page = browser.new_page()
    outside = []
    page.on("request", lambda request: None if request.url.startswith(server.url) else outside.append(request.url))
    page.goto(f"{server.url}/docs")
    page.wait_for_function("document.querySelectorAll('.opblock').length >= 7", timeout=30_000)
    screenshot(page, "api_docs")
    assert page.get_by_text("Read several images in one request").count() == 1
    assert outside == []
    page.close()
