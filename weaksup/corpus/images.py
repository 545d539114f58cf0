"""Image validation and normalisation for the corpus build.

Every source's images pass through `check_image` in the pipeline, so all sources share
the same bad-input handling. An image is kept byte-for-byte when it is already a fully
decodable 8-bit RGB JPEG or PNG; otherwise it is normalised once (CMYK, greyscale,
palette, alpha, 16-bit, other formats -> 8-bit RGB) and re-encoded, and the record's
metadata says so. Anything undecodable raises `ImageError` with a stable skip reason.
"""

from __future__ import annotations

import dataclasses
import io
import warnings

from PIL import Image

# Pixel limit against decompression bombs: a 1-kB PNG can declare 100k x 100k pixels.
DEFAULT_MAX_PIXELS = 64_000_000
# Images whose shorter side is smaller than this carry no usable content.
DEFAULT_MIN_SIDE = 8
JPEG_QUALITY = 95

_KEEP_FORMATS = {"JPEG", "PNG"}


class ImageError(ValueError):
    """An image the corpus cannot use; `reason` is the stable skip key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class CheckedImage:
    """A validated image: encoded bytes to store and what was done to them."""

    data: bytes
    format: str  # "JPEG" | "PNG" (after normalisation)
    width: int
    height: int
    original_format: str
    original_mode: str
    reencoded: bool
    pil: Image.Image = dataclasses.field(repr=False, compare=False)  # decoded 8-bit RGB


def _to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB; transparency is composited on white, as viewers show it."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scale the used range down to 8 bits rather than clip.
        import numpy as np

        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if mode == "F":
        import numpy as np

        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo if hi > lo else 1.0) * 255.0
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return im.convert("RGB")


def check_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> CheckedImage:
    """Validates encoded image bytes and normalises them to 8-bit RGB JPEG/PNG.

    Raises ImageError with reason empty_image, not_an_image, too_many_pixels, too_small or
    corrupt_image. The image is fully decoded, so truncated files are caught here.
    """
    if not data:
        raise ImageError("empty_image", "zero bytes")
    try:
        with warnings.catch_warnings():
            # Our own pixel check below replaces PIL's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError("too_many_pixels", str(e)) from None
    except Exception as e:  # PIL raises UnidentifiedImageError, SyntaxError, ValueError...
        raise ImageError("not_an_image", f"{type(e).__name__}: {e}") from None
    width, height = im.size
    if width * height > max_pixels:
        raise ImageError("too_many_pixels", f"{width}x{height} > {max_pixels} pixels")
    if min(width, height) < min_side:
        raise ImageError("too_small", f"{width}x{height}, shorter side < {min_side}")
    fmt, mode = im.format or "?", im.mode
    # Multi-frame images (GIF, APNG, MPO) keep their first frame only.
    multi = getattr(im, "n_frames", 1) > 1
    # PIL opens 16-bit-per-channel RGB PNGs as mode RGB; the raw mode tells them apart,
    # and only 8-bit files are kept as they are.
    deep = any("16" in str(getattr(t, "args", "")) for t in (im.tile or []))
    try:
        # LOAD_TRUNCATED_IMAGES stays False (PIL's default): a truncated file must fail.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except Image.DecompressionBombError as e:
        raise ImageError("too_many_pixels", str(e)) from None
    except Exception as e:
        raise ImageError("corrupt_image", f"{fmt}: {type(e).__name__}: {e}") from None
    keep = fmt in _KEEP_FORMATS and mode == "RGB" and not multi and not deep
    try:
        rgb = _to_rgb(im)
    except Exception as e:
        raise ImageError("corrupt_image", f"{fmt} mode {mode}: {type(e).__name__}: {e}") from None
    if keep:
        return CheckedImage(data, fmt, width, height, fmt, mode, False, rgb)
    out = io.BytesIO()
    if fmt == "JPEG" or fmt == "MPO":
        # The source was lossy already; a second high-quality JPEG costs little.
        rgb.save(out, format="JPEG", quality=JPEG_QUALITY)
        new_fmt = "JPEG"
    else:
        rgb.save(out, format="PNG")
        new_fmt = "PNG"
    return CheckedImage(out.getvalue(), new_fmt, width, height, fmt, mode, True, rgb)
