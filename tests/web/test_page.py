"""The search page in a real headless Chromium (Debian's chromium + chromedriver) driven by Selenium: type a
query, see results, open "similar", filter by category, reload a bookmarked URL, phone width, text
escaped, no console errors; a screenshot is saved under the test's tmp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.web_support import Api, serve, store_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 60  # a backstop: a search answers in well under a second


@pytest.fixture(scope="module")
def site(web_store: Path) -> Iterator[Api]:
    yield from serve(store_config(web_store))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "apt-get install chromium chromium-driver (.ci/run does)"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers on the network
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_results(driver: Any, previous: list[str] | None = None) -> list[str]:
    """The ids of the rendered results, once the search has answered (and they differ from ``previous``)."""
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d: Any) -> list[str] | None:
        message = d.find_element("id", "message").text
        if "Searching" in message or not message:
            return None
        ids = [li.get_attribute("data-id") for li in d.find_elements("css selector", "#results > li")]
        return ids if ids and ids != previous else None

    from selenium.common.exceptions import TimeoutException

    try:
        ids: list[str] = WebDriverWait(driver, WAIT_S).until(ready)
    except TimeoutException:
        message = driver.find_element("id", "message").text
        raise AssertionError(f"no results at {driver.current_url}: {message!r}; {driver.get_log('browser')}") from None
    return ids


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


@pytest.mark.slow
def test_search_similar_filter_and_bookmark_in_a_real_browser(site: Api, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    browser.get(site.url + "/")
    box = browser.find_element("id", "q")
    assert box == browser.switch_to.active_element  # focus starts in the search box: type at once
    box.send_keys("neural networks for image recognition", Keys.ENTER)
    first = wait_for_results(browser)
    assert len(first) == 10 and "q=neural+networks" in browser.current_url
    assert browser.find_element("id", "q").get_attribute("value") == "neural networks for image recognition"
    item = browser.find_element("css selector", "#results > li")
    link = item.find_element("css selector", ".title a")
    assert link.get_attribute("href") == f"https://arxiv.org/abs/{first[0]}"
    abstract = item.find_element("css selector", "details.abstract")
    assert abstract.get_attribute("open") is None
    abstract.find_element("tag name", "summary").click()
    assert abstract.get_attribute("open") is not None and len(abstract.find_element("tag name", "p").text) > 50
    assert "score 0." in item.text or "score 1." in item.text
    assert (
        "papers" in browser.find_element("id", "footer").text
        and "coverage 100.0%" in browser.find_element("id", "footer").text
    )

    item.find_element("css selector", "a.similar").click()
    similar = wait_for_results(browser, previous=first)
    assert f"similar={first[0]}" in browser.current_url and first[0] not in similar
    assert browser.find_element("id", "heading").text == f"Papers similar to {first[0]}"

    box = browser.find_element("id", "q")
    box.clear()
    box.send_keys("language models")
    browser.find_element("id", "category").send_keys("cs.CV")
    browser.find_element("id", "k").clear()
    browser.find_element("id", "k").send_keys("5")
    browser.find_element("css selector", "button[type=submit]").click()
    filtered = wait_for_results(browser, previous=similar)
    assert len(filtered) == 5 and "category=cs.CV" in browser.current_url and "k=5" in browser.current_url
    rows = browser.find_elements("css selector", "#results > li")
    cats = [[span.text for span in li.find_elements("css selector", ".cats span")] for li in rows]
    assert all("cs.CV" in c for c in cats), cats

    bookmark = browser.current_url
    browser.get("about:blank")
    browser.get(bookmark)
    assert wait_for_results(browser) == filtered
    assert browser.find_element("id", "category").get_attribute("value") == "cs.CV"

    browser.save_screenshot(str(tmp_path / "search.png"))
    assert (tmp_path / "search.png").stat().st_size > 10_000
    assert console_errors(browser) == []


@pytest.mark.slow
def test_phone_width_escaped_text_and_error_messages(site: Api, browser: Any, tmp_path: Path) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(site.url + "/?q=%3Cimg+src%3Dx+onerror%3Dalert(1)%3E+graph+networks&k=3")
        assert len(wait_for_results(browser)) == 3
        heading = browser.find_element("id", "heading")
        assert heading.text == "Results for <img src=x onerror=alert(1)> graph networks"  # shown as text
        assert browser.find_elements("css selector", "#heading img, #results img") == []
        width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width  # nothing wider than the phone's screen
        browser.save_screenshot(str(tmp_path / "phone.png"))
        browser.get(site.url + "/?q=x&since=2025-01-01&until=2024-01-01")
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, WAIT_S).until(lambda d: "is after" in d.find_element("id", "message").text)
        assert "error" in browser.find_element("id", "message").get_attribute("class")
        # the API's 400 is reported on the page; the browser logs the failed fetch itself, nothing else
        assert all("400" in e["message"] for e in console_errors(browser))
    finally:
        browser.set_window_size(1280, 1000)
