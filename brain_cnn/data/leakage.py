"""One notion of "the same slice": copies within and across splits and data sets, and splits that keep them together.

Public brain MRI sets were compiled from overlapping sources. The same slice
often sits in both the training and the test folder, re-encoded, resized,
cropped differently, and often mirrored left-right (the 4-class set holds
about 500 such mirrored pairs between its Training and Testing folders). A
network trained with flip augmentation has seen a mirrored copy as surely as
a plain one, so a test figure that counts either measures memory, not skill.

An image is a *copy* of another when the perceptual hash of its head crop, as
it is or after any of the seven other flips and right-angle rotations, lies
within :data:`COPY_BITS` of the other's. Every caller (evaluation, screening,
``--exclude``, the audit, the grouped splits) uses this module, with one hash
size and one threshold.

The hash is a DCT hash (Zauner 2010) of the head as the model's own
preprocessing finds it (:func:`brain_cnn.scan.preprocess.find_head`), rescaled to
:data:`HASH_SIZE` px, so black margins, resizing and re-encoding do not
matter.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from brain_cnn.data.dataset import DataFolder, Sample, SplitManifest, discover, make_split
from brain_cnn.errors import UnreadableImageError
from brain_cnn.scan.preprocess import DECODE_WORKERS, find_head, read_file
from brain_cnn.scan.read import read_scan

__all__ = ["HASH_SIZE", "COPY_BITS", "KINDS", "ImageHashes", "CopyPair", "hash_images", "hash_samples",
           "orientation_hashes", "copy_pairs", "files_with_copies", "copy_groups", "Groups", "cases_file", "patient_groups",
           "split_groups", "grouped_split", "audit_folders", "deduplicated_split"]

# Every image is hashed from its head crop at this size, whatever the model's input size.
HASH_SIZE = 128
HASH_SIDE = 16  # DCT terms per side: 256 bits
# Of 256 bits (distances are even: each hash has as many ones as zeros). Chosen by looking at the closest
# Training image of each 4-class Testing image at each distance (`brain-cnn audit --json` lists them): up to
# 24 bits, pairs of every kind were the same slice (re-encoded, re-windowed, cropped differently); from 26 bits
# on, neighbouring slices of one patient appear, related but not copies. Most copies lie within 14 bits.
COPY_BITS = 24

# The eight orientations of a square (the dihedral group), in the order they are tried, and what each is called.
_ORIENTATIONS = (
    ("identical", lambda a: a),
    ("mirrored", np.fliplr),
    ("flipped", np.flipud),
    ("rotated", lambda a: np.rot90(a, 2)),
    ("rotated", lambda a: np.rot90(a, 1)),
    ("rotated", lambda a: np.rot90(a, 3)),
    ("rotated and mirrored", np.transpose),
    ("rotated and mirrored", lambda a: np.rot90(a, 2).T),
)
KINDS = ("identical", "mirrored", "flipped", "rotated", "rotated and mirrored")


def _dct_hash(square: np.ndarray) -> np.ndarray:
    """``HASH_SIDE**2`` bits of the low DCT terms above their median, packed into bytes.

    Brain slices all look alike at 8x8 DCT terms (the classic 64-bit hash
    matches different patients), so 16x16 terms are kept.
    """
    small = cv2.resize(square.astype(np.float32), (4 * HASH_SIDE, 4 * HASH_SIDE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:HASH_SIDE, :HASH_SIDE].ravel()
    bits = low[1:] > np.median(low[1:])  # the DC term says only how bright the image is
    return np.packbits(np.concatenate([[False], bits]))


def orientation_hashes(square: np.ndarray) -> np.ndarray:
    """Hashes (8, 32) ``uint8`` of a square greyscale head crop in each of its eight orientations; row 0 as it is."""
    return np.stack([_dct_hash(np.ascontiguousarray(turn(square))) for _, turn in _ORIENTATIONS])


@dataclass
class ImageHashes:
    """Hashes of a list of files, aligned with ``files``; unreadable files are left out."""

    files: list[str]
    perceptual: np.ndarray  # (N, 8, HASH_SIDE**2 / 8) uint8: each image in its eight orientations
    pixels: list[str]  # SHA-256 of the prepared pixels

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, keep: list[int]) -> ImageHashes:
        return ImageHashes([self.files[i] for i in keep], self.perceptual[keep], [self.pixels[i] for i in keep])

    @staticmethod
    def merge(parts) -> ImageHashes:
        parts = list(parts)
        if not parts:
            return _empty()
        return ImageHashes([f for p in parts for f in p.files], np.concatenate([p.perceptual for p in parts]),
                           [x for p in parts for x in p.pixels])


def _empty() -> ImageHashes:
    return ImageHashes([], np.zeros((0, len(_ORIENTATIONS), HASH_SIDE**2 // 8), np.uint8), [])


# Hashes already computed in this process, by file identity: an evaluation hashes the training split
# once for its own test split and again for each external set, an audit each folder once.
_MEMO: dict[tuple[str, int, int], tuple[np.ndarray, str] | None] = {}


def _hash_file(path: Path) -> tuple[np.ndarray, str] | None:
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        return None
    if key not in _MEMO:
        try:
            square = head_square(path)
            _MEMO[key] = orientation_hashes(square), hashlib.sha256(square.tobytes()).hexdigest()
        except UnreadableImageError:
            _MEMO[key] = None
    return _MEMO[key]


def head_square(path: Path) -> np.ndarray:
    """A one-slice file's head (:func:`brain_cnn.scan.preprocess.find_head`) resized to a ``HASH_SIZE`` square.

    The head's box is stretched to the square rather than padded, as the model's
    input is: padding centres the crop to the nearest pixel, which shifts a
    mirrored copy by one pixel against its original; the stretch commutes with
    every flip and rotation.

    Raises:
        UnreadableImageError: the file cannot be decoded, or is a volume.
    """
    scan = read_scan(read_file(path), path.name)
    if scan.is_volume:
        raise UnreadableImageError(f"{path.name}: a volume, not a single slice")
    grey = scan.slices[0]
    x0, y0, x1, y1 = find_head(grey)
    return cv2.resize(grey[y0:y1, x0:x1], (HASH_SIZE, HASH_SIZE), interpolation=cv2.INTER_AREA)


def hash_images(paths: list[Path], names: list[str] | None = None) -> ImageHashes:
    """Hash image files through the model's preprocessing path (head crop at :data:`HASH_SIZE` px)."""
    names = names or [str(p) for p in paths]
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        results = list(pool.map(_hash_file, [Path(p) for p in paths]))
    kept = [(n, r) for n, r in zip(names, results) if r is not None]
    if not kept:
        return _empty()
    return ImageHashes([n for n, _ in kept], np.stack([r[0] for _, r in kept]), [r[1] for _, r in kept])


