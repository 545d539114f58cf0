"""A corpus's small pictures, decoded once and kept in memory for the training crops.

Reading a record, parsing it and decoding a 32 px JPEG cost about two thirds of a
training example's host work. On a laptop that work shares the cores with the training
step, where it costs about twice what it does alone: on the demo's trainer (2 cores,
`benchmarks/train.py`) decoding every crop held the full loop to 0.80 of the bare step,
and crops cut from decoded pixels reach 0.9.

The cache applies when every picture the resampler can serve has one size and decodes
at full scale for the training crop (its shorter side under about twice the crop size, so
no reduced DCT scale applies) and all of them fit the budget. The crops are then the
same pixels as decoding each time (`augment.train_crop` and `augment.train_crop_array`
agree on such pictures), so the batches do not change. A record that fails to read or
decode keeps its error, raised again each time it is served, so it is skipped and counted
as before. Corpora of larger pictures (photos for 224 px training) stop at the first
record and decode per crop.
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


def build(
    source: Any,
    records: Sequence[int],
    num_records: int,
    image_size: int,
    budget_bytes: int,
    describe: Callable[[int], str] = lambda i: f"record {i}",
) -> PictureCache | None:
    """Decodes the pictures of `records` (indices into `source`, a record source of
    `num_records`) when they qualify for crops of `image_size`; None as soon as one does
    not (another size, a reduced decode scale, or over `budget_bytes` in all)."""
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
            if not augment.decodes_at_full_scale(h, w, image_size):
                return _declined(f"{describe(record)} is {w}x{h}, decoded at a reduced scale for {image_size} px crops")
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
