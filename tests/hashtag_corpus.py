"""Small real hashtag corpora for the vocabulary, sampling and input-pipeline tests.

Images are real pictures encoded with Pillow (PNG and JPEG); shards, hashtag counts and
the manifest are written with the corpus module's own writer.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from weaksup.corpus.record import encode_post, make_post
from weaksup.corpus.shards import shard_name, write_manifest, write_shard


def picture(seed: int, size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    """A small picture: a gradient background with a coloured ellipse, encoded."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(0, 256, 3)
    img = np.stack([(base[c] + xx * (c + 1) + yy * (3 - c)) % 256 for c in range(3)], -1)
    pil = Image.fromarray(img.astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    draw.ellipse([x0, y0, x0 + w // 3, y0 + h // 3], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    buf = io.BytesIO()
    if fmt == "PNG":
        pil.save(buf, "PNG")
    else:
        pil.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_corpus(
    directory: Path,
    posts_hashtags: Sequence[Sequence[str]],
    *,
    num_shards: int = 2,
    bad_images: Sequence[int] = (),
    image_size: tuple[int, int] = (64, 64),
) -> Path:
    """Writes a corpus with one post per hashtag list; `bad_images` get undecodable bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    records = []
    for i, tags in enumerate(posts_hashtags):
        fmt = "JPEG" if i % 3 == 0 else "PNG"
        image = b"\x89PNG\r\n\x1a\nthis is not a picture" if i in bad_images else picture(i, image_size, fmt)
        records.append(encode_post(make_post(f"post{i:05d}", image, list(tags), source="test")))
    bounds = np.linspace(0, len(records), num_shards + 1).astype(int)
    infos = [
        write_shard(directory / shard_name(k, num_shards), records[bounds[k] : bounds[k + 1]])
        for k in range(num_shards)
    ]
    counts = Counter(t for tags in posts_hashtags for t in tags)
    write_manifest(directory, infos, hashtag_counts=dict(counts), build={"source": "test"})
    return directory


def zipf_posts(n: int, tags: Sequence[str], seed: int = 0, exponent: float = 1.1) -> list[list[str]]:
    """n single-hashtag posts whose hashtags follow a Zipf law over `tags` (rank order)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(tags) + 1) ** exponent
    picks = rng.choice(len(tags), size=n, p=p / p.sum())
    return [[tags[k]] for k in picks]
