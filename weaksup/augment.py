"""Image decoding and the crops the paper trains and evaluates with.

Training: Inception-style random-resized crop (area 8%-100%, aspect ratio 3/4-4/3, log
uniform) and a horizontal flip with probability 1/2. Evaluation: a centre crop holding
`crop_fraction` of the shorter side, resized to the output size -- the same pixels as
"resize the shorter side to S / crop_fraction, then centre-crop S", done in one resample.

JPEGs decode with simplejpeg (libjpeg-turbo) and, when the picture is much larger than
needed, at a reduced DCT scale (n/8, at most 1/2) chosen so that the region we crop still has
at least `size` pixels on each side, and only the crop itself where the region decoder
(weaksup.jpeg_region) is built and the picture is not small; everything else (PNG, GIF,
WebP, CMYK JPEG) decodes with Pillow. Transparent pixels are composited onto white, as a
viewer shows them.
Crops resize with OpenCV (area halving, then bilinear): Pillow's antialiased resize cost
more than the JPEG decode itself at 224 px (1.3 ms against 1.2 ms for a 500x375 photo).
A training crop's randomness is TRAIN_DRAWS uniforms, counter-based per stream position
(`train_draws`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from weaksup import jpeg_region

# Grain already runs one decode per thread / worker; OpenCV's own pool would oversubscribe.
cv2.setNumThreads(1)

# A training crop's uniform draws: the random-resized crop's candidate areas and aspect
# ratios, its two offsets, then the flip.
CROP_ATTEMPTS = 10
CROP_DRAWS = 2 * CROP_ATTEMPTS + 2
TRAIN_DRAWS = CROP_DRAWS + 1
# Pictures smaller than this at the decode scale decode whole: below it libjpeg-turbo's
# fixed set-up dominates, and the region decoder's extra work (a second pass over the
# header, the margin, the copy out) makes it slower (32 px: 17 us against 12 us; at
# 64 px they are even; at 128 px the region wins, 72 us against 103 us).
_REGION_MIN_PIXELS = 96 * 96
# Decompression-bomb guard for Pillow: a post's picture never needs more than this.
MAX_PIXELS = 64_000_000
_JPEG_MAGIC = b"\xff\xd8\xff"


class DecodeError(ValueError):
    """Image bytes that no decoder could read."""


def _pil_decode(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise DecodeError(f"image of {img.width}x{img.height} pixels is too large")
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA")
                canvas = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(canvas, img)
            return np.asarray(img.convert("RGB"))
    except DecodeError:
        raise
    except Exception as e:  # Pillow raises many unrelated types on bad data
        raise DecodeError(f"cannot decode image: {type(e).__name__}: {e}") from None


def image_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the header only."""
    if data[:3] == _JPEG_MAGIC:
        try:
            h, w, _, _ = simplejpeg.decode_jpeg_header(data)
            return int(h), int(w)
        except ValueError:
            pass
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.height, img.width
    except Exception as e:  # Pillow raises many unrelated types on bad data
        raise DecodeError(f"cannot read image header: {type(e).__name__}: {e}") from None


def decode(data: bytes, min_side: int = 0, crop_fraction: float = 1.0) -> np.ndarray:
    """Decodes to uint8 RGB (H, W, 3).

    With `min_side` > 0 a large JPEG decodes at the coarsest DCT scale at which a crop
    covering `crop_fraction` of each side still has >= `min_side` pixels per side.
    """
    if data[:3] == _JPEG_MAGIC:
        try:
            kwargs = {}
            if min_side > 0:
                h, w, _, _ = simplejpeg.decode_jpeg_header(data)
                need = _decoded_side(min_side, crop_fraction)
                # Only the shorter side constrains; libjpeg-turbo scales are n/8, and
                # min_factor=2 keeps it off the slow scales between 1/2 and 1.
                kwargs = dict(min_height=need if h <= w else 0, min_width=need if w < h else 0, min_factor=2)
            return simplejpeg.decode_jpeg(data, colorspace="RGB", **kwargs)
        except ValueError:
            pass  # CMYK and other rarities: Pillow reads what libjpeg-turbo refuses
    return _pil_decode(data)


