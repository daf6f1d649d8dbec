"""Build the report of a results folder and measure it: build seconds, size, headless-chromium open time.

    python tests/report/measure_report.py RESULTS OUT [--screenshots docs/img] [--neuron L3.N750]

Prints one JSON line; with ``--screenshots``, saves report-overview.png and report-neuron.png there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from report_helpers import open_browser  # noqa: E402

from tl_neuronprobe.reporting import report  # noqa: E402


def open_seconds(driver, url: str, repeats: int = 5) -> dict:
    """Wall time of ``driver.get`` and the page's own load time (navigation start to load event end)."""
    wall, load = [], []
    for _ in range(repeats):
        driver.get("about:blank")
        t0 = time.perf_counter()
        driver.get(url)
        wall.append(time.perf_counter() - t0)
        load.append(driver.execute_script("var t = performance.timing; return t.loadEventEnd - t.navigationStart;")
                    / 1000)
    return dict(wall_median=round(statistics.median(wall), 3), wall_max=round(max(wall), 3),
                load_median=round(statistics.median(load), 3))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    ap.add_argument("--screenshots", default=None)
    ap.add_argument("--neuron", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    index = report(args.results, args.out)
    build = time.perf_counter() - t0
    files = [p for p in index.parent.rglob("*") if p.is_file()]
    pages = list((index.parent / "neurons").glob("*.html"))
    driver = open_browser()
    try:
        driver.set_window_size(1280, 1000)
        timing = dict(index=open_seconds(driver, index.as_uri()))
        neuron = index.parent / "neurons" / f"{args.neuron or sorted(pages)[0].stem}.html"
        timing["neuron_page"] = open_seconds(driver, neuron.as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if args.screenshots:
            shots = Path(args.screenshots)
            shots.mkdir(parents=True, exist_ok=True)
            driver.get(index.as_uri())
            driver.find_element("id", "search").send_keys("these")  # the search drop-down, open
            driver.save_screenshot(str(shots / "report-overview.png"))
            driver.set_window_size(1280, 1500)
            driver.get(neuron.as_uri())
            driver.save_screenshot(str(shots / "report-neuron.png"))
    finally:
        driver.quit()
    print(json.dumps(dict(build_seconds=round(build, 2), files=len(files), neuron_pages=len(pages),
                          megabytes=round(sum(p.stat().st_size for p in files) / 1e6, 2), open=timing,
                          console_errors=len(errors))))


if __name__ == "__main__":
    main()
