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
    t = np.cos(theta) * coords[None, :] + np.sin(theta) * coords[:, None]
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
    return np.clip(smooth + rng.normal(0, 6, size=(size, size, 3)), 0, 255).astype(np.float32)


def _transform(glyph: np.ndarray, side: int, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    im = Image.fromarray(glyph, "RGBA").resize((side, side), Image.Resampling.BILINEAR)
    if rng.random() < aug.rotate_prob:
        angle = rng.uniform(-aug.max_degrees, aug.max_degrees)
        im = im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    out = np.asarray(im, np.float32)
    if rng.random() < aug.flip_prob:
        out = out[:, ::-1]
    return out


def _paste(canvas: np.ndarray, rgba: np.ndarray, x: int, y: int, rgb: np.ndarray) -> None:
    """Alpha-blends rgb (h, w, 3) with alpha rgba[..., 3] into canvas at (x, y), clipped."""
    size = canvas.shape[0]
    h, w = rgba.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
    if x1 <= x0 or y1 <= y0:
        return
    sl = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    a = rgba[sl][..., 3:4] * (1.0 / 255.0)
    region = canvas[y0:y1, x0:x1]
    region += a * (rgb[sl] - region)


def compose(
    glyphs: list[np.ndarray],
    ink: list[bool],
    rng: np.random.Generator,
    size: int,
    aug: Augment = Augment(),
) -> np.ndarray:
    """Draws the glyphs (RGBA uint8; `ink[i]` for monochrome ink glyphs) on one canvas.

    Returns a (size, size, 3) uint8 image.
    """
    canvas = background(rng, size)
    lo, hi = aug.scale_single if len(glyphs) == 1 else aug.scale_multi
    boxes = []
    for g, is_ink in zip(glyphs, ink):
        side = max(4, int(round(size * rng.uniform(lo, hi))))
        rgba = _transform(g, side, rng, aug)
        h, w = rgba.shape[:2]
        x = int(rng.integers(-int(0.15 * w), max(size - int(0.85 * w), -int(0.15 * w)) + 1))
        y = int(rng.integers(-int(0.15 * h), max(size - int(0.85 * h), -int(0.15 * h)) + 1))
        if is_ink:
            under = canvas[max(y, 0) : max(y + h, 1), max(x, 0) : max(x + w, 1)]
            lum = float(under.mean()) if under.size else 128.0
            rgb_ink = rng.uniform(0, 80, 3) if lum > 128 else rng.uniform(175, 255, 3)
            rgb = np.broadcast_to(rgb_ink.astype(np.float32), (h, w, 3))
        else:
            gain = 1.0 + rng.uniform(-aug.brightness, aug.brightness)
            gain = gain * (1.0 + rng.normal(0, aug.channel_jitter, 3))
            rgb = np.clip(rgba[..., :3] * gain.astype(np.float32), 0, 255)
        _paste(canvas, rgba, x, y, rgb)
        boxes.append((x, y, w, h))
    if rng.random() < aug.occlude_prob:
        x, y, w, h = boxes[int(rng.integers(len(boxes)))]
        ow = max(2, int(w * rng.uniform(*aug.occlude_frac)))
        oh = max(2, int(h * rng.uniform(*aug.occlude_frac)))
        ox = x + int(rng.integers(0, max(w - ow, 1)))
        oy = y + int(rng.integers(0, max(h - oh, 1)))
        patch = np.full((oh, ow, 4), 255.0, np.float32)
        _paste(canvas, patch, ox, oy, np.broadcast_to(_random_colour(rng), (oh, ow, 3)))
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
    glyphs = [assets.glyph(artist, e) for e in emoji]
    return compose(glyphs, [artist == "symbola"] * len(glyphs), rng, size, aug)
