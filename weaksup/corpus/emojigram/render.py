"""Composing an EmojiGram image: cached glyphs on a varied background.

Each emoji is scaled, rotated, maybe mirrored, colour-jittered and pasted at a random
position (at most ~15% of it may leave the canvas); sometimes a rectangle occludes part
of one. Backgrounds are flat, linear gradients, smooth noise or stripes. Symbola's ink
glyphs get an ink colour that contrasts with the background under them.

All randomness comes from the caller's numpy Generator, so an image is a pure function
of that generator's seed. Work happens on tiny arrays (a 64 px canvas, glyphs of a few
dozen pixels), which keeps a post to well under a millisecond and a half.
"""

from __future__ import annotations

import dataclasses
import functools
import io

import numpy as np
import simplejpeg
from PIL import Image

from weaksup.corpus.emojigram import assets

BACKGROUNDS: tuple[str, ...] = ("flat", "gradient", "noise", "stripes")


@dataclasses.dataclass(frozen=True)
class Augment:
    """Ranges of the per-emoji and per-image variation."""

    scale_single: tuple[float, float] = (0.45, 0.9)  # glyph side / canvas side, 1 emoji
    scale_multi: tuple[float, float] = (0.3, 0.6)  # with 2+ emoji
    rotate_prob: float = 0.6
    max_degrees: float = 30.0
    flip_prob: float = 0.3
    channel_jitter: float = 0.08  # std of per-channel gain
    brightness: float = 0.2  # +- brightness gain
    occlude_prob: float = 0.25
    occlude_frac: tuple[float, float] = (0.2, 0.45)  # occluder side / glyph side


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3).astype(np.float32)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size, 3) float32 background in [0, 255]."""
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if kind == "flat":
        return np.broadcast_to(_random_colour(rng), (size, size, 3)).copy()
    coords = np.arange(size, dtype=np.float32) / max(size - 1, 1)
    theta = rng.uniform(0, 2 * np.pi)
    # position along a random direction, per pixel, in [0, 1]
    t = np.float32(np.cos(theta)) * coords[None, :] + np.float32(np.sin(theta)) * coords[:, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    a, b = _random_colour(rng), _random_colour(rng)
    if kind == "gradient":
        return a + t[..., None] * (b - a)
    if kind == "stripes":
        freq = rng.uniform(2, 8)
        w = (np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)) > 0).astype(np.float32)
        return a + w[..., None] * (b - a)
    cells = int(rng.integers(3, 9))
    grid = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.uint8)
    smooth = np.asarray(
        Image.fromarray(grid, "RGB").resize((size, size), Image.Resampling.BICUBIC), np.float32
    )
    grain = rng.standard_normal((size, size, 3), dtype=np.float32)
    return np.clip(smooth + 6.0 * grain, 0, 255)


@functools.cache
def premultiplied(artist: str, emoji: str) -> tuple[Image.Image, ...]:
    """The cached glyph as premultiplied-alpha ("RGBa") images, halving in size.

    Resizing and rotating premultiplied pixels is what PIL does internally for RGBA, so
    keeping the glyph premultiplied skips two mode conversions per use; starting from the
    smallest level at least as large as the target keeps the resize cheap.
    """
    im = Image.fromarray(assets.glyph(artist, emoji), "RGBA").convert("RGBa")
    levels = [im]
    while levels[-1].width >= 32:
        w = levels[-1].width // 2
        levels.append(levels[-1].resize((w, w), Image.Resampling.BOX))
    return tuple(levels)


def _transform(
    glyph: tuple[Image.Image, ...], side: int, rng: np.random.Generator, aug: Augment
) -> np.ndarray:
    """Scaled, maybe rotated and mirrored glyph: (h, w, 4) float32, premultiplied."""
    src = next(im for im in reversed(glyph) if im.width >= side or im is glyph[0])
    im = src.resize((side, side), Image.Resampling.BILINEAR)
    if rng.random() < aug.rotate_prob:
        angle = rng.uniform(-aug.max_degrees, aug.max_degrees)
        im = im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    out = np.asarray(im, np.float32)
    if rng.random() < aug.flip_prob:
        out = out[:, ::-1]
    return out


def _paste(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, rgb: np.ndarray) -> None:
    """Composites premultiplied rgb (h, w, 3) with alpha (h, w, 1) into canvas at (x, y)."""
    size = canvas.shape[0]
    h, w = alpha.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
    if x1 <= x0 or y1 <= y0:
        return
    sl = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - alpha[sl] * (1.0 / 255.0)
    region += rgb[sl]


def compose(
    glyphs: list[tuple[Image.Image, ...]],
    ink: list[bool],
    rng: np.random.Generator,
    size: int,
    aug: Augment = Augment(),
) -> np.ndarray:
    """Draws the glyphs (levels of "RGBa" images, see `premultiplied`; `ink[i]` for
    monochrome ink glyphs) on one canvas. Returns a (size, size, 3) uint8 image.
    """
    canvas = background(rng, size)
    lo, hi = aug.scale_single if len(glyphs) == 1 else aug.scale_multi
    boxes = []
    for g, is_ink in zip(glyphs, ink):
        side = max(4, int(round(size * rng.uniform(lo, hi))))
        rgba = _transform(g, side, rng, aug)
        alpha = rgba[..., 3:4]
        h, w = rgba.shape[:2]
        x = int(rng.integers(-int(0.15 * w), max(size - int(0.85 * w), -int(0.15 * w)) + 1))
        y = int(rng.integers(-int(0.15 * h), max(size - int(0.85 * h), -int(0.15 * h)) + 1))
        if is_ink:
            under = canvas[max(y, 0) : max(y + h, 1), max(x, 0) : max(x + w, 1)]
            lum = float(under.mean()) if under.size else 128.0
            rgb_ink = rng.uniform(0, 80, 3) if lum > 128 else rng.uniform(175, 255, 3)
            rgb = alpha * (rgb_ink.astype(np.float32) / 255.0)
        else:
            gain = 1.0 + rng.uniform(-aug.brightness, aug.brightness)
            gain = gain * (1.0 + rng.normal(0, aug.channel_jitter, 3))
            # premultiplied colour may not exceed its alpha
            rgb = np.minimum(rgba[..., :3] * gain.astype(np.float32), alpha)
        _paste(canvas, alpha, x, y, rgb)
        boxes.append((x, y, w, h))
    if rng.random() < aug.occlude_prob:
        x, y, w, h = boxes[int(rng.integers(len(boxes)))]
        ow = max(2, int(w * rng.uniform(*aug.occlude_frac)))
        oh = max(2, int(h * rng.uniform(*aug.occlude_frac)))
        ox = x + int(rng.integers(0, max(w - ow, 1)))
        oy = y + int(rng.integers(0, max(h - oh, 1)))
        alpha = np.full((oh, ow, 1), 255.0, np.float32)
        _paste(canvas, alpha, ox, oy, np.broadcast_to(_random_colour(rng), (oh, ow, 3)))
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, image_format: str = "jpeg", jpeg_quality: int = 90) -> bytes:
    """Encodes an RGB uint8 image as JPEG (libjpeg-turbo) or PNG."""
    if image_format == "jpeg":
        return simplejpeg.encode_jpeg(
            np.ascontiguousarray(image), quality=int(jpeg_quality), colorspace="RGB"
        )
    if image_format == "png":
        buf = io.BytesIO()
        Image.fromarray(image, "RGB").save(buf, format="PNG", compress_level=6)
        return buf.getvalue()
    raise ValueError(f"unknown image format {image_format!r}; use 'jpeg' or 'png'")


def render_glyphs(
    artist: str, emoji: list[str], rng: np.random.Generator, size: int, aug: Augment = Augment()
) -> np.ndarray:
    """An image of the given emoji as drawn by `artist` (see `compose`)."""
    glyphs = [premultiplied(artist, e) for e in emoji]
    return compose(glyphs, [artist == "symbola"] * len(glyphs), rng, size, aug)
