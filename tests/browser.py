"""A headless Chromium for the dashboard's tests, and waiting on Streamlit's pages in it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"


@contextmanager
def chromium() -> Iterator[object]:
    """Debian's chromium and chromium-driver, headless; a missing one fails or skips as
    every missing service does."""
    chromium_path, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium_path and driver_path):
        from tests.conftest import _unavailable

        _unavailable("the browser test needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1800")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def wait(condition, timeout: float = 60, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = condition()
        except Exception:  # elements come and go while Streamlit re-renders
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def body(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def widget(driver, test_id: str, label: str):
    """The Streamlit widget with this label."""
    from selenium.webdriver.common.by import By

    return wait(
        lambda: next(
            w
            for w in driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')
            if w.text.startswith(label)
        ),
        what=f"the {label!r} field",
    )


def field(driver, test_id: str, label: str, tag: str):
    """The input of the Streamlit widget with this label."""
    from selenium.webdriver.common.by import By

    return widget(driver, test_id, label).find_element(By.TAG_NAME, tag)


def drawn(driver) -> bool:
    """No placeholder left: Streamlit shows skeletons until an element has drawn."""
    from selenium.webdriver.common.by import By

    skeletons = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSkeleton"]')
    return idle(driver) and not skeletons


def body_with(driver, *needles: str) -> str | None:
    text = body(driver)
    return text if all(n in text for n in needles) else None


def open_page(driver, url: str, title: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait(lambda: any(h.text == title for h in driver.find_elements(By.TAG_NAME, "h1")), what=title)
    wait(lambda: idle(driver), what=f"{title} to finish rendering")


def idle(driver) -> bool:
    """Streamlit marks the app while a script (or fragment) run is under way."""
    from selenium.webdriver.common.by import By

    app = driver.find_element(By.CSS_SELECTOR, '[data-testid="stApp"]')
    return app.get_attribute("data-test-script-state") == "notRunning"
