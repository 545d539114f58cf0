"""Near-duplicate filter: training posts that copy an evaluation image are removed.

Each image gets two DCT perceptual hashes (pHash: greyscale, resize, 2-D DCT, the lowest
frequencies compared to their median): a 64-bit one (32x32 -> 8x8) that finds candidates,
and a 256-bit one (64x64 -> 16x16) that confirms them. Resizing, re-encoding, light crops
and recolouring move few bits; distinct photos differ in about half. Homogeneous domains
need the second hash: against the 33k-image EmojiGram target (532k reference hashes with
crop variants), 47% of EmojiGram posts lie within 10 of 64 bits of some reference, while
only 0.2% also lie within 56 of 256 fine bits (posts whose emoji silhouettes match a target
image); edited copies (resize, JPEG, 0-6% crops, colour changes) stay at or below ~48.

`HashIndex` finds whether a query lies within Hamming distance `threshold` of any of N
reference hashes without comparing all pairs: multi-index hashing (Norouzi et al., 2012).
The 64 bits are cut into m bands; if two hashes differ in at most t bits, some band differs
in at most floor(t/m) bits, so each band is probed with every value within that radius in
a sorted table, and only the candidates found are compared in full.

Reference images come from a TFDS dataset (`tfds:NAME[:SPLIT[+SPLIT...]]`, read with
`tfds.data_source`) or a folder of image files.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from weaksup import console, paths

DEFAULT_THRESHOLD = 10
DEFAULT_FINE_THRESHOLD = 56
_HASH_SIZE = 8
_IMG_SIZE = 32
_FINE_SIZE = 64
_FINE_HASH = 16
# One reference: its 64-bit pHash and its 256-bit fine hash, so a single array carries both.
REFERENCE_DTYPE = np.dtype([("phash", np.uint64), ("fine", np.uint64, (4,))])
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@lru_cache(maxsize=4)
def _dct_matrix(n: int, k: int) -> np.ndarray:
    """The k lowest-frequency rows of the orthonormal n-point DCT-II."""
    f = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * f / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m[:k].astype(np.float64)


def _grey(image: Image.Image | bytes) -> Image.Image:
    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(image))
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return image.convert("L")


def _low_frequencies(grey: Image.Image, n: int, k: int) -> np.ndarray:
    a = np.asarray(grey.resize((n, n), Image.Resampling.LANCZOS), dtype=np.float64)
    d = _dct_matrix(n, k)
    return (d @ a @ d.T).ravel()


def phash(image: Image.Image | bytes) -> int:
    """64-bit DCT perceptual hash of an image (PIL image or encoded bytes)."""
    low = _low_frequencies(_grey(image), _IMG_SIZE, _HASH_SIZE)
    return int(np.packbits(low > np.median(low)).view(">u8")[0])


def fine_hash(image: Image.Image | bytes) -> np.ndarray:
    """256-bit DCT perceptual hash (16x16 lowest frequencies of 64x64) as 4 uint64 words."""
    low = _low_frequencies(_grey(image), _FINE_SIZE, _FINE_HASH)
    return np.packbits(low > np.median(low)).view(">u8").astype(np.uint64)


def image_hashes(image: Image.Image | bytes) -> tuple[int, np.ndarray]:
    """(64-bit pHash, 256-bit fine pHash) of one image, sharing its greyscale conversion."""
    g = _grey(image)
    low = _low_frequencies(g, _IMG_SIZE, _HASH_SIZE)
    fine = _low_frequencies(g, _FINE_SIZE, _FINE_HASH)
    return (int(np.packbits(low > np.median(low)).view(">u8")[0]),
            np.packbits(fine > np.median(fine)).view(">u8").astype(np.uint64))


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two 64-bit hashes."""
    return (int(a) ^ int(b)).bit_count()


def _popcount64(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x.astype(np.uint64)).astype(np.int64)


