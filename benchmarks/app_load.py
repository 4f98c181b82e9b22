"""The app under load: N people at once, each uploading a different official test slice.

    python benchmarks/app_load.py --sessions 8 [--rounds 3] [--model-dir models]
        [--images ../shared/data/brain-tumor-mri/Testing]

Starts `streamlit run app.py` on localhost with the shipped default model and
drives one headless Chromium with a page (its own browser context, so its own
session) per person:

1. cold: all pages open at once on the fresh server (the model starts loading
   in the background), then all upload at once;
2. warm, ``--rounds`` times: all pages reopened (new sessions), then all upload
   a new slice at the same moment.

Times each session from its upload to the page showing that slice's digest,
its call and the map drawn with the call. Checks every call against the same
model run outside the app on the same bytes (correct) and that no page shows
another session's digest or file name (its own). Prints the median and worst
time, those checks, the server's peak resident memory (VmHWM of its process)
and the load average before and after. Needs Debian's chromium and playwright.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import time
from pathlib import Path

from app_server import ROOT, app_server, load  # beside this script
from machine import describe  # benchmarks/machine.py, beside this script


from brain_cnn.explain.explainer import QUICK_METHOD  # noqa: E402

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def peak_memory(pid: int) -> float:
    """Peak resident memory of process ``pid`` in GiB (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chromium_cpu_seconds() -> float:
    """CPU time used so far by every Chromium process (the browser shares the cores with the server)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"chromium" in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                total += cpu_seconds(int(proc.name))
        except OSError:  # ended meanwhile
            pass
    return total


def test_slices(root: Path, count: int) -> list[Path]:
    """``count`` different slices, taken in turn from each class folder (sorted), so every class is asked."""
    classes = [sorted(p for p in folder.iterdir() if p.is_file()) for folder in sorted(root.iterdir()) if folder.is_dir()]
    picked = [files[i] for i in range(max(map(len, classes))) for files in classes if i < len(files)]
    if len(picked) < count:
        raise SystemExit(f"{root} has {len(picked)} images; {count} needed")
    return picked[:count]


async def run(url: str, rounds: list[list[Path]], expected: dict[str, str], server: int) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        pages = []
        for _ in rounds[0]:
            page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
            page.set_default_timeout(600_000)
            pages.append(page)

        async def open_page(page) -> float:
            started = time.perf_counter()
            await page.goto(url)
            await page.get_by_text("Upload a scan to see").wait_for()
            return time.perf_counter() - started

        async def upload(page, path: Path) -> tuple[float, str]:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            started = time.perf_counter()
            await page.locator("input[type=file]").set_input_files(str(path))
            await page.get_by_text(f"Input SHA-256 {sha[:16]}").wait_for()
            await page.locator("text=/Tumour suspected|No tumour seen|Cannot assess|Most likely/").first.wait_for()
            await page.get_by_text(f"{QUICK_METHOD} for").wait_for()
            return time.perf_counter() - started, await page.inner_text("body")

        results = {"open": [], "cold": [], "warm": [], "correct": 0, "own": 0, "calls": 0, "server_cpu": 0.0,
                   "browser_cpu": 0.0}
        for number, slices in enumerate(rounds):
            opened = await asyncio.gather(*(open_page(page) for page in pages))
            if number == 0:
                results["open"] = opened
            server_cpu, browser_cpu = cpu_seconds(server), chromium_cpu_seconds()
            answers = await asyncio.gather(*(upload(page, path) for page, path in zip(pages, slices)))
            if number > 0:
                results["server_cpu"] += cpu_seconds(server) - server_cpu
                results["browser_cpu"] += chromium_cpu_seconds() - browser_cpu
            results["cold" if number == 0 else "warm"].extend(seconds for seconds, _ in answers)
            for (seconds, text), path in zip(answers, slices):
                others = [p for p in slices if p != path]
                results["calls"] += 1
                results["correct"] += expected[path.name] in text
                results["own"] += not any(p.name in text or hashlib.sha256(p.read_bytes()).hexdigest()[:16] in text
                                          for p in others)
        await browser.close()
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds after the cold one")
    parser.add_argument("--model-dir", default=str(ROOT / "models"))
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "brain-tumor-mri" / "Testing"))
    parser.add_argument("--port", type=int, default=8597)
    args = parser.parse_args()

    from brain_cnn.inference.assessment import assess
    from brain_cnn.model.folder import DEFAULT_MODEL, list_model_folders
    from brain_cnn.inference.predictor import Predictor

    folders = {f.name: f for f in list_model_folders(Path(args.model_dir))}
    model = folders.get(DEFAULT_MODEL) or next(iter(folders.values()))  # what the app opens with
    slices = test_slices(Path(args.images), args.sessions * (args.rounds + 1))
    rounds = [slices[i * args.sessions:(i + 1) * args.sessions] for i in range(args.rounds + 1)]
    # The calls the app should show: the same model, outside the app, on the same bytes.
    predictor = Predictor(model)
    expected = {p.name: assess(predictor, p.read_bytes(), p.name).slices[0].summary() for p in slices}
    labels = {p.name: p.parent.name for p in slices}
    agree = sum(assess(predictor, p.read_bytes(), p.name).slices[0].label == labels[p.name] for p in slices)
    del predictor

    before = load()
    with app_server(args.port, args.model_dir) as server:
        results = asyncio.run(run(f"http://127.0.0.1:{args.port}", rounds, expected, server.pid))
        memory = peak_memory(server.pid)

    warm = results["warm"]
    print(f"machine: {describe()}")
    print(f"load average (1, 5, 15 min): {before} before, {load()} after")
    print(f"model: {model.name}; {args.sessions} concurrent sessions, 1 cold + {args.rounds} warm rounds, "
          f"{len(slices)} different official test slices ({agree} of {len(slices)} called as their folder says)")
    print(f"cold server, page open to uploader: median {statistics.median(results['open']):.2f} s, "
          f"worst {max(results['open']):.2f} s")
    print(f"cold, upload to visible call and {QUICK_METHOD} map (model loading included): "
          f"median {statistics.median(results['cold']):.2f} s, worst {max(results['cold']):.2f} s")
    if warm:
        print(f"warm, upload to visible call and {QUICK_METHOD} map: median {statistics.median(warm):.2f} s, "
              f"worst {max(warm):.2f} s over {len(warm)} uploads")
        print(f"CPU per warm upload: server {results['server_cpu'] / len(warm):.2f} s, "
              f"browser {results['browser_cpu'] / len(warm):.2f} s")
    print(f"calls as the model gives them outside the app: {results['correct']} of {results['calls']}; "
          f"pages showing only their own upload: {results['own']} of {results['calls']}")
    print(f"server peak resident memory: {memory:.2f} GiB")


if __name__ == "__main__":
    main()
