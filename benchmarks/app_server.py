"""The app served on localhost for a benchmark, and the machine's load beside its figures."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def app_server(port: int, model_dir: str) -> Iterator[subprocess.Popen]:
    """`streamlit run app.py` on 127.0.0.1:``port`` over ``model_dir``, with a throwaway audit log;
    yields once the server answers its health check, and stops it afterwards."""
    env = {**os.environ, "BRAIN_CNN_MODELS": model_dir, "TF_CPP_MIN_LOG_LEVEL": "3",
           "BRAIN_CNN_AUDIT": str(Path(tempfile.mkdtemp()) / "audit.jsonl")}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)