class HashIndex:
    """Multi-index hashing over 64-bit hashes for Hamming-radius queries.

    With `fine` (one 4-word fine hash per reference) a candidate within `threshold` also
    has to lie within `fine_threshold` of the query's fine hash to count as a match.
    `hashes` may be a REFERENCE_DTYPE array, which carries both.
    """

    def __init__(self, hashes: Iterable[int] | np.ndarray, threshold: int = DEFAULT_THRESHOLD,
                 bands: int | None = None, exhaustive_below: int = 20_000,
                 fine: np.ndarray | None = None, fine_threshold: int = DEFAULT_FINE_THRESHOLD):
        if isinstance(hashes, np.ndarray) and hashes.dtype.names:  # REFERENCE_DTYPE records
            if fine is None:
                fine = hashes["fine"]
            hashes = hashes["phash"]
        self.hashes = np.asarray(list(hashes) if not isinstance(hashes, np.ndarray) else hashes, dtype=np.uint64)
        self.fine = None if fine is None else np.asarray(fine, dtype=np.uint64).reshape(-1, 4)
        if self.fine is not None and len(self.fine) != len(self.hashes):
            raise ValueError(f"{len(self.fine)} fine hashes for {len(self.hashes)} hashes")
        self.fine_threshold = int(fine_threshold)
        self.threshold = int(threshold)
        # Below ~20k references one vectorised XOR+popcount over all of them beats probing
        # (benchmarks/corpus.py); the index takes over as the reference set grows.
        self.exhaustive = len(self.hashes) < exhaustive_below
        if not 0 <= self.threshold < 64:
            raise ValueError(f"threshold must be in [0, 64), got {threshold}")
        # Four 16-bit bands: a direct 65,536-bucket table per band, radius floor(t/4)
        # probes (137 at t=10). Measured faster than log2(N)-bit bands from 10k to 1M
        # references, where wider bands need binary search and many more probes.
        self.bands = max(1, min(int(bands or 4), self.threshold + 1))
        self.width = 64 // self.bands
        self.radius = self.threshold // self.bands
        bounds = [i * self.width for i in range(self.bands)] + [64]
        self._spans = list(zip(bounds[:-1], bounds[1:]))
        self._tables = []
        for lo, hi in self._spans:
            keys = self._band(self.hashes, lo, hi)
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            # Narrow bands get a direct bucket-offset table (one gather per probe);
            # wide ones (tiny thresholds) fall back to binary search.
            starts = (np.searchsorted(keys, np.arange((1 << (hi - lo)) + 1, dtype=np.uint64))
                      if hi - lo <= 20 else None)
            self._tables.append((keys, order, starts))
        self._flips = [self._flip_masks(hi - lo, self.radius) for lo, hi in self._spans]

    def __len__(self) -> int:
        return len(self.hashes)

    @staticmethod
    def _band(h: np.ndarray, lo: int, hi: int) -> np.ndarray:
        width = hi - lo
        mask = np.uint64((1 << width) - 1)
        return (h >> np.uint64(64 - hi)) & mask

    @staticmethod
    def _flip_masks(width: int, radius: int) -> np.ndarray:
        masks = [0]
        for r in range(1, radius + 1):
            for bits in itertools.combinations(range(width), r):
                masks.append(sum(1 << b for b in bits))
        return np.asarray(masks, dtype=np.uint64)

    def _confirm(self, qi: np.ndarray, ri: np.ndarray, d: np.ndarray, qf: np.ndarray | None) -> np.ndarray:
        """Coarse distances with pairs that fail the fine check set to 65."""
        if self.fine is None:
            return d
        within = d <= self.threshold
        if within.any():
            fd = _popcount64(qf[qi[within]] ^ self.fine[ri[within]]).sum(axis=1)
            d = d.copy()
            d[np.flatnonzero(within)[fd > self.fine_threshold]] = 65
        return d

    def min_distances(self, queries: Iterable[int] | np.ndarray, fine: np.ndarray | None = None) -> np.ndarray:
        """Per query, the Hamming distance to the closest match if <= threshold, else -1.

        `fine` (queries x 4 words) is required when the index holds fine hashes. Vectorised
        over queries: each band probe is a table lookup, and only the (query, candidate)
        pairs found are compared in full.
        """
        q = np.asarray(list(queries) if not isinstance(queries, np.ndarray) else queries, dtype=np.uint64)
        qf = None
        if self.fine is not None:
            if fine is None:
                raise ValueError("this index confirms matches with fine hashes: pass fine=")
            qf = np.asarray(fine, dtype=np.uint64).reshape(-1, 4)
        if len(q) > 512:  # bounds the (query, candidate) pair arrays
            return np.concatenate([
                self.min_distances(q[i:i + 512], None if qf is None else qf[i:i + 512])
                for i in range(0, len(q), 512)])
        best = np.full(len(q), 65, dtype=np.int64)
        if not len(self.hashes) or not len(q):
            return np.where(best <= self.threshold, best, -1)
        if self.exhaustive:
            every = np.arange(len(self.hashes))
            for i, h in enumerate(q):
                d = self._confirm(np.full(len(every), i), every, _popcount64(self.hashes ^ h), qf)
                best[i] = int(d.min())
            return np.where(best <= self.threshold, best, -1)
        for (lo, hi), (keys, order, starts), flips in zip(self._spans, self._tables, self._flips):
            probes = (self._band(q, lo, hi)[:, None] ^ flips[None, :]).ravel()
            if starts is not None:
                p = probes.astype(np.int64)
                left = starts[p]
                counts = starts[p + 1] - left
            else:
                left = np.searchsorted(keys, probes, "left")
                counts = np.searchsorted(keys, probes, "right") - left
            hit = counts > 0
            if not hit.any():
                continue
            counts, left = counts[hit], left[hit]
            qi = np.repeat(np.nonzero(hit)[0] // len(flips), counts)
            # positions left[k] .. left[k] + counts[k] - 1 for every hit probe k
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            ri = order[np.repeat(left, counts) + offsets]
            d = self._confirm(qi, ri, _popcount64(q[qi] ^ self.hashes[ri]), qf)
            # qi is non-decreasing (probes are query-major): a segmented min, not ufunc.at
            first = np.flatnonzero(np.r_[True, qi[1:] != qi[:-1]])
            seg = np.minimum.reduceat(d, first)
            np.minimum(best[qi[first]], seg, out=seg)
            best[qi[first]] = seg
        return np.where(best <= self.threshold, best, -1)

    def contains_near(self, h: int, fine: np.ndarray | None = None) -> bool:
        """True when some reference matches `h` (and its fine hash, if the index has them)."""
        return bool(self.min_distances(np.asarray([h], dtype=np.uint64),
                                       None if fine is None else np.asarray(fine).reshape(1, 4))[0] >= 0)

    def matches_image(self, image: Image.Image | bytes) -> bool:
        """True when the image is a near-duplicate of some reference."""
        h, f = image_hashes(image)
        return self.contains_near(h, f if self.fine is not None else None)


CROP_FRACTION = 0.06


def reference_variants(image: Image.Image) -> list[Image.Image]:
    """The image and its 15 light crops: each side cut by 0 or 6%, in every combination.

    pHash moves with crops more than with any other light edit. With the cropped variants
    of each evaluation image indexed, a copy cropped by up to 6% on any sides lies within
    ~8 bits of one of them (measured: benchmarks/corpus.py prints it).
    """
    w, h = image.size
    dx, dy = int(w * CROP_FRACTION), int(h * CROP_FRACTION)
    if dx < 1 or dy < 1:
        return [image]
    return [
        image.crop((l * dx, t * dy, w - r * dx, h - b * dy))
        for l, t, r, b in itertools.product((0, 1), repeat=4)
    ]


def reference_hashes_of(image: Image.Image) -> np.ndarray:
    """REFERENCE_DTYPE hashes of an evaluation image and its 15 light-crop variants."""
    pairs = [image_hashes(v) for v in reference_variants(image.convert("RGB"))]
    out = np.zeros(len(pairs), REFERENCE_DTYPE)
    out["phash"] = [h for h, _ in pairs]
    out["fine"] = np.stack([f for _, f in pairs])
    return out


def hash_image_files(folder: str | os.PathLike[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(relative path, reference hashes) for every decodable image file below `folder`."""
    folder = Path(folder)
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            try:
                with Image.open(p) as im:
                    im.load()
                    hashes = reference_hashes_of(im)
            except Exception:  # an unreadable reference image cannot be matched anyway
                continue
            yield p.relative_to(folder).as_posix(), hashes


def hash_tfds(name: str, splits: list[str] | None = None, image_key: str = "image",
              data_dir: str | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(split:index, reference hashes) for every image of a TFDS dataset (tfds.data_source)."""
    import tensorflow_datasets as tfds

    data_dir = data_dir or str(paths.tfds_data_dir())
    if not splits:
        builder = tfds.builder(name, data_dir=data_dir)
        splits = sorted(builder.info.splits.keys())
    for split in splits:
        ds = tfds.data_source(name, split=split, data_dir=data_dir)
        for i in range(len(ds)):
            img = ds[i][image_key]
            if isinstance(img, (bytes, bytearray)):
                im = Image.open(io.BytesIO(bytes(img)))
            else:
                arr = np.asarray(img)
                if arr.ndim == 3 and arr.shape[-1] == 1:
                    arr = arr[..., 0]
                im = Image.fromarray(arr.astype(np.uint8))
            yield f"{split}:{i}", reference_hashes_of(im)


def reference_hashes(spec: str, image_key: str = "image", data_dir: str | None = None) -> np.ndarray:
    """REFERENCE_DTYPE hashes of the evaluation images named by `spec`, crop variants included.

    `spec` is `tfds:NAME[:SPLIT+SPLIT...]` (all splits when none is named; `data_dir`
    defaults to the project's TFDS folder) or a folder of image files.
    """
    if spec.startswith("tfds:"):
        name, _, split = spec[len("tfds:"):].partition(":")
        items = hash_tfds(name, split.split("+") if split else None, image_key, data_dir)
    else:
        if not Path(spec).is_dir():
            raise FileNotFoundError(f"--dedup-against {spec}: not a folder and not tfds:NAME")
        items = hash_image_files(spec)
    parts = [h for _, h in console.progress(items, desc=f"hashing evaluation images {spec}", unit="img")]
    return np.concatenate(parts) if parts else np.zeros(0, REFERENCE_DTYPE)