def hash_samples(root: str | Path, samples: list[Sample]) -> ImageHashes:
    """Hashes of samples (paths relative to ``root``), named by their relative paths."""
    return hash_images([Path(root) / s.path for s in samples], [s.path for s in samples])


@dataclass(frozen=True)
class CopyPair:
    """Image ``query`` of one set is a copy of image ``reference`` of another (or the same) set."""

    query: int
    reference: int
    bits: int  # hash distance in the best-matching orientation
    kind: str  # one of KINDS: how the query must be turned to match


def _signs(packed: np.ndarray) -> np.ndarray:
    """Packed hashes (..., 32) to +-1 float32 vectors (..., 256): Hamming distance = (256 - dot) / 2."""
    return np.unpackbits(packed, axis=-1).astype(np.float32) * 2 - 1


def _close(query: ImageHashes, reference: ImageHashes, max_bits: int, chunk: int) -> dict[tuple[int, int], tuple[int, str]]:
    """(query, reference) -> (bits, kind) for pairs within ``max_bits``, each query image turned eight ways
    against each reference image as it is; exact pixel matches count as identical at 0 bits."""
    bits = HASH_SIDE**2
    plain = _signs(reference.perceptual[:, 0])  # (M, 256)
    pixels: dict[str, list[int]] = {}
    for j, digest in enumerate(reference.pixels):
        pixels.setdefault(digest, []).append(j)
    found = {}
    for start in range(0, len(query), chunk):
        turned = _signs(query.perceptual[start : start + chunk])  # (c, 8, 256)
        dots = np.einsum("ctk,mk->ctm", turned, plain, optimize=True)
        distance = np.rint((bits - dots) / 2).astype(np.int32)  # (c, 8, M)
        best = distance.min(axis=1)
        orientation = distance.argmin(axis=1)  # the first of equals: "identical" wins ties
        for r, c in zip(*np.nonzero(best <= max_bits)):
            found[(start + int(r), int(c))] = (int(best[r, c]), _ORIENTATIONS[int(orientation[r, c])][0])
        for r in range(len(turned)):
            for c in pixels.get(query.pixels[start + r], ()):
                found[(start + r, c)] = (0, "identical")
    return found


