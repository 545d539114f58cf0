"""A corpus's small pictures, decoded once and kept in memory for the training crops.

Reading a record, parsing it and decoding a 64 px JPEG cost most of a training example's
host work. On a laptop that work shares the cores with the training step, where it costs
about twice what it does alone (`benchmarks/train.py`: the demo trainer's full loop
against its bare step, 2 cores).

The cache applies when every picture the resampler can serve has one size and all of them
fit the budget. Each crop is cut from the cached pixels when decoding the JPEG for it
would decode at full scale, and decoded from the record otherwise (a crop of nearly the
whole picture decodes at a reduced DCT scale), so the crops are the same pixels as
decoding each time and the batches do not change. A record that fails to read or decode
keeps its error, raised again each time it is served, so it is skipped and counted as
before. Corpora of pictures of many sizes stop at the first that differs; large ones stop
at the budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from weaksup import augment
from weaksup.corpus.record import decode_post

log = logging.getLogger(__name__)


class PictureCache:
    """Decoded pictures of some records (uint8, one size) and the errors of those that failed."""

    def __init__(self, rows: np.ndarray, pixels: np.ndarray, errors: dict[int, Exception]):
        self.rows = rows  # record -> row of `pixels`; -1: not cached (or failed)
        self.pixels = pixels
        self.errors = errors

    def __getitem__(self, record: int) -> np.ndarray:
        """The record's decoded picture (H, W, 3); raises the error its reading or decoding raised."""
        row = self.rows[record]
        if row < 0:
            if record in self.errors:
                raise self.errors[record]
            raise KeyError(f"record {record} is not in the picture cache")
        return self.pixels[row]

    def train_crop(self, record: int, size: int, draws: Sequence[float], min_area: float) -> np.ndarray | None:
        """`augment.train_crop` of the record's picture from the cached pixels; None where
        that crop decodes the JPEG at a reduced scale (the caller decodes it, so the
        pixels are the same either way)."""
        img = self[record]
        h, w = img.shape[:2]
        box = augment.random_resized_crop_box(h, w, draws, area=(min_area, 1.0))
        if not augment.crop_decodes_at_full_scale(h, w, box, size):
            return None
        return augment.resized_crop(img, box, size, augment.flips(draws))


def build(
    source: Any,
    records: Sequence[int],
    num_records: int,
    budget_bytes: int,
    describe: Callable[[int], str] = lambda i: f"record {i}",
) -> PictureCache | None:
    """Decodes the pictures of `records` (indices into `source`, a record source of
    `num_records`) when they all have one size and fit `budget_bytes`; None as soon as one
    does not."""
    start = time.perf_counter()
    rows = np.full(num_records, -1, np.int64)
    errors: dict[int, Exception] = {}
    pixels: np.ndarray | None = None
    kept = 0
    for record in records:
        record = int(record)
        try:
            data = decode_post(source[record]).image
            h, w = augment.image_size(data)
        except Exception as e:  # a bad record is skipped when served, as without the cache
            errors[record] = e.with_traceback(None)
            continue
        if pixels is None:
            if len(records) * h * w * 3 > budget_bytes:
                return _declined(f"{len(records)} pictures of {w}x{h} need "
                                 f"{len(records) * h * w * 3 / 2**20:.0f} MB, over the budget of "
                                 f"{budget_bytes / 2**20:.0f} MB")
            pixels = np.empty((len(records), h, w, 3), np.uint8)
        elif (h, w) != pixels.shape[1:3]:
            return _declined(f"{describe(record)} is {w}x{h}, others {pixels.shape[2]}x{pixels.shape[1]}")
        try:
            pixels[kept] = augment.decode(data)
        except Exception as e:
            errors[record] = e.with_traceback(None)
            continue
        rows[record] = kept
        kept += 1
    if pixels is None:
        return None
    log.info(f"picture cache: {kept} pictures of {pixels.shape[2]}x{pixels.shape[1]} decoded into "
             f"{kept * pixels[0].nbytes / 2**20:.0f} MB in {time.perf_counter() - start:.1f} s"
             f"{f' ({len(errors)} unreadable)' if errors else ''}")
    return PictureCache(rows, pixels[:kept], errors)


def _declined(why: str) -> None:
    log.debug(f"picture cache: not used: {why}")
    return None
