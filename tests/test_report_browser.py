"""`seqbench report` opened in a real headless Chromium: no console error, no failed request, one
table row per run (or per config), sorting by a click, and a screenshot that is not blank.

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them) and selenium (the dev extra).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from seqbench.artifacts.runs import find_runs
from seqbench.report.write import write_report

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
)
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no chromium or chromedriver on PATH (Debian: apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--disable-gpu", "--window-size=1400,1000", "--hide-scrollbars"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(driver, path: Path) -> list[str]:
    """Load `path`; return its problems: SEVERE console entries, failed requests, broken images."""
    driver.get_log("browser"), driver.get_log("performance")  # forget what an earlier page logged
    driver.get(path.resolve().as_uri())
    problems = [f"console: {e['message']}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.loadingFailed":
            problems.append(f"request failed: {message['params'].get('errorText')}")
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"
    )
    return problems + [f"image not shown: {alt}" for alt in broken]


def column(driver, table_id: str, name: str) -> list[str]:
    """The texts of one column of a table, top to bottom, as the browser shows them."""
    headers = [th.text for th in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th")]
    index = headers.index(name) + 1
    return [
        td.text for td in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody td:nth-child({index})")
    ]


@pytest.fixture(scope="module")
def report(report_results, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "report.html"
    write_report(find_runs([], report_results), path)
    return path


def test_the_report_opens_without_a_console_error_or_a_failed_request(browser, report):
    assert open_page(browser, report) == []
    with pytest.raises(NoAlertPresentException):  # the runs' <script>s stay text
        browser.switch_to.alert.text  # noqa: B018
    assert "<script>alert('name')</script>" in browser.find_element(By.ID, "compare-lm").text
    assert (
        browser.execute_script("return document.images.length") == 9
    )  # 3 forecasts x 2, 2 LMs x 1, 1 sweep plot


def test_one_row_per_config_or_run_as_compare_shows_them(browser, report):
    open_page(browser, report)
    assert sorted(column(browser, "compare-forecast", "config")) == ["tiny_mingru", "weather-gru"]
    assert sorted(column(browser, "compare-forecast", "n")) == ["1", "2"]  # the two seeds: one row, n 2
    assert len(column(browser, "compare-lm", "run")) == 2


def test_a_click_on_a_header_sorts_the_table(browser, report):
    open_page(browser, report)
    header = browser.find_element(By.CSS_SELECTOR, "#compare-forecast th[title=rmse]")
    means = [float(text.split(" ± ")[0]) for text in column(browser, "compare-forecast", "rmse")]
    header.click()
    ascending = [float(text.split(" ± ")[0]) for text in column(browser, "compare-forecast", "rmse")]
    assert ascending == sorted(means) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    descending = [float(text.split(" ± ")[0]) for text in column(browser, "compare-forecast", "rmse")]
    assert descending == sorted(means, reverse=True) and header.get_attribute("aria-sort") == "descending"
    browser.find_element(By.CSS_SELECTOR, "#compare-forecast th[title=config]").click()
    assert column(browser, "compare-forecast", "config") == ["tiny_mingru", "weather-gru"]


def test_the_screenshot_is_not_blank(browser, report, tmp_path):
    from PIL import Image

    open_page(browser, report)
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[0] >= 500 and pixels.shape[1] >= 1000
    assert (pixels < 200).mean() > 0.01 and pixels.std() > 10  # text and table lines on white


def test_a_page_that_asks_the_network_fails_the_check(browser, report, tmp_path):
    """The check itself: a request the page's policy blocks, a missing image and a script error all show."""
    page = report.read_text().replace(
        "</body>",
        '<img src="https://example.invalid/x.png" alt="remote"><script>undefinedThing();</script></body>',
    )
    (tmp_path / "bad.html").write_text(page)
    problems = open_page(browser, tmp_path / "bad.html")
    assert any("Content Security Policy" in p for p in problems), problems
    assert "image not shown: remote" in problems and any("undefinedThing" in p for p in problems)


def test_the_first_screen_shows_skill_dm_p_and_status_without_scrolling(
    browser, report, report_results, tmp_path
):
    """At 1280 x 800 the compare table's headline columns are in view: no horizontal scroll to
    reach skill, skill_best, dm_p or status, of the grouped table or of the one-row-per-run one."""
    one_per_run = tmp_path / "runs.html"
    write_report(find_runs([], report_results), one_per_run, group=False)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        for page in (report, one_per_run):
            open_page(browser, page)
            for name in ("rmse", "skill", "skill_best", "dm_p", "status"):
                box = browser.execute_script(
                    "var r = document.querySelector(arguments[0]).getBoundingClientRect();"
                    "return [r.left, r.right, r.bottom, window.innerWidth, window.innerHeight];",
                    f"#compare-forecast th[title={name}]",
                )
                left, right, bottom, width, height = box
                assert left >= 0 and right <= width and bottom <= height, (page.name, name, box)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