def copy_pairs(query: ImageHashes, reference: ImageHashes | None = None, max_bits: int = COPY_BITS,
               chunk: int = 128) -> list[CopyPair]:
    """Every (query, reference) pair that are copies: across two sets, or within ``query`` (each pair once).

    Each image is tried in its eight orientations against the other as it is,
    both ways round (the hash of a turned image is not exactly the turned hash,
    so this keeps "is a copy of" symmetric); the closest orientation names the
    kind, "identical" winning ties.
    """
    same = reference is None
    reference = query if same else reference
    if not len(query) or not len(reference):
        return []
    forward = _close(query, reference, max_bits, chunk)
    # Within one set the matrix holds both ways round already; across two, turn the reference images too.
    backward = forward if same else _close(reference, query, max_bits, chunk)
    merged = dict(forward)
    for (j, i), found in backward.items():  # the inverse of each kind has the same name
        if (i, j) not in merged or _rank(found) < _rank(merged[(i, j)]):
            merged[(i, j)] = found
    return [CopyPair(i, j, bits, kind) for (i, j), (bits, kind) in sorted(merged.items()) if not same or i < j]


def _rank(found: tuple[int, str]) -> tuple[int, int]:
    return found[0], KINDS.index(found[1])


def _closest(pairs: list[CopyPair], both_ends: bool = False) -> dict[int, CopyPair]:
    """The closest copy of each query image (fewest bits, then the first kind of KINDS); with ``both_ends``
    (pairs within one set) the reference image of a pair has its copy too."""
    closest: dict[int, CopyPair] = {}
    for pair in pairs:
        ends = [pair, CopyPair(pair.reference, pair.query, pair.bits, pair.kind)] if both_ends else [pair]
        for end in ends:
            held = closest.get(end.query)
            if held is None or _rank((end.bits, end.kind)) < _rank((held.bits, held.kind)):
                closest[end.query] = end
    return closest


def files_with_copies(query: ImageHashes, reference: ImageHashes, max_bits: int = COPY_BITS) -> dict[str, str]:
    """Files of ``query`` that have a copy in ``reference``, with the kind of their closest copy."""
    return {query.files[i]: pair.kind for i, pair in _closest(copy_pairs(query, reference, max_bits)).items()}


class Groups:
    """Union-find over any hashable keys: ``join`` two, ``find`` the representative of one."""

    def __init__(self) -> None:
        self._parent: dict = {}

    def find(self, key):
        parent = self._parent
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)


def copy_groups(hashes: ImageHashes, max_bits: int = COPY_BITS) -> list[int]:
    """A group number for each image: images joined by a chain of copies share one."""
    groups = Groups()
    for pair in copy_pairs(hashes, None, max_bits):
        groups.join(pair.query, pair.reference)
    return [groups.find(i) for i in range(len(hashes))]


def cases_file(root: Path) -> Path | None:
    """``cases.csv`` of a data set that lists its patients: in the folder, or in its sibling ``<name>-masks/``."""
    for candidate in (root / "cases.csv", root.parent / f"{root.name}-masks" / "cases.csv"):
        if candidate.is_file():
            return candidate
    return None


def patient_groups(root: str | Path, samples: list[Sample]) -> dict[str, str]:
    """The patient of each sample whose file is named ``<case>_<slice>`` after a case of the set's ``cases.csv``.

    Empty when the set lists no patients. The same slice in several sequence
    folders then falls in one group, as do all slices of one patient.
    """
    found = cases_file(Path(root))
    if found is None:
        return {}
    with open(found, newline="") as handle:
        cases = {row["case"] for row in csv.DictReader(handle) if row.get("case")}
    groups = {}
    for sample in samples:
        case = Path(sample.path).stem.rpartition("_")[0]
        if case in cases:
            groups[sample.path] = f"patient {case}"
    return groups


def split_groups(root: str | Path, samples: list[Sample], max_bits: int = COPY_BITS) -> dict[str, str]:
    """A group for each sample that a split must not cut: its patient where known, joined with its copies."""
    patients = patient_groups(root, samples)
    hashes = hash_samples(root, samples)
    numbers = copy_groups(hashes, max_bits)
    # Union of the two relations: a copy of any slice of a patient joins that patient's group.
    groups = Groups()
    for sample in samples:
        groups.join(sample.path, patients.get(sample.path, sample.path))
    by_number: dict[int, str] = {}
    for file, number in zip(hashes.files, numbers):
        groups.join(file, by_number.setdefault(number, file))
    return {s.path: groups.find(s.path) for s in samples}


