"""Corpus throughput: EmojiGram generation, the build's per-post work, shard write, reads.

    .venv/bin/python benchmarks/corpus.py [--posts 2000] [--build-posts 3000]

Prints one line per figure. Rates are per core (one process) unless a line says otherwise;
on a shared machine compare the ratios printed side by side, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _cpu_time(fn):
    """(result, CPU seconds of this process, wall seconds)."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c0, time.perf_counter() - w0


def bench_emojigram(n: int) -> list:
    from weaksup.corpus.sources import get_source

    src = get_source("emojigram", num_posts=n, unit_size=n)
    src.post(0)  # loads assets and tables once, as a worker does
    posts, cpu, wall = _cpu_time(lambda: [p for u in src.work_units() for p in src.read(u)])
    print(f"emojigram generate      {n / cpu:9.0f} posts/s per core  ({n} posts, default size, "
          f"{np.mean([len(p.image) for p in posts]) / 1e3:.1f} kB/image)")
    return posts


def bench_unit_work(posts: list) -> list[bytes]:
    from weaksup.corpus.dedup import image_hashes
    from weaksup.corpus.images import check_image
    from weaksup.corpus.record import encode_post

    def run():
        out = []
        for p in posts:
            c = check_image(p.image)
            out.append(encode_post(p))
        return out

    recs, cpu, _ = _cpu_time(run)
    print(f"image check + encode    {len(posts) / cpu:9.0f} posts/s per core")
    pils = [check_image(p.image).pil for p in posts[:500]]
    _, cpu, _ = _cpu_time(lambda: [image_hashes(im) for im in pils])
    print(f"pHash 64 + 256 (dedup)  {len(pils) / cpu:9.0f} posts/s per core")
    return recs


def bench_dedup_index() -> None:
    from weaksup.corpus.dedup import HashIndex

    rng = np.random.default_rng(0)
    for n in (10_000, 100_000, 1_000_000):
        idx = HashIndex(rng.integers(0, 2**63, n, dtype=np.uint64), threshold=10, exhaustive_below=0)
        q = rng.integers(0, 2**63, 5000, dtype=np.uint64)
        _, cpu, _ = _cpu_time(lambda: idx.min_distances(q))
        brute = np.asarray(idx.hashes)
        nb = 200
        _, cpu_b, _ = _cpu_time(lambda: [int(np.bitwise_count(brute ^ x).min()) for x in q[:nb]])
        print(f"dedup lookup {n:>7} refs {len(q) / cpu:9.0f} queries/s per core "
              f"(multi-index, t=10; all-pairs numpy: {nb / cpu_b:.0f}/s)")


def bench_write_read(records: list[bytes], tmp: Path) -> None:
    import grain

    from weaksup.corpus.shards import Corpus, shard_name, write_manifest, write_shard

    tmp.mkdir(parents=True, exist_ok=True)
    recs = records * max(1, 20000 // len(records))
    nbytes = sum(map(len, recs))
    k = 4
    infos, cpu, wall = _cpu_time(lambda: [write_shard(tmp / shard_name(i, k), recs[i::k]) for i in range(k)])
    write_manifest(tmp, infos)
    print(f"shard write             {nbytes / 1e6 / wall:9.1f} MB/s  ({len(recs)} records, "
          f"{nbytes / 1e6:.0f} MB, incl. sha256; {len(recs) / wall:.0f} records/s)")
    corpus = Corpus(tmp)
    ds = corpus.data_source()
    n = len(ds)
    order = list(range(n))
    _, _, wall_seq = _cpu_time(lambda: [ds[i] for i in order])
    random.Random(0).shuffle(order)
    _, _, wall_rnd = _cpu_time(lambda: [ds[i] for i in order])
    print(f"grain ArrayRecord read  {n / wall_seq:9.0f} records/s sequential, {n / wall_rnd:.0f} random "
          f"(one thread, {nbytes / 1e6 / wall_rnd:.0f} MB/s random)")
    batches = [order[i:i + 256] for i in range(0, n, 256)]
    _, _, wall_b = _cpu_time(lambda: [ds.__getitems__(b) for b in batches])
    print(f"grain batched random    {n / wall_b:9.0f} records/s (__getitems__, 256 per call)")
    _, _, wall_c = _cpu_time(lambda: [corpus[i] for i in order[:5000]])
    print(f"Corpus[i] decode        {5000 / wall_c:9.0f} posts/s random (msgpack decode included)")


def _cpu_all() -> float:
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_build(n: int, tmp: Path) -> None:
    from weaksup.corpus import pipeline

    config = pipeline.BuildConfig("emojigram", None, {"num_posts": n, "unit_size": 250}, num_shards=4)
    for runner, workers in (("local", 1), ("direct", None), ("local", os.cpu_count())):
        out = tmp / f"build-{runner}-{workers}"
        c0, t0 = _cpu_all(), time.perf_counter()
        pipeline.build(config, str(out), runner=runner, workers=workers, progress=False)
        cpu, wall = _cpu_all() - c0, time.perf_counter() - t0
        shutil.rmtree(out)
        print(f"build {n} posts, {runner:>6} x{workers or 1} {n / cpu:6.0f} posts/s per core of CPU used "
              f"(all processes), {n / wall:5.0f} posts/s wall clock")
    print("(the whole build costs little beyond generating the posts; DirectRunner runs one process)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=2000, help="posts for the per-core figures")
    ap.add_argument("--build-posts", type=int, default=3000, help="posts for the runner comparison (0: skip)")
    args = ap.parse_args()
    print(f"benchmarks/corpus.py on {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    posts = bench_emojigram(args.posts)
    records = bench_unit_work(posts)
    bench_dedup_index()
    with tempfile.TemporaryDirectory() as tmp:
        bench_write_read(records, Path(tmp) / "shards")
        if args.build_posts:
            bench_build(args.build_posts, Path(tmp))


if __name__ == "__main__":
    main()
