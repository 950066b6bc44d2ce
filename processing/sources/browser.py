"""Headless Chromium through Selenium 4, for the few pages that build their media link with JavaScript.

Only the system's browser and driver are used (``/usr/bin/chromium`` and ``/usr/bin/chromedriver``, Debian's
``chromium`` and ``chromium-driver``); Selenium Manager never runs, so nothing is downloaded at run time. A missing
browser or driver is a :class:`~processing.errors.CovidxError` naming what to install. This module renders pages and
returns their DOM; it does not download files (that is :mod:`processing.sources.download`'s job).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from processing.errors import CovidxError

log = logging.getLogger(__name__)

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserUnavailableError(CovidxError):
    """No Chromium or no chromedriver on this machine."""


def find_browser() -> tuple[Path, Path]:
    """``(browser, driver)`` paths from ``$COVIDX_US_CHROMIUM`` / ``$COVIDX_US_CHROMEDRIVER`` or the PATH."""
    browser = os.environ.get("COVIDX_US_CHROMIUM") or next(filter(None, map(shutil.which, _BROWSER_NAMES)), None)
    driver = os.environ.get("COVIDX_US_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver))
               if not path or not Path(path).is_file()]
    if missing:
        raise BrowserUnavailableError(
            f"headless page rendering needs {' and '.join(missing)}, which is not installed "
            "(apt-get install chromium chromium-driver, or set COVIDX_US_CHROMIUM / COVIDX_US_CHROMEDRIVER)")
    return Path(browser), Path(driver)


class HeadlessBrowser:
    """One headless Chromium with a fresh profile; use as a context manager. Thread-safe (one page at a time)."""

    def __init__(self, *, user_agent: str | None = None, page_timeout: float = 30.0) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        browser, driver = find_browser()
        self._profile = tempfile.mkdtemp(prefix="covidx-us-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(browser)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        if user_agent:
            options.add_argument(f"--user-agent={user_agent}")
        # An explicit executable_path is what keeps Selenium Manager from running (and from downloading a driver).
        service = Service(executable_path=str(driver))
        try:
            self._driver = webdriver.Chrome(service=service, options=options)
        except Exception as exc:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise BrowserUnavailableError(f"could not start {browser} with {driver}: {exc}") from exc
        self._driver.set_page_load_timeout(page_timeout)
        self._lock = threading.Lock()

    def render(self, url: str, *, wait_css: str | None = None, timeout: float = 10.0) -> str:
        """Load ``url`` and return the DOM as HTML, after ``wait_css`` matches an element (or ``timeout`` passes)."""
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        with self._lock:
            try:
                self._driver.get(url)
                if wait_css:
                    try:
                        WebDriverWait(self._driver, timeout, poll_frequency=0.1).until(
                            lambda d: d.find_elements(By.CSS_SELECTOR, wait_css))
                    except TimeoutException:
                        log.info("no %s on %s after %.1fs", wait_css, url, timeout)
                return self._driver.page_source
            except WebDriverException as exc:
                raise CovidxError(f"browser could not render {url}: {exc.msg or exc}") from exc

    def close(self) -> None:
        try:
            self._driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> HeadlessBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
