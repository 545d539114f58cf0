"""The artwork and annotations EmojiGram is made of, as Debian packages ship them.

Three artists draw the same emoji:
  noto      Noto Color Emoji (fonts-noto-color-emoji): colour bitmaps, which FreeType
            renders only at their strike size (109 px with Pillow, `embedded_color=True`);
  emojione  EmojiOne 3.3 (ruby-gemojione): 64 px PNGs named by upper-case code points;
  symbola   Symbola (fonts-symbola): monochrome outline glyphs, rendered as an ink mask.

Annotations: CLDR `common/annotations/en.xml` (unicode-cldr-core: names and keywords),
`emoji/emoji-test.txt` (unicode-data: groups, subgroups, qualification) and EmojiOne's
`config/index.json` (community keywords).

Every glyph is rendered once per process at `GLYPH_PX` and kept as a square RGBA uint8
array, so composing a post costs only small numpy/PIL operations.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ARTISTS: tuple[str, ...] = ("noto", "emojione", "symbola")

# The default transfer split: pretrain on a colour artist and a line-art artist, evaluate
# on the third, unseen colour style. Seeing two very different styles of each concept
# pushes pretraining towards style-invariant shape features, and EmojiOne draws nearly
# every concept, so the held-out target keeps many classes. (Holding out Symbola instead
# would test monochrome line art after colour-only pretraining: mostly a domain gap.)
DEFAULT_HELDOUT_ARTIST = "emojione"
DEFAULT_PRETRAIN_ARTISTS: tuple[str, ...] = ("noto", "symbola")

# Side of the cached square glyph; posts scale it down (default posts are 64 px).
GLYPH_PX = 96

# Optional override for every asset lookup: a directory holding the same relative layout
# as the Debian root (usr/share/...), for machines where the packages live elsewhere.
ENV_ROOT = "WEAKSUP_EMOJI_ROOT"

NOTO_STRIKE = 109  # the only size at which the CBDT bitmaps load

_PACKAGES = {
    "noto": "fonts-noto-color-emoji",
    "emojione": "ruby-gemojione",
    "symbola": "fonts-symbola",
    "cldr": "unicode-cldr-core",
    "emoji-test": "unicode-data",
}

_CANDIDATES = {
    "noto": [
        "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
        "usr/share/fonts/noto/NotoColorEmoji.ttf",
    ],
    "emojione": ["usr/share/rubygems-integration/all/gems/gemojione-3.3.0"],
    "symbola": [
        "usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf",
        "usr/share/fonts/truetype/ancient-scripts/Symbola.ttf",
        "usr/share/fonts/TTF/Symbola.ttf",
    ],
    "cldr": ["usr/share/unicode/cldr/common/annotations/en.xml"],
    "emoji-test": ["usr/share/unicode/emoji/emoji-test.txt"],
}


class AssetError(FileNotFoundError):
    """A missing or unreadable artwork/annotation file; names the file and the package."""


def asset_path(kind: str) -> Path:
    """Path of one asset ("noto", "emojione" (gem dir), "symbola", "cldr", "emoji-test")."""
    roots = [Path(os.environ[ENV_ROOT])] if os.environ.get(ENV_ROOT) else []
    roots.append(Path("/"))
    tried = []
    for root in roots:
        for rel in _CANDIDATES[kind]:
            p = root / rel
            tried.append(str(p))
            if p.exists():
                return p
    raise AssetError(
        f"EmojiGram asset {kind!r} not found (tried {', '.join(tried)}); install the "
        f"Debian package {_PACKAGES[kind]} (`make setup` does it)"
    )


def artist_names(artists: str | Iterable[str]) -> tuple[str, ...]:
    """Validates artist names ("noto,emojione" or a sequence) and returns them in order."""
    names = [a.strip() for a in artists.split(",")] if isinstance(artists, str) else list(artists)
    names = [a for a in names if a]
    bad = [a for a in names if a not in ARTISTS]
    if bad or not names:
        raise ValueError(f"unknown EmojiGram artist(s) {bad or names!r}; known: {', '.join(ARTISTS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"EmojiGram artists repeat: {names!r}")
    return tuple(names)


def font_codepoints(path: Path) -> frozenset[int]:
    """The code points a TrueType/OpenType font maps to glyphs (cmap formats 4 and 12)."""
    try:
        data = path.read_bytes()
        num_tables = struct.unpack_from(">H", data, 4)[0]
        cmap_off = None
        for t in range(num_tables):
            tag, _, off, _ = struct.unpack_from(">4sIII", data, 12 + 16 * t)
            if tag == b"cmap":
                cmap_off = off
        if cmap_off is None:
            raise AssetError(f"{path}: font has no cmap table")
        n_sub = struct.unpack_from(">H", data, cmap_off + 2)[0]
        cps: set[int] = set()
        for s in range(n_sub):
            platform, encoding, off = struct.unpack_from(">HHI", data, cmap_off + 4 + 8 * s)
            if platform not in (0, 3):  # Unicode or Windows subtables only
                continue
            sub = cmap_off + off
            fmt = struct.unpack_from(">H", data, sub)[0]
            if fmt == 12:
                n_groups = struct.unpack_from(">I", data, sub + 12)[0]
                for g in range(n_groups):
                    start, end, glyph = struct.unpack_from(">III", data, sub + 16 + 12 * g)
                    if glyph or start != end:
                        cps.update(range(start, end + 1))
            elif fmt == 4:
                seg_x2 = struct.unpack_from(">H", data, sub + 6)[0]
                seg = seg_x2 // 2
                ends = struct.unpack_from(f">{seg}H", data, sub + 14)
                starts = struct.unpack_from(f">{seg}H", data, sub + 16 + seg_x2)
                deltas = struct.unpack_from(f">{seg}h", data, sub + 16 + 2 * seg_x2)
                ro_base = sub + 16 + 3 * seg_x2
                ro = struct.unpack_from(f">{seg}H", data, ro_base)
                for k in range(seg):
                    for c in range(starts[k], ends[k] + 1):
                        if c == 0xFFFF:
                            continue
                        if ro[k] == 0:
                            glyph = (c + deltas[k]) & 0xFFFF
                        else:
                            addr = ro_base + 2 * k + ro[k] + 2 * (c - starts[k])
                            glyph = struct.unpack_from(">H", data, addr)[0]
                            glyph = (glyph + deltas[k]) & 0xFFFF if glyph else 0
                        if glyph:
                            cps.add(c)
        return frozenset(cps)
    except struct.error as e:
        raise AssetError(f"{path}: malformed font file ({e})") from None


def emojione_png(codepoints: tuple[int, ...]) -> Path:
    """Path of EmojiOne's PNG for a code point sequence (may not exist)."""
    name = "-".join(f"{c:04X}" for c in codepoints if c != 0xFE0F)
    return asset_path("emojione") / "assets" / "png" / f"{name}.png"