def _rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def _pixel_box(box: tuple[float, float, float, float], h: int, w: int) -> tuple[int, int, int, int]:
    """`box` (left, top, right, bottom) rounded to whole pixels, clamped, never empty."""
    left, top = min(max(int(round(box[0])), 0), w - 1), min(max(int(round(box[1])), 0), h - 1)
    right, bottom = max(min(int(round(box[2])), w), left + 1), max(min(int(round(box[3])), h), top + 1)
    return left, top, right, bottom


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    """Resizes to size x size: bilinear, after halving with pixel-area averaging while the
    crop is more than twice the output, so that each bilinear step shrinks by at most 2x
    and does not alias."""
    while crop.shape[0] >= 2 * size and crop.shape[1] >= 2 * size:
        crop = cv2.resize(crop, (crop.shape[1] // 2, crop.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)


def _resize_box(img: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Crops `box` (left, top, right, bottom; rounded to whole pixels) and resizes it."""
    left, top, right, bottom = _pixel_box(box, *img.shape[:2])
    return _resize(img[top:bottom, left:right], size)


def _decoded_side(min_side: int, crop_fraction: float) -> int:
    """Pixels the picture's shorter side needs so that a crop of `crop_fraction` of it keeps `min_side`."""
    return math.ceil(min_side / max(crop_fraction, 1e-6))


def _dct_scale(height: int, width: int, min_side: int, crop_fraction: float) -> int:
    """Numerator n of the coarsest DCT scale n/8 at which a crop covering `crop_fraction` of
    each side keeps >= `min_side` pixels per side; the choice simplejpeg makes for
    `decode(min_side=...)` (n in 1..4, or 8: the scales between 1/2 and 1 are slow)."""
    if min_side <= 0:
        return 8
    need = _decoded_side(min_side, crop_fraction)
    short = min(height, width)
    return next((n for n in (1, 2, 3, 4) if math.ceil(short * n / 8) >= need), 8)


def _crop_fraction(box: tuple[float, float, float, float], h: int, w: int) -> float:
    """The share of the picture's shorter side that the box's shorter side covers."""
    return min(box[2] - box[0], box[3] - box[1]) / max(1, min(h, w))


def crop_decodes_at_full_scale(height: int, width: int, box: tuple[float, float, float, float], size: int) -> bool:
    """Whether `decode_box` decodes `box` of a JPEG of height x width at full scale for a
    `size` px crop (no reduced DCT scale)."""
    return _dct_scale(height, width, size, _crop_fraction(box, height, width)) == 8


def _scaled_pixel_box(
    box: tuple[float, float, float, float], h: int, w: int, sh: int, sw: int
) -> tuple[int, int, int, int]:
    """`box` in an h x w picture -> whole pixels of the same box in that picture at sh x sw."""
    sy, sx = sh / h, sw / w
    return _pixel_box((box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy), sh, sw)


def decode_box(
    data: bytes, box: tuple[float, float, float, float], min_side: int = 0,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """The pixels of `box` (left, top, right, bottom in full-size picture coordinates): uint8 RGB.

    A JPEG decodes at the coarsest DCT scale that keeps >= `min_side` pixels on the box's
    shorter side, and only the box itself when the region decoder (weaksup.jpeg_region) is
    built and the picture at that scale has at least `_REGION_MIN_PIXELS`; otherwise, and
    for every other format, the whole picture decodes and is sliced.
    Both ways give the same pixels. `shape` is the picture's (height, width) when the
    caller has already read the header.
    """
    h, w = image_size(data) if shape is None else shape
    crop_fraction = _crop_fraction(box, h, w)
    n = _dct_scale(h, w, min_side, crop_fraction)
    sh, sw = jpeg_region.scaled_size(h, w, n)
    if data[:3] == _JPEG_MAGIC and sh * sw >= _REGION_MIN_PIXELS and jpeg_region.available():
        left, top, right, bottom = _scaled_pixel_box(box, h, w, sh, sw)
        try:
            return jpeg_region.decode_region(data, left, top, right, bottom, scale_num=n, height=sh, width=sw)
        except jpeg_region.RegionDecodeError:
            pass  # CMYK, corrupt data warnings, ...: the whole-picture path decides
    img = decode(data, min_side=min_side, crop_fraction=crop_fraction)
    # The decoder may have reduced the picture; scale the box to the decoded pixels.
    left, top, right, bottom = _scaled_pixel_box(box, h, w, *img.shape[:2])
    return img[top:bottom, left:right]


def train_draws(seed: int, epochs: Sequence[int], positions: Sequence[int]) -> np.ndarray:
    """The uniforms in [0, 1) of the training crops at stream `positions` of `epochs`: (n, TRAIN_DRAWS).

    Counter-based: draw k of (seed, epoch, position) is SplitMix64's finaliser applied to
    the seed, then the epoch, the position and k mixed in turn, so an example's crop
    depends on nothing else (not on which chunk, thread or process makes it), and a
    chunk's draws are a few array operations. A numpy generator per example cost ~35 us
    of the ~100 us a 32 px example took in the pretraining pipeline.
    """
    with np.errstate(over="ignore"):  # uint64 arithmetic is meant to wrap
        key = _mix64(np.uint64(seed) * _GOLDEN)
        key = _mix64(key + np.asarray(epochs, np.uint64) * _GOLDEN)
        key = _mix64(key + np.asarray(positions, np.uint64) * _GOLDEN)
        bits = _mix64(key[:, None] + np.arange(1, TRAIN_DRAWS + 1, dtype=np.uint64) * _GOLDEN)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (a bijection of uint64 whose outputs pass BigCrush as a stream)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def random_resized_crop_box(
    height: int,
    width: int,
    draws: Sequence[float],
    area: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of an Inception-style crop from CROP_DRAWS uniforms; centre crop as a fallback."""
    u = draws  # [0, CROP_ATTEMPTS): areas, then aspect ratios, then the two offsets
    total = height * width
    lo_area, span_area = area[0], area[1] - area[0]
    lo_ratio, span_ratio = math.log(ratio[0]), math.log(ratio[1]) - math.log(ratio[0])
    for k in range(CROP_ATTEMPTS):
        target = total * (lo_area + span_area * u[k])
        aspect = math.exp(lo_ratio + span_ratio * u[CROP_ATTEMPTS + k])
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(u[2 * CROP_ATTEMPTS] * (height - h + 1))
            left = int(u[2 * CROP_ATTEMPTS + 1] * (width - w + 1))
            return left, top, left + w, top + h
    # Fallback: the largest centre crop whose aspect ratio lies in range.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return left, top, left + w, top + h


def check_min_area(value: float, name: str = "crop_min_area") -> float:
    """`value` as a float if it is a valid smallest crop share, (0, 1]; else a ValueError naming `name`."""
    if not 0.0 < float(value) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return float(value)


def train_crop(data: bytes, size: int, draws: Sequence[float], min_area: float = 0.08) -> np.ndarray:
    """Decode -> random-resized crop -> random horizontal flip: uint8 (size, size, 3).

    `draws` are TRAIN_DRAWS uniforms in [0, 1) (`train_draws`, or a generator's). The crop
    keeps between `min_area` and all of the picture (Inception's 8% by default; posts
    whose labels name several small objects want a larger minimum, or the crop often
    shows none of them).
    """
    h, w = image_size(data)
    box = random_resized_crop_box(h, w, draws, area=(min_area, 1.0))
    out = _resize(decode_box(data, box, min_side=size, shape=(h, w)), size)
    return cv2.flip(out, 1) if flips(draws) else out


def train_crop_array(img: np.ndarray, size: int, draws: Sequence[float], min_area: float = 0.08) -> np.ndarray:
    """`train_crop` for an already decoded uint8 image (H, W, 3)."""
    box = random_resized_crop_box(img.shape[0], img.shape[1], draws, area=(min_area, 1.0))
    return resized_crop(img, box, size, flips(draws))


def flips(draws: Sequence[float]) -> bool:
    """Whether the training crop of these draws is mirrored."""
    return draws[CROP_DRAWS] < 0.5


def resized_crop(img: np.ndarray, box: tuple[float, float, float, float], size: int, flip: bool = False) -> np.ndarray:
    """`box` (left, top, right, bottom) of a decoded uint8 image, resized to size x size and mirrored when `flip`."""
    out = _resize_box(_rgb(img), box, size)
    return cv2.flip(out, 1) if flip else out


def eval_crop(data: bytes, size: int, crop_fraction: float = 0.875) -> np.ndarray:
    """Decode -> centre crop of `crop_fraction` of the shorter side -> resize: uint8."""
    h, w = image_size(data)
    return _resize(decode_box(data, _center_box(h, w, crop_fraction), min_side=size, shape=(h, w)), size)


def center_crop(img: np.ndarray, size: int, crop_fraction: float = 0.875) -> np.ndarray:
    """Centre crop of an already decoded uint8 image (H, W, 3), resized to size x size."""
    img = _rgb(img)
    return _resize_box(img, _center_box(*img.shape[:2], crop_fraction), size)


def _center_box(h: int, w: int, crop_fraction: float) -> tuple[float, float, float, float]:
    """The centred square holding `crop_fraction` of the shorter side."""
    side = min(h, w) * crop_fraction
    top, left = (h - side) / 2, (w - side) / 2
    return left, top, left + side, top + side
