"""Input pipeline speed: images/s per worker core, beside a bare decode loop, same run.

Two workloads, each a real corpus written to a temporary directory:
  demo   64 px EmojiGram-like JPEGs (EmojiOne artwork from ruby-gemojione composited on
         coloured backgrounds) cropped to 32 px, as the demo trainer reads them;
  photo  500x375 photo-like JPEGs (smooth shading, shapes, sensor noise) cropped to 224 px.

"bare decode" decodes every image at full size in a plain loop on one core (no read,
crop or batching). "pipeline" is `make_pretrain_iterator` with grain reading in the
calling thread (num_threads=0, no worker processes), i.e. one core doing everything:
read, parse, labels, decode (only the crop, through weaksup.jpeg_region, and at a reduced
DCT scale when possible), random-resized crop, flip, batch. Rounds alternate so that CPU
contention hits both alike; medians reported.
Targets: pipeline >= 0.7x bare decode at 224 px; demo >= 3x the ~100-300 img/s the demo
trainer consumes.

    .venv/bin/python benchmarks/input_pipeline.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from weaksup import augment
from weaksup import input_pipeline as ip
from weaksup.corpus.record import decode_post, encode_post, make_post
from weaksup.corpus.shards import Corpus, shard_name, write_manifest, write_shard
from weaksup.labels import build_from_corpus

GEMOJIONE_PNG = Path("/usr/share/rubygems-integration/all/gems/gemojione-3.3.0/assets/png")
TAGS = ["dog", "cat", "bird", "fish", "tree", "car", "boat", "cake", "sun", "flower"]


def emoji_posts(n: int, rng: np.random.Generator) -> list[bytes]:
    files = sorted(GEMOJIONE_PNG.glob("*.png"))
    if not files:
        raise SystemExit(f"no EmojiOne PNGs under {GEMOJIONE_PNG} (install ruby-gemojione)")
    out = []
    for i in range(n):
        glyph = Image.open(files[int(rng.integers(len(files)))]).convert("RGBA").resize((52, 52))
        bg = Image.new("RGBA", (64, 64), tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,))
        bg.alpha_composite(glyph, (int(rng.integers(0, 12)), int(rng.integers(0, 12))))
        buf = io.BytesIO()
        bg.convert("RGB").save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def photo_posts(n: int, rng: np.random.Generator) -> list[bytes]:
    out = []
    for _ in range(n):
        # Smooth low-frequency shading, a few objects, then sensor noise: compresses like a photo.
        coarse = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
        img = Image.fromarray(coarse).resize((500, 375), Image.BICUBIC)
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x, y = int(rng.integers(0, 450)), int(rng.integers(0, 330))
            w, h = int(rng.integers(20, 160)), int(rng.integers(20, 160))
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=fill)
        img = img.filter(ImageFilter.GaussianBlur(1.2))
        arr = np.asarray(img).astype(np.int16) + rng.normal(0, 6, (375, 500, 3)).astype(np.int16)
        buf = io.BytesIO()
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def write(directory: Path, images: list[bytes], rng: np.random.Generator) -> Path:
    directory.mkdir(parents=True)
    records = [
        encode_post(make_post(f"p{i}", img, [TAGS[int(k)] for k in rng.integers(0, len(TAGS), 2)]))
        for i, img in enumerate(images)
    ]
    half = len(records) // 2
    infos = [write_shard(directory / shard_name(k, 2), part) for k, part in enumerate([records[:half], records[half:]])]
    counts: dict[str, int] = {}
    for r in records:
        for t in set(decode_post(r).hashtags):
            counts[t] = counts.get(t, 0) + 1
    write_manifest(directory, infos, hashtag_counts=counts, build={"source": "benchmark"})
    build_from_corpus(directory, directory / "vocab.json", mode="raw")
    return directory


def bare_decode_rate(images: list[bytes], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for data in images:
            augment.decode(data)
        n += len(images)
    return n / (time.perf_counter() - start)


def pipeline_rate(corpus: Path, size: int, batch: int, seconds: float) -> float:
    it = ip.make_pretrain_iterator(
        corpus, corpus / "vocab.json", global_batch_size=batch, image_size=size,
        resampling="sqrt", process_index=0, process_count=1, num_threads=0,
        decoded_cache_mb=0,  # every crop decodes: the picture cache would skip what this measures
    )
    next(it)  # start-up (label cache, readers) is not throughput
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += len(next(it)["image"])
    return n / (time.perf_counter() - start)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        workloads = [
            ("demo 64px JPEG -> 32px", write(Path(tmp) / "demo", emoji_posts(1024, rng), rng), 32, 128),
            ("demo 64px JPEG -> 48px", Path(tmp) / "demo", 48, 128),
            ("photo 500x375 JPEG -> 224px", write(Path(tmp) / "photo", photo_posts(160, rng), rng), 224, 32),
        ]
        from weaksup import jpeg_region

        reason = jpeg_region.unavailable_reason()
        print("region JPEG decoder: " + ("built" if reason is None else f"NOT available ({reason})"))
        print(f"{'workload':<30} {'bare decode img/s':>18} {'pipeline img/s/core':>20} {'ratio':>7}")
        for name, corpus, size, batch in workloads:
            c = Corpus(corpus)
            images = [c[i].image for i in range(len(c))]
            bare, pipe = [], []
            for _ in range(args.rounds):
                bare.append(bare_decode_rate(images, args.seconds))
                pipe.append(pipeline_rate(corpus, size, batch, args.seconds))
            b, p = statistics.median(bare), statistics.median(pipe)
            print(f"{name:<30} {b:>18.0f} {p:>20.0f} {p / b:>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
