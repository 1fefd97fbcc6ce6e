"""The lab in a real browser: Debian's Chromium driven by Playwright (headless, no sandbox).

Each test saves a screenshot in pytest's tmp dir. Skipped when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from initlab.server import background, create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

# A quick setup: 200 moons points, one hidden layer of 10 units, 150 epochs.
QUICK = "epochs=150&lr=0.03&n=200&noise=0.2&hidden=10&seed=0"


@pytest.fixture(scope="module")
def url():
    with background(create_app()) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, url):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    context.set_default_timeout(120_000)  # generous: a loaded machine is slow, never wrong
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.base = url
    yield pg
    context.close()
    assert not errors, errors


def open_lab(page, query: str = "") -> None:
    page.goto(f"{page.base}/?{query}")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("body[data-run='reset']")  # the initial-weights preview is drawn


def train_and_wait(page) -> None:
    page.click("#train")
    page.wait_for_selector("body[data-run='done']", timeout=120_000)


def accuracy(page, testid: str) -> float:
    return float(page.get_by_test_id(testid).inner_text().rstrip("%")) / 100


@pytest.mark.slow  # measured 5-10 s on 2 busy cores
def test_zero_init_sigmoid_has_one_distinct_unit_and_he_relu_learns_better(page, tmp_path):
    open_lab(page, QUICK)
    page.select_option("#weight-init", "zeros")
    page.select_option("#activation", "sigmoid")
    page.wait_for_function("document.querySelector('[data-testid=distinct-hidden1]')?.textContent === '1 of 10'", polling=100)
    train_and_wait(page)
    assert page.get_by_test_id("distinct-hidden1").inner_text() == "1 of 10"
    assert page.get_by_test_id("verdict-symmetry").is_visible()
    assert page.get_by_test_id("epoch").inner_text() == "150"
    zero_acc = accuracy(page, "val-acc")
    assert "w=zeros" in page.url and "act=sigmoid" in page.url
    page.screenshot(path=str(tmp_path / "serve-zeros-sigmoid.png"))

    page.select_option("#weight-init", "he_normal")
    page.select_option("#activation", "relu")
    page.wait_for_function("document.querySelector('[data-testid=distinct-hidden1]')?.textContent === '10 of 10'", polling=100)
    train_and_wait(page)
    he_acc = accuracy(page, "val-acc")
    assert page.get_by_test_id("distinct-hidden1").inner_text() == "10 of 10"
    assert he_acc > zero_acc, (he_acc, zero_acc)
    assert he_acc >= 0.9
    # The view animated: several progress frames arrived, not just the first and the last. (The
    # rate depends on the machine and its load; bench/lab_bench.py measures it.)
    updates = re.match(r"(\d+) updates", page.locator("#rate").inner_text())
    assert updates and int(updates.group(1)) >= 5, page.locator("#rate").inner_text()
    page.screenshot(path=str(tmp_path / "serve-he-relu.png"))

    # downloads: results.json of the finished run and a PNG of the view
    with page.expect_download() as dl:
        page.click("#download-json")
    results = json.loads(Path(dl.value.path()).read_text())
    exp = results["experiments"][0]
    assert exp["initializer"] == "he_normal" and exp["activation"] == "relu" and exp["trainer"] == "batched"
    assert exp["spec"]["init_seed"] == exp["spec"]["order_seed"] == exp["init_seed"]  # the Seed field sets both
    assert exp["val_accuracy"] == pytest.approx(he_acc, abs=1e-3)
    with page.expect_download() as dl:
        page.click("#download-png")
    assert Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_three_initializers_shows_three_boundaries(page, tmp_path):
    open_lab(page, f"mode=compare&cmp=zeros,normal,he_normal&{QUICK}")
    assert page.get_by_test_id("pick-he_normal").get_attribute("class") == "pick on"
    train_and_wait(page)
    boards = page.locator("canvas.compare-boundary")
    assert boards.count() == 3
    # every board is drawn (not blank) and the three differ
    sums = page.evaluate("""() => [...document.querySelectorAll('canvas.compare-boundary')].map(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = 0; for (let i = 0; i < d.length; i += 97) s += d[i]; return s; })""")
    assert len(set(sums)) == 3 and min(sums) > 0
    summaries = [page.get_by_test_id(f"compare-summary-{i}").inner_text() for i in range(3)]
    assert all("val acc" in s for s in summaries)
    assert page.get_by_test_id("compare-distinct-0").inner_text() == "1 of 10"  # zeros: symmetric
    assert page.get_by_test_id("compare-distinct-2").inner_text() == "10 of 10"  # he_normal
    he, zeros = accuracy(page, "compare-val-acc-2"), accuracy(page, "compare-val-acc-0")
    assert he > zeros
    page.screenshot(path=str(tmp_path / "serve-compare.png"))


@pytest.mark.slow  # measured 5-10 s on 2 busy cores
def test_url_restores_the_setup_and_reset_keeps_the_initial_weights(page, tmp_path):
    open_lab(page, "w=glorot_normal&act=tanh&hidden=8,6,4&seed=7&dseed=3&opt=sgd&lr=0.1&bs=16&epochs=40&data=circles")
    assert page.input_value("#weight-init") == "glorot_normal"
    assert page.input_value("#data-seed") == "3" and page.input_value("#seed") == "7"
    points = page.evaluate("JSON.stringify(window.lab.data.X)")
    assert page.input_value("#activation") == "tanh"
    assert [page.input_value(f"#hidden-{i}") for i in range(3)] == ["8", "6", "4"]
    assert page.input_value("#optimizer") == "sgd" and page.input_value("#dataset") == "circles"
    assert page.get_by_test_id("layer-hidden3").is_visible()
    before = page.evaluate("JSON.stringify(window.lab.lastBoundary)")
    train_and_wait(page)
    page.click("#reset")
    page.wait_for_selector("body[data-run='reset']")
    assert page.get_by_test_id("epoch").inner_text() == "0"
    assert page.evaluate("JSON.stringify(window.lab.lastBoundary)") == before  # same seed, same weights
    page.fill("#seed", "8")
    page.dispatch_event("#seed", "change")
    page.wait_for_function(f"JSON.stringify(window.lab.lastBoundary) !== {json.dumps(before)}", polling=100)
    assert page.evaluate("JSON.stringify(window.lab.data.X)") == points  # the seed leaves the data alone
    page.fill("#data-seed", "4")
    page.dispatch_event("#data-seed", "change")
    page.wait_for_function(f"JSON.stringify(window.lab.data.X) !== {json.dumps(points)}", polling=100)
    assert "dseed=4" in page.url and "seed=8" in page.url
    page.screenshot(path=str(tmp_path / "serve-url-state.png"))


def test_limits_and_bad_csv_show_a_clear_error(page, tmp_path):
    open_lab(page, QUICK)
    page.fill("#hidden-0", "65")
    page.dispatch_event("#hidden-0", "change")
    page.wait_for_selector("#error:not([hidden])")
    assert "hidden[0]" in page.get_by_test_id("error").inner_text()
    page.fill("#hidden-0", "10")
    page.dispatch_event("#hidden-0", "change")
    page.select_option("#dataset", "csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2,label\n0,1,a\n0,oops,b\n1,1,a\n2,2,b\n3,3,a\n")
    page.set_input_files("#csv-file", str(bad))
    # one check of the text as shown (a later preview may clear the message again)
    page.wait_for_function("(t => t.includes('oops') && t.includes('line 3'))(document.getElementById('error').textContent)",
                           polling=50)
    good = tmp_path / "good.csv"
    good.write_text("a,b,cls\n" + "".join(f"{(i % 7) / 7:.3f},{(i % 5) / 5:.3f},{i % 3}\n" for i in range(60)))
    page.set_input_files("#csv-file", str(good))
    page.wait_for_function("document.getElementById('csv-status').textContent.includes('60 rows')", polling=100)
    page.wait_for_selector("body[data-run='reset']")
    assert page.get_by_test_id("error").is_hidden()
    page.screenshot(path=str(tmp_path / "serve-csv.png"))