@functools.cache
def coverage(artist: str) -> frozenset[int]:
    """Single code points (without U+FE0F) the artist draws."""
    if artist == "emojione":
        out = set()
        for p in (asset_path("emojione") / "assets" / "png").glob("*.png"):
            parts = p.stem.split("-")
            if len(parts) == 1:
                try:
                    out.add(int(parts[0], 16))
                except ValueError:
                    continue
        return frozenset(out)
    if artist in ("noto", "symbola"):
        return font_codepoints(asset_path(artist))
    raise ValueError(f"unknown artist {artist!r}")


@functools.cache
def _font(artist: str) -> ImageFont.FreeTypeFont:
    path = asset_path(artist)
    try:
        if artist == "noto":
            return ImageFont.truetype(str(path), NOTO_STRIKE)
        return ImageFont.truetype(str(path), GLYPH_PX)
    except OSError as e:
        raise AssetError(f"{path}: cannot load font: {e}") from None


def _square(rgba: np.ndarray, px: int) -> np.ndarray:
    """Crops to the ink's bounding box, pads to a centred square, resizes to px."""
    alpha = rgba[..., 3]
    ys, xs = np.nonzero(alpha > 8)
    if len(ys) == 0:
        raise AssetError("glyph renders empty")
    crop = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape[:2]
    side = max(h, w)
    sq = np.zeros((side, side, 4), np.uint8)
    sq[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = crop
    return np.asarray(Image.fromarray(sq, "RGBA").resize((px, px), Image.Resampling.LANCZOS))


@functools.cache
def glyph(artist: str, emoji: str) -> np.ndarray:
    """The artist's drawing of `emoji` as a (GLYPH_PX, GLYPH_PX, 4) uint8 RGBA array.

    Symbola draws black ink; posts recolour it. Raises AssetError if the artist lacks it.
    """
    cps = tuple(ord(c) for c in emoji)
    if artist == "emojione":
        path = emojione_png(cps)
        if not path.exists():
            raise AssetError(f"{path}: EmojiOne has no PNG for {emoji!r}")
        try:
            with Image.open(path) as im:
                rgba = np.asarray(im.convert("RGBA"))
        except OSError as e:
            raise AssetError(f"{path}: unreadable PNG: {e}") from None
        return _square(rgba, GLYPH_PX)
    font = _font(artist)
    text = emoji if artist == "noto" else "".join(c for c in emoji if c != "\ufe0f")
    if artist == "noto":
        left, top, right, bottom = font.getbbox(text, mode="RGBA")
        im = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
        ImageDraw.Draw(im).text((4 - left, 4 - top), text, font=font, embedded_color=True)
        return _square(np.asarray(im), GLYPH_PX)
    mask = font.getmask(text, mode="L")
    w, h = mask.size
    alpha = np.asarray(mask, np.uint8).reshape(h, w) if w and h else np.zeros((0, 0), np.uint8)
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 3] = alpha
    return _square(rgba, GLYPH_PX)


def read_json(path: Path) -> object:
    """Parses a JSON asset, naming the file on failure."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AssetError(f"{path}: unreadable JSON: {e}") from None
