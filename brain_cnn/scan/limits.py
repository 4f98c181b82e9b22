"""How much one session may hand the readers at once: a day's studies, never the server's memory.

Streamlit bounds each uploaded file (``server.maxUploadSize``), not how many a
session holds; every file a session holds is read and kept decoded while it
is shown, in the one server process all sessions share.
"""

from __future__ import annotations

__all__ = ["MAX_SESSION_FILES", "MAX_SESSION_BYTES", "within_session_limits"]

# A study of a few series of a few hundred slices each; a larger one goes as a ZIP per series.
MAX_SESSION_FILES = 1000
MAX_SESSION_BYTES = 1024 * 2**20


def within_session_limits(sizes: list[int], max_files: int | None = None,
                          max_bytes: int | None = None) -> tuple[int, str | None]:
    """How many of the uploads (``sizes`` in bytes, in upload order) are read, and what to tell the user of
    the rest (None when all are read). The first ones are kept, so what was read stays on screen."""
    max_files = MAX_SESSION_FILES if max_files is None else max_files
    max_bytes = MAX_SESSION_BYTES if max_bytes is None else max_bytes
    kept, total = 0, 0
    for size in sizes:
        if kept == max_files or total + size > max_bytes:
            break
        kept, total = kept + 1, total + size
    if kept == len(sizes):
        return kept, None
    return kept, (f"{len(sizes) - kept} of the {len(sizes)} uploads were not read: one session reads at most "
                  f"{max_files} files and {max_bytes // 2**20} MB at a time. Remove the cases you are done with "
                  "(or upload a large series as one ZIP) and the rest will be read.")
