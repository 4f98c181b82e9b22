"""Find exact and near-duplicate images within and across splits and data sets.

Public brain MRI sets were compiled from overlapping sources, and the same
slice often sits in both the training and the test folder, re-encoded or
resized. A test figure that counts such images measures memory, not skill.

Exact duplicates share their decoded pixels. Near duplicates have perceptual
hashes (DCT hash, Zauner 2010) within a small Hamming distance; the hash is
taken of the head crop that the model itself sees (:mod:`brain_cnn.preprocess`),
so it is robust to resizing, re-encoding and different black margins.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import UnreadableImageError
from .preprocess import DECODE_WORKERS, load_scan

__all__ = ["ImageHashes", "hash_images", "hash_prepared", "near_duplicate_pairs", "files_with_near_duplicates",
           "NEAR_DUPLICATE_BITS", "phash"]

HASH_SIDE = 16
# Of 256 hash bits; chosen by looking at Testing/Training pairs of the 4-class
# set at each distance: up to ~20 bits they are the same slice (re-encoded,
# re-windowed, cropped differently); from ~24 bits neighbouring slices of one
# patient appear, which are related but not copies.
NEAR_DUPLICATE_BITS = 20


def phash(grey: np.ndarray, side: int = HASH_SIDE) -> np.ndarray:
    """DCT perceptual hash of a greyscale image: ``side**2`` bits, packed into bytes.

    Brain slices all look alike at 8x8 DCT terms (the classic 64-bit hash
    matches different patients), so 16x16 terms (256 bits) are kept.
    """
    small = cv2.resize(grey.astype(np.float32), (4 * side, 4 * side), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:side, :side].ravel()
    bits = low[1:] > np.median(low[1:])  # the DC term says only how bright the image is
    return np.packbits(np.concatenate([[False], bits]))


@dataclass
class ImageHashes:
    """Hashes of a list of files, aligned with ``files``; unreadable files are left out."""

    files: list[str]
    perceptual: np.ndarray  # (N, HASH_SIDE**2 / 8) uint8
    pixels: list[str]  # SHA-256 of the prepared pixels

    def __len__(self) -> int:
        return len(self.files)


def hash_images(paths: list[Path], names: list[str] | None = None, size: int = 128) -> ImageHashes:
    """Hash images through the model's preprocessing path (head crop, ``size`` px)."""
    names = names or [str(p) for p in paths]

    def one(path):
        try:
            prepared = load_scan(path, size)[:, :, 0]
        except UnreadableImageError:
            return None
        return phash(prepared), hashlib.sha256(prepared.tobytes()).hexdigest()

    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        results = list(pool.map(one, paths))
    kept = [(n, r) for n, r in zip(names, results) if r is not None]
    perceptual = np.stack([r[0] for _, r in kept]) if kept else np.zeros((0, HASH_SIDE**2 // 8), np.uint8)
    return ImageHashes([n for n, _ in kept], perceptual, [r[1] for _, r in kept])


def hash_prepared(images: np.ndarray, files: list[str]) -> ImageHashes:
    """Hashes of already prepared model inputs (N, S, S, 1), e.g. a decoded split."""
    grey = images[..., 0]
    perceptual = np.stack([phash(g) for g in grey]) if len(grey) else np.zeros((0, HASH_SIDE**2 // 8), np.uint8)
    return ImageHashes(list(files), perceptual, [hashlib.sha256(g.tobytes()).hexdigest() for g in grey])


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances (len(a), len(b)) between packed hashes (rows of bytes)."""
    x = np.ascontiguousarray(a).view(np.uint64)
    y = np.ascontiguousarray(b).view(np.uint64)
    return np.bitwise_count(x[:, None, :] ^ y[None, :, :]).sum(axis=2, dtype=np.uint16)


def near_duplicate_pairs(a: ImageHashes, b: ImageHashes | None = None, max_bits: int = NEAR_DUPLICATE_BITS,
                         chunk: int = 256) -> list[tuple[int, int, int]]:
    """Pairs (i, j, bits) with hash distance <= ``max_bits``: across ``a`` and ``b``, or within ``a``.

    Within one set each pair is listed once (i < j).
    """
    same = b is None
    b = a if same else b
    pairs = []
    for start in range(0, len(a), chunk):
        block = _distances(a.perceptual[start : start + chunk], b.perceptual)
        rows, cols = np.nonzero(block <= max_bits)
        for r, c in zip(rows, cols):
            i = start + int(r)
            if not same or i < c:
                pairs.append((i, int(c), int(block[r, c])))
    return pairs


def files_with_near_duplicates(query: ImageHashes, reference: ImageHashes,
                               max_bits: int = NEAR_DUPLICATE_BITS) -> set[str]:
    """Files of ``query`` that have an exact or near duplicate in ``reference``."""
    exact = set(reference.pixels)
    found = {query.files[i] for i, _, _ in near_duplicate_pairs(query, reference, max_bits)}
    return found | {f for f, p in zip(query.files, query.pixels) if p in exact}


def _split_hashes(folder) -> dict[str, ImageHashes]:
    return {split: hash_images([folder.root / s.path for s in samples], [s.path for s in samples])
            for split, samples in folder.splits.items()}


def audit_folders(roots: list[str | Path], max_bits: int = NEAR_DUPLICATE_BITS, examples: int = 5) -> dict:
    """Duplicates within each split, across the splits of each folder, and between folders.

    Returns a JSON-ready report with counts and example pairs.
    """
    from .dataset import discover

    folders = [discover(root) for root in roots]
    hashes = [_split_hashes(f) for f in folders]
    report: dict = {"max_hash_bits": max_bits, "data": []}
    for folder, by_split in zip(folders, hashes):
        entry = {"root": str(folder.root), "images": {s: len(h) for s, h in by_split.items()},
                 "within": {}, "across": {}}
        for split, h in by_split.items():
            pairs = near_duplicate_pairs(h, None, max_bits)
            exact = len(h.pixels) - len(set(h.pixels))
            entry["within"][split] = {"exact_duplicates": exact, "near_duplicate_pairs": len(pairs),
                                      "examples": [[h.files[i], h.files[j], b] for i, j, b in pairs[:examples]]}
        order = ["train", "validation", "test", "all"]
        names = sorted(by_split, key=order.index)
        for k, a in enumerate(names):  # later splits (test) against earlier ones (train)
            for b in names[k + 1:]:
                query, reference = by_split[b], by_split[a]
                found = files_with_near_duplicates(query, reference, max_bits)
                pairs = near_duplicate_pairs(query, reference, max_bits)
                entry["across"][f"{b} in {a}"] = {
                    "images_with_duplicate": len(found), "of": len(query),
                    "examples": [[query.files[i], reference.files[j], bits] for i, j, bits in pairs[:examples]]}
        report["data"].append(entry)
    for (fa, ha), (fb, hb) in ((x, y) for k, x in enumerate(zip(folders, hashes)) for y in list(zip(folders, hashes))[k + 1:]):
        merged_a = _merge(ha.values())
        merged_b = _merge(hb.values())
        found = files_with_near_duplicates(merged_b, merged_a, max_bits)
        report.setdefault("between", []).append({"a": str(fa.root), "b": str(fb.root),
                                                 "images_of_b_in_a": len(found), "of": len(merged_b)})
    return report


def _merge(parts) -> ImageHashes:
    parts = list(parts)
    return ImageHashes([f for p in parts for f in p.files], np.concatenate([p.perceptual for p in parts]),
                       [x for p in parts for x in p.pixels])


def deduplicated_split(root: str | Path, seed: int = 42, max_bits: int = NEAR_DUPLICATE_BITS):
    """A split manifest of ``root`` without leakage: duplicates within train dropped (one kept), and
    test/validation images that have a near duplicate in train removed."""
    from .dataset import discover, make_split

    manifest = make_split(discover(root), seed=seed)
    folder_root = Path(manifest.root)
    train = manifest.splits["train"]
    hashes = hash_images([folder_root / s.path for s in train], [s.path for s in train])
    drop = {hashes.files[j] for i, j, _ in near_duplicate_pairs(hashes, None, max_bits)}
    seen_pixels: set[str] = set()
    for f, p in zip(hashes.files, hashes.pixels):
        if p in seen_pixels:
            drop.add(f)
        seen_pixels.add(p)
    kept_train = [s for s in train if s.path not in drop]
    reference = hashes  # all of train: a copy of a dropped training image still leaks
    for split in ("validation", "test"):
        samples = manifest.splits[split]
        query = hash_images([folder_root / s.path for s in samples], [s.path for s in samples])
        leaked = files_with_near_duplicates(query, reference, max_bits)
        manifest.splits[split] = [s for s in samples if s.path not in leaked]
        reference = _merge([reference, query])  # test is also checked against validation
    manifest.splits["train"] = kept_train
    manifest.origin += f"; de-duplicated (256-bit DCT hash, <= {max_bits} bits)"
    return manifest
