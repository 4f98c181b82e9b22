"""Several people at once: the inference gate, and concurrent browser sessions that each see their own call.

The browser part starts `streamlit run app.py` over the tiny test model and
drives one headless Chromium with a page per session (Playwright's async API),
all uploading a different scan at the same moment.
"""

import asyncio
import hashlib
import shutil
import threading
import time

import numpy as np
import pytest

from brain_cnn.model.engines import CALL, EXPLANATION, InferenceGate, background

from conftest import encode, phantom


def test_the_gate_never_runs_more_passes_than_it_has_slots():
    gate = InferenceGate(2)
    running, peak, lock = [0], [0], threading.Lock()

    def one_pass():
        with gate.slot():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.01)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=one_pass) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert peak[0] == 2 and gate.waiting == 0


def _queue_behind(gate: InferenceGate, entries: list[tuple[str, int]]) -> list[str]:
    """Hold the gate's only slot, queue ``entries`` (name, priority) in that order, release; the order they ran."""
    order, threads = [], []
    holding = gate.slot()
    holding.__enter__()
    for name, priority in entries:
        def run(name=name, priority=priority):
            with gate.slot(priority):
                order.append(name)

        threads.append(threading.Thread(target=run))
        threads[-1].start()
        deadline = time.time() + 5
        while gate.waiting < len(threads) and time.time() < deadline:  # each queued before the next comes
            time.sleep(0.001)
    holding.__exit__(None, None, None)
    for thread in threads:
        thread.join(10)
    return order


def test_calls_go_ahead_of_explanations_and_each_kind_in_turn():
    gate = InferenceGate(1)
    order = _queue_behind(gate, [("map 1", EXPLANATION), ("call 1", CALL), ("map 2", EXPLANATION), ("call 2", CALL)])
    assert order == ["call 1", "call 2", "map 1", "map 2"]


def test_a_pass_inside_a_pass_does_not_wait_for_itself():
    gate = InferenceGate(1)
    with gate.slot():
        with gate.slot():
            pass
    assert gate.waiting == 0
    with gate.slot():  # and the slot was given back
        pass


def test_background_work_asks_at_explanation_priority():
    from brain_cnn.model.engines import _PRIORITY

    assert _PRIORITY.get() == CALL
    with background():
        assert _PRIORITY.get() == EXPLANATION
    assert _PRIORITY.get() == CALL


SESSIONS = 4


@pytest.mark.slow
def test_concurrent_sessions_each_see_their_own_call(tiny_model, tmp_path):
    from test_browser import CHROMIUM, CHROMIUM_FLAGS, streamlit_server

    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    from brain_cnn.inference.assessment import assess
    from brain_cnn.explain.explainer import QUICK_METHOD
    from brain_cnn.inference.predictor import Predictor

    predictor = Predictor(tiny_model)
    scans = []
    for i in range(SESSIONS):
        data = encode(phantom(200 + 8 * i, lesion=i % 2 == 1, seed=40 + i), "PNG")
        path = tmp_path / f"session-{i}.png"
        path.write_bytes(data)
        expected = assess(predictor, data, path.name).slices[0].summary()
        scans.append((path, hashlib.sha256(data).hexdigest()[:16], expected))

    async def sessions(url):
        async with async_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                       args=CHROMIUM_FLAGS)
            pages = []
            for _ in scans:
                page = await (await browser.new_context()).new_page()
                page.set_default_timeout(120_000)
                pages.append(page)
            await asyncio.gather(*(page.goto(url) for page in pages))
            await asyncio.gather(*(page.get_by_text("Upload a scan to see").wait_for() for page in pages))

            async def upload(page, path, sha):
                await page.locator("input[type=file]").set_input_files(str(path))
                await page.get_by_text(f"Input SHA-256 {sha}").wait_for()
                await page.get_by_text(f"{QUICK_METHOD} for").wait_for()
                return await page.inner_text("body")

            shown = await asyncio.gather(*(upload(page, path, sha) for page, (path, sha, _) in zip(pages, scans)))
            await browser.close()
            return shown

    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / tiny_model.name)
    with streamlit_server(models, tmp_path / "audit.jsonl") as (url, _):
        shown = asyncio.run(sessions(url))
    for i, (text, (path, sha, expected)) in enumerate(zip(shown, scans)):
        assert expected in text, f"session {i} shows another call than its scan's"
        others = [s for j, s in enumerate(scans) if j != i]
        assert not any(other_sha in text or other.name in text for other, other_sha, _ in others), \
            f"session {i} shows another session's upload"
    assert len({sha for _, sha, _ in scans}) == SESSIONS and np.all([path.name in t for (path, _, _), t in
                                                                      zip(scans, shown)])
