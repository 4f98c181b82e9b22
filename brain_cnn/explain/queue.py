"""Costly heat maps computed in the background, one at a time and each once, with progress."""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Hashable

import numpy as np

from brain_cnn.explain.base import Progress
from brain_cnn.model.engines import background

__all__ = ["ExplanationJob", "ExplanationQueue"]


class ExplanationJob:
    """One heat map being computed in the background: its progress, then its result."""

    def __init__(self, key: Hashable):
        self.key = key
        self.progress = 0.0
        self.future: Future = Future()

    @property
    def done(self) -> bool:
        return self.future.done()

    def result(self, timeout: float | None = None) -> np.ndarray:
        """The heat map; re-raises what went wrong computing it."""
        return self.future.result(timeout)

    def report(self, fraction: float) -> None:
        self.progress = float(min(1.0, max(self.progress, fraction)))


class ExplanationQueue:
    """Costly heat maps, computed ``workers`` at a time in the background and each once.

    Sessions asking for the same map (same ``key``) share one job; the last
    ``keep`` finished maps are kept. The work runs at explanation priority
    (:func:`brain_cnn.model.engines.background`), so calls go through the network first.

    Example:
        >>> queue = ExplanationQueue()
        >>> job = queue.request(("scan-sha", 0, "Occlusion"), lambda progress: explainer.heatmap(
        ...     image, 0, "Occlusion", progress))  # doctest: +SKIP
        >>> job.result()  # doctest: +SKIP
    """
    def __init__(self, workers: int = 1, keep: int = 256):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="brain-cnn-explain")
        self._jobs: OrderedDict[Hashable, ExplanationJob] = OrderedDict()
        self._lock = threading.Lock()
        self.keep = keep

    def get(self, key: Hashable) -> ExplanationJob | None:
        """The job for ``key`` if one was requested and has not failed or been dropped."""
        with self._lock:
            job = self._jobs.get(key)
            return None if job is None or (job.done and job.future.exception() is not None) else job

    def request(self, key: Hashable, compute: Callable[[Progress], np.ndarray]) -> ExplanationJob:
        """The job for ``key``: the one already queued, running or done, else a new one.

        ``compute`` gets a progress callback and returns the heat map. A job that
        failed is tried again.
        """
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not (job.done and job.future.exception() is not None):
                if job.done:  # the unfinished stay in the order they came, for ahead_of
                    self._jobs.move_to_end(key)
                return job
            job = ExplanationJob(key)
            self._jobs[key] = job
            finished = [k for k, j in self._jobs.items() if j.done]
            for old in finished[: max(0, len(finished) - self.keep)]:
                del self._jobs[old]
        self._pool.submit(self._run, job, compute)
        return job

    def ahead_of(self, job: ExplanationJob) -> int:
        """Jobs requested before ``job`` and not finished: what it waits for."""
        with self._lock:
            ahead = 0
            for other in self._jobs.values():
                if other is job:
                    return ahead
                ahead += not other.done
            return 0

    @staticmethod
    def _run(job: ExplanationJob, compute: Callable[[Progress], np.ndarray]) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            with background():
                heat = compute(job.report)
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the map
            job.future.set_exception(error)
        else:
            job.report(1.0)
            job.future.set_result(heat)