def grouped_split(folder: DataFolder, seed: int = 42, validation_fraction: float = 0.1,
                  test_fraction: float = 0.15, max_bits: int = COPY_BITS,
                  calibration_fraction: float = 0.0) -> SplitManifest:
    """:func:`brain_cnn.data.dataset.make_split` with every split it carves keeping copies and patients on one side.

    Official splits are kept as they are (their overlap is what the audit and
    the evaluation's unseen figures report).
    """
    samples = [s for split in ("all", "train") for s in folder.splits.get(split, [])]
    groups = split_groups(folder.root, samples, max_bits)
    return make_split(folder, seed, validation_fraction, test_fraction, groups=groups,
                      calibration_fraction=calibration_fraction)


def _split_hashes(folder: DataFolder) -> dict[str, ImageHashes]:
    return {split: hash_samples(folder.root, samples) for split, samples in folder.splits.items()}


def _finding(query: ImageHashes, reference: ImageHashes | None, max_bits: int, examples: int) -> dict:
    """Counts by kind, and example pairs of each kind, of the copies of ``query`` in ``reference`` (or within)."""
    pairs = copy_pairs(query, reference, max_bits)
    other = query if reference is None else reference
    closest = _closest(pairs, both_ends=reference is None)
    by_kind = Counter(p.kind for p in closest.values())
    shown: dict[str, list] = {}
    for pair in sorted(closest.values(), key=lambda p: (p.query, p.bits)):
        if len(shown.setdefault(pair.kind, [])) < examples:
            shown[pair.kind].append([query.files[pair.query], other.files[pair.reference], pair.bits])
    return {"images_with_copy": len(closest), "of": len(query), "pairs": len(pairs),
            "by_kind": {k: by_kind[k] for k in KINDS if by_kind[k]},
            "distances": dict(sorted(Counter(p.bits for p in closest.values()).items())),
            "examples": shown}


_SPLIT_ORDER = ["train", "validation", "test", "all"]


def audit_folders(roots: list[str | Path], max_bits: int = COPY_BITS, examples: int = 5) -> dict:
    """Copies within each split, across the splits of each folder, and between folders, by kind.

    Returns a JSON-ready report: for each finding the images that have a copy,
    how many of each kind (the closest copy of each image decides), the hash
    distances, and example pairs of each kind.
    """
    folders = [discover(root) for root in roots]
    hashes = [_split_hashes(f) for f in folders]
    report: dict = {"max_hash_bits": max_bits, "hash_size": HASH_SIZE, "kinds": list(KINDS), "data": [],
                    "between": []}
    for folder, by_split in zip(folders, hashes):
        entry = {"root": str(folder.root), "images": {s: len(h) for s, h in by_split.items()},
                 "within": {}, "across": {}}
        for split, h in by_split.items():
            entry["within"][split] = _finding(h, None, max_bits, examples)
        names = sorted(by_split, key=_SPLIT_ORDER.index)
        for k, a in enumerate(names):  # later splits (test) against earlier ones (train)
            for b in names[k + 1:]:
                entry["across"][f"{b} in {a}"] = _finding(by_split[b], by_split[a], max_bits, examples)
        report["data"].append(entry)
    for k, (fa, ha) in enumerate(zip(folders, hashes)):
        for fb, hb in list(zip(folders, hashes))[k + 1:]:
            found = _finding(ImageHashes.merge(hb.values()), ImageHashes.merge(ha.values()), max_bits, examples)
            report["between"].append({"a": str(fa.root), "b": str(fb.root), **found})
    return report


def deduplicated_split(root: str | Path, seed: int = 42, max_bits: int = COPY_BITS) -> SplitManifest:
    """A split manifest of ``root`` without leakage: copies within train dropped (one of each group kept),
    and test/validation images with a copy in train (or test images with one in validation) removed."""
    folder = discover(root)
    manifest = grouped_split(folder, seed, max_bits=max_bits)
    folder_root = Path(manifest.root)
    train = manifest.splits["train"]
    hashes = hash_samples(folder_root, train)
    groups = copy_groups(hashes, max_bits)
    first: dict[int, str] = {}
    for file, group in zip(hashes.files, groups):
        first.setdefault(group, file)
    kept_files = set(first.values())
    reference = hashes  # all of train: a copy of a dropped training image still leaks
    for split in ("validation", "test"):
        samples = manifest.splits.get(split, [])
        query = hash_samples(folder_root, samples)
        leaked = files_with_copies(query, reference, max_bits)
        manifest.splits[split] = [s for s in samples if s.path not in leaked]
        reference = ImageHashes.merge([reference, query])  # test is also checked against validation
    manifest.splits["train"] = [s for s in train if s.path in kept_files]
    manifest.origin += (f"; de-duplicated (copies in any orientation: 256-bit DCT hash of the head crop at "
                        f"{HASH_SIZE} px, <= {max_bits} bits)")
    return manifest
