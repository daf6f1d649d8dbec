"""The report in a real headless chromium, opened from disk as a person would (file://, no server)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from report_helpers import TRIGGER, open_browser

import tl_neuronprobe as tnp

pytestmark = pytest.mark.browser

OPEN_SECONDS = 2.0


def severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def local(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def test_index_opens_fast_without_console_errors(browser, site):
    browser.get_log("browser")
    t0 = time.perf_counter()
    browser.get(site.as_uri())
    seconds = time.perf_counter() - t0
    load_ms = browser.execute_script("var t = performance.timing; return t.loadEventEnd - t.navigationStart;")
    assert seconds < OPEN_SECONDS and load_ms < OPEN_SECONDS * 1000
    assert browser.find_element("css selector", "h1").text == "planted"
    assert severe(browser) == []


def test_every_internal_link_and_image_resolves(browser, site):
    """Crawl from index.html: each page opens without console errors, each file:// link and image exists,
    each image decodes (naturalWidth > 0)."""
    seen, queue, pages = set(), [site.as_uri()], 0
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        browser.get(url)
        pages += 1
        assert severe(browser) == [], url
        links = browser.execute_script("return Array.from(document.querySelectorAll('a[href]'), a => a.href);")
        images = browser.execute_script(
            "return Array.from(document.images, i => [i.src, i.complete && i.naturalWidth > 0]);")
        for src, decoded in images:
            assert decoded and local(src).is_file(), (url, src)
        for href in links:
            assert href.startswith("file://"), (url, href)  # no CDN, no server
            assert local(href).is_file(), (url, href)
            if href.endswith(".html"):
                queue.append(href.split("#")[0])
    assert pages == 1 + len(list((site.parent / "neurons").glob("*.html")))


@pytest.mark.parametrize("which", ["trigger", "most negative"])
def test_coloured_tokens_read_back_from_the_dom(browser, site, results, which):
    """Values and colours of the coloured words, read from the rendered DOM, equal the activations (on the planted
    trigger neuron, and on the page neuron with the most negative activation, for the blue scale)."""
    acts = tnp.Activations.load(results / "activations")
    pages = [p.stem for p in (site.parent / "neurons").glob("*.html")]
    name = TRIGGER if which == "trigger" else pages[int(acts.X[:, acts.columns(pages)].min(0).values.argmin())]
    col = int(acts.columns([name])[0])
    browser.get((site.parent / "neurons" / f"{name}.html").as_uri())
    if which != "trigger":
        assert browser.find_elements("css selector", "#negative p.ctx")
    rows = browser.execute_script("""
        return Array.from(document.querySelectorAll('p.ctx'), p => [Number(p.dataset.sentence),
            Array.from(p.querySelectorAll('span.tok'), s => [s.textContent, Number(s.dataset.value),
                getComputedStyle(s).backgroundColor, s.title])]);""")
    assert len(rows) >= 3
    column = acts.X[:, col]
    full = (float(column.max()), -float(column.min()))  # full colour: largest positive / most negative value
    for sentence, tokens in rows:
        idx = [i for i, s in enumerate(acts.sentence_ids) if s == sentence]
        assert [t[0] for t in tokens] == [acts.words[i] for i in idx]
        want = acts.X[idx, col].tolist()
        assert [t[1] for t in tokens] == pytest.approx(want, rel=1e-5, abs=1e-6)
        for (word, value, colour, title), v in zip(tokens, want):
            assert title.startswith(f"{word}: ")
            r, g, b, *alpha = [float(x) for x in re.findall(r"[\d.]+", colour)]
            assert (r, g, b) == ((220, 38, 38) if v >= 0 else (37, 99, 235)), (word, v, colour)
            expected = min(1.0, abs(v) / (full[0] if v >= 0 else full[1]))
            assert (alpha[0] if alpha else 1.0) == pytest.approx(expected, abs=0.01), (word, v, colour)


def test_search_finds_neurons_and_words(browser, site):
    browser.get(site.as_uri())
    box = browser.find_element("id", "search")
    box.send_keys("L1.N5")
    hits = [a.get_attribute("href") for a in browser.find_elements("css selector", "#search-results a")]
    assert any(h.endswith("neurons/L1.N5.html") for h in hits)
    box.clear()
    box.send_keys("cabinet")  # the planted trigger word of L1.N57
    hits = [a.get_attribute("href") for a in browser.find_elements("css selector", "#search-results a")]
    assert any(h.endswith(f"neurons/{TRIGGER}.html") for h in hits)
    box.clear()
    box.send_keys("zzqx")  # control: nothing matches
    assert browser.find_elements("css selector", "#search-results a") == []
    box.clear()
    box.send_keys("L1.N5")
    browser.find_element("css selector", "#search-results a").click()
    assert browser.find_element("id", "neuron").text == "L1.N5"
    assert severe(browser) == []


def test_tables_sort_on_click(browser, site):
    browser.get(site.as_uri())
    layer = browser.find_element("css selector", "#neuron-index th:nth-child(2)")
    column = ("return Array.from(document.querySelectorAll('#neuron-index tbody tr td:nth-child(2)'), "
              "td => +td.textContent);")
    layer.click()
    up = browser.execute_script(column)
    layer.click()
    down = browser.execute_script(column)
    assert up == sorted(up) and down == sorted(up, reverse=True) and up != down


def test_readable_without_javascript(site):
    driver = open_browser(javascript=False)
    try:
        driver.get((site.parent / "neurons" / f"{TRIGGER}.html").as_uri())
        tokens = driver.find_elements("css selector", "#positive span.tok")
        assert tokens and all(t.is_displayed() for t in tokens)
        assert "cabinet" in driver.find_element("id", "positive").text
        assert not driver.find_element("id", "search").is_displayed()  # the search needs JS and says so
        assert "neuron index" in driver.find_element("tag name", "header").text
        assert driver.find_element("id", "snippet").is_displayed()
    finally:
        driver.quit()


def test_screenshots(browser, site, tmp_path):
    for name, page in (("overview", site), ("neuron", site.parent / "neurons" / f"{TRIGGER}.html")):
        browser.get(page.as_uri())
        assert browser.save_screenshot(str(tmp_path / f"{name}.png"))
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
