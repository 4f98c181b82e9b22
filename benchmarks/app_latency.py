"""The app, end to end: seconds from upload to a visible result, in headless Chromium.

    python benchmarks/app_latency.py [--model-dir models] [--repeats 5]

Starts `streamlit run app.py` on localhost, uploads a new synthetic scan each
time (so nothing is cached) and times until the page shows that scan's digest,
its call and the map drawn with the call (the quick method's caption, or for a
tumour-map model the outline's). Prints
the machine and its load average before and after, since another job on the
same cores shows in every figure. Needs Debian's chromium and the playwright
package (`make test` installs both).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app_server import ROOT, app_server, load  # beside this script
from machine import describe  # benchmarks/machine.py, beside this script


from brain_cnn.explain.explainer import QUICK_METHOD  # noqa: E402  (the overlay's caption names it)
from brain_cnn.inference.assessment import OUTLINE_CAPTION  # noqa: E402  (a tumour-map model's first view)

CALL = "text=/Tumour suspected|No tumour seen|Cannot assess|Most likely/"
# What is drawn with the call: the quick heat map's caption, or a tumour-map model's outline.
MAP = f"text=/{re.escape(QUICK_METHOD)} for|{re.escape(OUTLINE_CAPTION)}/"


def scan(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    size = 512
    yy, xx = np.mgrid[0:size, 0:size]
    r = ((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.35 * size)) ** 2
    image = np.where(r <= 1, 200, 0) * (r > 0.8) + np.where(r <= 0.8, 90, 0) + rng.normal(0, 5, (size, size))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=str(ROOT / "models"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--port", type=int, default=8599)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    url = f"http://127.0.0.1:{args.port}"
    before = load()
    with app_server(args.port, args.model_dir), sync_playwright() as playwright, \
            tempfile.TemporaryDirectory() as folder:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page()
        page.set_default_timeout(120_000)
        timings = []
        for i in range(args.repeats + 1):  # the first loads the model and is reported apart
            page.goto(url)
            page.get_by_text("Upload a scan to see").wait_for()
            path = Path(folder) / f"scan-{i}.png"
            data = scan(i)
            path.write_bytes(data)
            started = time.perf_counter()
            page.locator("input[type=file]").set_input_files(str(path))
            page.get_by_text(f"Input SHA-256 {hashlib.sha256(data).hexdigest()[:16]}").wait_for()
            page.locator(CALL).first.wait_for()
            page.locator(MAP).first.wait_for()
            timings.append(time.perf_counter() - started)
        browser.close()
    print(f"machine: {describe()}")
    print(f"load average (1, 5, 15 min): {before} before, {load()} after")
    print(f"first upload (model loading included): {timings[0]:.2f} s")
    print(f"upload to visible call and its map ({QUICK_METHOD} or the outline): median {statistics.median(timings[1:]):.2f} s, "
          f"max {max(timings[1:]):.2f} s over {args.repeats} uploads")

if __name__ == "__main__":
    main()
