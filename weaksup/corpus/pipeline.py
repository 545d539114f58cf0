"""The corpus build: source -> validated images -> near-duplicate filter -> shards + manifest.

One set of functions does the work; two runners drive them:

* Apache Beam (`runner="DirectRunner"` locally, or `DataflowRunner`, `FlinkRunner`,
  `SparkRunner`, ... for billions of posts). Extra Beam pipeline options pass straight
  through, e.g. for Dataflow:

      python -m weaksup corpus build --source webdataset --input /mnt/laion --output /mnt/corpus \\
          --runner DataflowRunner --num-shards 4096 -- \\
          --project=P --region=R --temp_location=gs://B/tmp --sdk_container_image=IMAGE

  and for Flink/Spark: `--runner FlinkRunner -- --flink_master=host:8081
  --environment_type=DOCKER` (`SparkRunner -- --spark_master_url=...`). Workers must see
  the input and output paths: a shared filesystem (NFS, GCS FUSE) or, for the output, any
  Beam filesystem (gs://, s3://, hdfs://): shards are written to a worker-local temp file
  and published with Beam's FileSystems copy + rename.

      Create(work units) -> Reshuffle -> ReadUnit (source.read, image check, dedup)
        -> posts keyed by shard -> GroupByKey -> WriteShard (sort by id, drop duplicate
        ids, write one whole shard atomically)
        skips -> CombinePerKey(count + examples); normalisations -> Count.PerElement
        hashtags of written posts -> CombinePerKey(sum)
        all of the above as side inputs -> WriteManifest (last)

* `runner="local"`: the same per-unit and per-shard functions in a multiprocessing pool
  (a two-phase map/reduce through spill files; one worker runs them in this process). On
  a small machine it avoids Beam's per-element overhead; both runners produce identical shards.

A local output folder is locked for the build (`weaksup.workdir_lock`: a second build into
it stops at once, naming the holder), and the build is written into `OUTPUT/.build` first:
only a finished build with at least one record replaces what the folder held (the old
manifest goes first, the new one is renamed in last), so a failed build -- a full disk
(ENOSPC), an input with no posts, a crash -- leaves the previous corpus as it was and no
spill behind. An input in which the source finds nothing to read is an error too.

Output is deterministic: a post's shard is a hash of its id, posts are sorted by id within
a shard, and of duplicate ids the first in input order is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from weaksup import atomic, console, workdir_lock
from weaksup.corpus import shards as shards_lib
from weaksup.corpus.dedup import HashIndex, image_hashes
from weaksup.corpus.images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, ImageError, check_image
from weaksup.corpus.record import Post, encode_post
from weaksup.corpus.sources.base import Skip, Source, SourceError, get_source
from weaksup.errors import StorageFailed, UsageError, os_cause

SKIP_EXAMPLES = 5
_DEDUP_BATCH = 256
STAGING = ".build"  # OUTPUT/.build: the build in progress (shards, manifest, spill)
_SPILL = ".spill"  # the local runner's map output, inside the folder it builds


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Everything a worker needs; picklable, so Beam and the pool can ship it."""

    source: str
    input: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_shards: int = 16
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    # dedup.reference_hashes() output (REFERENCE_DTYPE: pHash + fine hash per reference),
    # or plain 64-bit pHashes, optionally with their fine hashes (N, 4) in dedup_fine
    dedup_hashes: np.ndarray | None = None
    dedup_fine: np.ndarray | None = None
    dedup_threshold: int = 10
    dedup_fine_threshold: int = 56
    dedup_specs: tuple[str, ...] = ()

    def make_source(self) -> Source:
        return get_source(self.source, self.input, **self.options)

    def work_units(self) -> list[str]:
        """The source's work units; SourceError when the input holds nothing it reads."""
        units = self.make_source().work_units()
        if not units:
            raise SourceError(f"{self.source}: {self.input or '(no input)'}: holds nothing the "
                              f"{self.source} source reads (no posts found)")
        return units


class Keyed(NamedTuple):
    """A post ready for its shard: the order key makes duplicate-id resolution stable."""

    shard: int
    id: str
    order: tuple[int, int]  # (unit index, position in unit)
    data: bytes  # encoded record
    hashtags: tuple[str, ...]


class Fix(NamedTuple):
    """A normalisation applied to a kept post (counted in the manifest)."""

    what: str


def shard_of(post_id: str, num_shards: int) -> int:
    """Stable shard index of a post id (independent of Python's hash seed)."""
    h = hashlib.blake2b(post_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(h, "big") % num_shards


class UnitProcessor:
    """source.read(unit) -> image check -> near-duplicate filter -> Keyed / Skip / Fix."""

    def __init__(self, config: BuildConfig):
        self.config = config
        self.source = config.make_source()
        self.index = None
        if config.dedup_hashes is not None and len(config.dedup_hashes):
            self.index = HashIndex(config.dedup_hashes, config.dedup_threshold, fine=config.dedup_fine,
                                   fine_threshold=config.dedup_fine_threshold)

    def __call__(self, unit_index: int, unit: str) -> Iterator[Keyed | Skip | Fix]:
        batch: list[tuple[int, Post, Any]] = []
        pos = 0
        try:
            for item in self.source.read(unit):
                if isinstance(item, Skip):
                    yield item
                    continue
                checked = self._check(item)
                if isinstance(checked, Skip):
                    yield checked
                    continue
                batch.append((pos, *checked))
                pos += 1
                if len(batch) >= _DEDUP_BATCH:
                    yield from self._flush(unit_index, batch)
                    batch = []
        except Exception as e:  # a source bug must not kill the build: count it, move on
            yield from self._flush(unit_index, batch)
            batch = []
            yield Skip("source_error", str(unit)[:300], f"{type(e).__name__}: {e}"[:300])
        yield from self._flush(unit_index, batch)

    def _check(self, post: Post) -> tuple[Post, Any] | Skip:
        try:
            img = check_image(post.image, max_pixels=self.config.max_pixels, min_side=self.config.min_side)
        except ImageError as e:
            where = post.meta.get("path") or post.meta.get("member") or post.meta.get("file") or post.id
            return Skip(e.reason, str(where), e.detail[:300])
        meta = dict(post.meta, width=img.width, height=img.height, format=img.format)
        if img.reencoded:
            meta.update(reencoded=True, original_format=img.original_format, original_mode=img.original_mode)
            meta["fixes"] = sorted(set(meta.get("fixes", [])) | {"reencoded_image"})
        return dataclasses.replace(post, image=img.data, meta=meta), img.pil

    def _flush(self, unit_index: int, batch: list[tuple[int, Post, Any]]) -> Iterator[Keyed | Skip | Fix]:
        if not batch:
            return
        dists = None
        if self.index is not None:
            hashes = [image_hashes(pil) for _, _, pil in batch]
            dists = self.index.min_distances(np.asarray([h for h, _ in hashes], dtype=np.uint64),
                                             np.stack([f for _, f in hashes]))
        for k, (pos, post, _) in enumerate(batch):
            if dists is not None and dists[k] >= 0:
                yield Skip("near_duplicate", post.id, f"Hamming distance {int(dists[k])}")
                continue
            for f in post.meta.get("fixes", ()):
                yield Fix(f)
            yield Keyed(shard_of(post.id, self.config.num_shards), post.id, (unit_index, pos),
                        encode_post(post), tuple(post.hashtags))


def shard_records(posts: Sequence[Keyed]) -> tuple[list[Keyed], list[Skip]]:
    """Sorts a shard's posts by id and keeps the first (in input order) of each id."""
    kept: list[Keyed] = []
    dups: list[Skip] = []
    for k in sorted(posts, key=lambda k: (k.id, k.order)):
        if kept and kept[-1].id == k.id:
            dups.append(Skip("duplicate_id", k.id, f"unit {k.order[0]} position {k.order[1]}"))
        else:
            kept.append(k)
    return kept, dups


def write_one_shard(output: str, index: int, num_shards: int, posts: Sequence[Keyed]) -> tuple[shards_lib.ShardInfo | None, Counter, list[Skip]]:
    """Writes shard `index` (if it has posts); returns its info, hashtag counts, duplicate skips."""
    kept, dups = shard_records(posts)
    tags: Counter = Counter()
    for k in kept:
        tags.update(k.hashtags)
    if not kept:
        return None, tags, dups
    name = shards_lib.shard_name(index, num_shards)
    info = _publish_shard(output, name, (k.data for k in kept))
    return info, tags, dups


def _is_remote(path: str) -> bool:
    return "://" in path


def _publish_shard(output: str, name: str, records: Any) -> shards_lib.ShardInfo:
    if not _is_remote(output):
        return shards_lib.write_shard(Path(output) / name, records)
    import tempfile

    from apache_beam.io.filesystems import FileSystems

    with tempfile.TemporaryDirectory() as tmp:
        info = shards_lib.write_shard(Path(tmp) / name, records)
        dest = FileSystems.join(output, name)
        staged = FileSystems.join(output, atomic.TMP_PREFIX + name)
        FileSystems.copy([str(Path(tmp) / name)], [staged])
        if FileSystems.exists(dest):
            FileSystems.delete([dest])
        FileSystems.rename([staged], [dest])
    return info


def _publish_json(output: str, name: str, obj: Any) -> None:
    if not _is_remote(output):
        atomic.write_json(Path(output) / name, obj, fsync=True)
        return
    from apache_beam.io.filesystems import FileSystems

    staged = FileSystems.join(output, atomic.TMP_PREFIX + name)
    with FileSystems.create(staged) as f:
        f.write(json.dumps(obj, ensure_ascii=False).encode("utf-8"))
    dest = FileSystems.join(output, name)
    if FileSystems.exists(dest):
        FileSystems.delete([dest])
    FileSystems.rename([staged], [dest])


def skip_summary(skips: Sequence[Skip] | None = None, counts: dict[str, int] | None = None,
                 examples: dict[str, list[str]] | None = None) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Merges skips into ({reason: count}, {reason: up to SKIP_EXAMPLES smallest items})."""
    counts = dict(counts or {})
    examples = {k: list(v) for k, v in (examples or {}).items()}
    for s in skips or ():
        counts[s.reason] = counts.get(s.reason, 0) + 1
        ex = examples.setdefault(s.reason, [])
        ex.append(s.item)
    for k, v in examples.items():
        examples[k] = heapq.nsmallest(SKIP_EXAMPLES, set(v))
    return counts, examples


def _has_fine(config: BuildConfig) -> bool:
    h = config.dedup_hashes
    return config.dedup_fine is not None or (h is not None and bool(h.dtype.names))


def build_info(config: BuildConfig, runner: str, units: int) -> dict[str, Any]:
    """The manifest's `build` section."""
    return {
        "source": config.source,
        "input": config.input,
        # JSON-safe whatever a Python caller passed (tuples, paths, ...)
        "options": json.loads(json.dumps(dict(sorted(config.options.items())), default=str)),
        "runner": runner,
        "work_units": units,
        "num_shards": config.num_shards,
        "max_pixels": config.max_pixels,
        "min_side": config.min_side,
        "dedup": {
            "against": list(config.dedup_specs),
            "reference_hashes": 0 if config.dedup_hashes is None else int(len(config.dedup_hashes)),
            "threshold": config.dedup_threshold,
            "fine_threshold": config.dedup_fine_threshold if _has_fine(config) else None,
            "hash": "pHash-64 (DCT 32x32 -> 8x8) candidates confirmed by pHash-256 (DCT 64x64 -> 16x16); "
                    "references with 6% crop variants",
        },
    }


def prepare_output(output: str, overwrite: bool) -> None:
    """Refuses a complete corpus unless `overwrite`; clears an interrupted build's files."""
    if _is_remote(output):
        return
    out = Path(output)
    if (out / shards_lib.MANIFEST).exists():
        if not overwrite:
            raise shards_lib.CorpusError(
                f"{out}: already holds a complete corpus ({shards_lib.MANIFEST}); pass --overwrite to rebuild"
            )
        (out / shards_lib.MANIFEST).unlink()
    out.mkdir(parents=True, exist_ok=True)
    shards_lib.remove_incomplete(out)
    shutil.rmtree(out / STAGING, ignore_errors=True)


# --- the local runner -------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _local_init(config: BuildConfig, spill: str) -> None:
    _WORKER["proc"] = UnitProcessor(config)
    _WORKER["spill"] = spill


def _local_map(task: tuple[int, str]) -> tuple[int, int, list[Skip], Counter, list[int]]:
    """Runs one unit; spills its posts per shard; returns (unit, posts, skips, fixes, shards)."""
    import msgpack

    unit_index, unit = task
    proc: UnitProcessor = _WORKER["proc"]
    spill = Path(_WORKER["spill"])
    by_shard: dict[int, list] = {}
    skips: list[Skip] = []
    fixes: Counter = Counter()
    n = 0
    for item in proc(unit_index, unit):
        if isinstance(item, Keyed):
            by_shard.setdefault(item.shard, []).append(
                [item.id, list(item.order), item.data, list(item.hashtags)])
            n += 1
        elif isinstance(item, Skip):
            skips.append(item)
        else:
            fixes[item.what] += 1
    for s, rows in by_shard.items():
        path = spill / f"s{s:05d}-u{unit_index:07d}.msgpack"
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
            packer = msgpack.Packer(use_bin_type=True)
            for r in rows:
                f.write(packer.pack(r))
    return unit_index, n, skips, fixes, sorted(by_shard)


def _local_reduce(task: tuple[str, str, int, int, list[int]]) -> tuple[Any, Counter, list[Skip]]:
    import msgpack

    output, spill, index, num_shards, units = task
    posts: list[Keyed] = []
    for u in units:
        with open(Path(spill) / f"s{index:05d}-u{u:07d}.msgpack", "rb") as f:
            for pid, order, data, tags in msgpack.Unpacker(f, raw=False, max_buffer_size=1 << 30):
                posts.append(Keyed(index, pid, tuple(order), data, tuple(tags)))
    return write_one_shard(output, index, num_shards, posts)


class ReadProgress:
    """The read stage's bar in posts (kept and skipped): against the source's count when it
    knows one up front (generated corpora), else against an estimate from the work units
    read so far, so every source shows an ETA."""

    def __init__(self, config: BuildConfig, units: int, enabled: bool):
        known = getattr(config.make_source(), "num_posts", None)
        self.total: int | None = known if isinstance(known, int) else None
        self.estimated = self.total is None
        self.units, self.done, self.read, self.skipped = units, 0, 0, 0
        self.bar = console.progress(total=self.total, desc="read", unit="post", enabled=enabled)

    def unit_done(self, posts: int, skipped: int) -> None:
        """Counts one finished work unit of `posts` kept and `skipped` skipped posts."""
        self.done += 1
        self.read += posts + skipped
        self.skipped += skipped
        if self.estimated:
            self.total = self.bar.total = round(self.read / self.done * self.units)
        self.bar.update(posts + skipped)
        self.bar.set_postfix(skipped=str(self.skipped))  # a string: tqdm prints 10000 as "1e+4"

    def close(self) -> None:
        self.bar.close()


def run_local(config: BuildConfig, output: str, workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Builds the corpus with a multiprocessing pool (one worker: in this process); returns the manifest."""
    import multiprocessing as mp

    units = config.work_units()
    spill = Path(output) / _SPILL
    spill.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers or os.cpu_count() or 1)
    skips: list[Skip] = []
    fixes: Counter = Counter()
    shard_units: dict[int, list[int]] = {}
    bar = ReadProgress(config, len(units), progress)
    tasks = list(enumerate(units))
    if workers == 1:  # no pool to start: map and reduce run in this process
        _local_init(config, str(spill))
        pool = contextlib.nullcontext()
        imap: Any = map
    else:
        # fork shares the parent's imported modules; but forking a process in which JAX has
        # started its threads can deadlock, so such callers (notebooks, tests) get spawn.
        fork_ok = sys.platform == "linux" and "jax" not in sys.modules
        ctx = mp.get_context("fork" if fork_ok else "spawn")
        pool = ctx.Pool(workers, initializer=_local_init, initargs=(config, str(spill)))

        def imap(fn: Any, items: list) -> Iterator[Any]:
            return pool.imap_unordered(fn, items, chunksize=1)
    with pool:
        for unit_index, n, sk, fx, shard_list in imap(_local_map, tasks):
            skips += sk
            fixes.update(fx)
            for s in shard_list:
                shard_units.setdefault(s, []).append(unit_index)
            bar.unit_done(n, len(sk))
        bar.close()
        infos: list[shards_lib.ShardInfo] = []
        tags: Counter = Counter()
        wbar = console.progress(total=len(shard_units), unit="shard", desc="write", enabled=progress)
        reduce_tasks = [(output, str(spill), s, config.num_shards, sorted(us)) for s, us in sorted(shard_units.items())]
        for info, t, dups in imap(_local_reduce, reduce_tasks):
            if info is not None:
                infos.append(info)
            tags.update(t)
            skips += dups
            wbar.update(1)
        wbar.close()
    _WORKER.clear()
    counts, examples = skip_summary(skips)
    shutil.rmtree(spill, ignore_errors=True)
    return _write_manifest(output, infos, counts, examples, dict(fixes), dict(tags),
                           build_info(config, "local", len(units)))


def _write_manifest(output: str, infos: Sequence[shards_lib.ShardInfo], skipped: dict[str, int],
                    examples: dict[str, list[str]], normalised: dict[str, int], tags: dict[str, int],
                    build: dict[str, Any]) -> dict[str, Any]:
    if not _is_remote(output):
        return shards_lib.write_manifest(output, infos, skipped=skipped, skipped_examples=examples,
                                         normalised=normalised, hashtag_counts=tags, build=build)
    # Remote outputs: the same two files, through Beam's filesystems, manifest last.
    counts = dict(sorted(tags.items(), key=lambda kv: (-kv[1], kv[0])))
    _publish_json(output, shards_lib.HASHTAG_COUNTS, counts)
    manifest = {
        "format_version": shards_lib.MANIFEST_VERSION,
        "records": sum(s.records for s in infos),
        "bytes": sum(s.bytes for s in infos),
        "shards": [s.to_json() for s in sorted(infos, key=lambda s: s.name)],
        "skipped": dict(sorted(skipped.items())),
        "skipped_examples": dict(sorted(examples.items())),
        "normalised": dict(sorted(normalised.items())),
        "hashtags": {"distinct": len(counts), "total": int(sum(counts.values())), "file": shards_lib.HASHTAG_COUNTS},
        "build": build,
    }
    _publish_json(output, shards_lib.MANIFEST, manifest)
    return manifest


# --- the Beam pipeline ------------------------------------------------------------------

def run_beam(config: BuildConfig, output: str, runner: str = "DirectRunner",
             pipeline_args: Sequence[str] = (), progress: bool = True) -> dict[str, Any] | None:
    """Builds the corpus with an Apache Beam pipeline; returns the manifest when local."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.pvalue import AsList

    units = config.work_units()
    # One bar per process would each claim the whole total: only the in-process
    # DirectRunner shows one.
    multi = any("multi_processing" in a for a in pipeline_args)
    show = progress and runner == "DirectRunner" and not multi

    class ReadUnit(beam.DoFn):
        def __init__(self, config: BuildConfig, total: int, show: bool):
            self.config, self.total, self.show = config, total, show

        def setup(self) -> None:
            self.proc = UnitProcessor(self.config)
            self.bar = ReadProgress(self.config, self.total, True) if self.show else None
            self.posts = beam.metrics.Metrics.counter("corpus", "posts")

        def process(self, task: tuple[int, str]):
            unit_index, unit = task
            kept = skipped = 0
            for item in self.proc(unit_index, unit):
                if isinstance(item, Keyed):
                    self.posts.inc()
                    kept += 1
                    yield (item.shard, tuple(item))
                elif isinstance(item, Skip):
                    skipped += 1
                    yield beam.pvalue.TaggedOutput("skip", (item.reason, item.item))
                else:
                    yield beam.pvalue.TaggedOutput("fix", item.what)
            if self.bar is not None:
                self.bar.unit_done(kept, skipped)

        def teardown(self) -> None:
            if getattr(self, "bar", None) is not None:
                self.bar.close()

    class WriteShard(beam.DoFn):
        def __init__(self, output: str, num_shards: int):
            self.output, self.num_shards = output, num_shards

        def process(self, kv):
            index, rows = kv
            posts = [Keyed(r[0], r[1], tuple(r[2]), r[3], tuple(r[4])) for r in rows]
            info, tags, dups = write_one_shard(self.output, index, self.num_shards, posts)
            if info is not None:
                yield info.to_json()
            for t, c in tags.items():
                yield beam.pvalue.TaggedOutput("tags", (t, c))
            for d in dups:
                yield beam.pvalue.TaggedOutput("skip", (d.reason, d.item))

    class SkipCombine(beam.CombineFn):
        def create_accumulator(self):
            return (0, [])

        def add_input(self, acc, item):
            n, ex = acc
            return n + 1, heapq.nsmallest(SKIP_EXAMPLES, set(ex) | {item})

        def merge_accumulators(self, accs):
            accs = list(accs)
            return (sum(a[0] for a in accs),
                    heapq.nsmallest(SKIP_EXAMPLES, set().union(*(set(a[1]) for a in accs))))

        def extract_output(self, acc):
            return acc

    build = build_info(config, runner, len(units))

    class WriteManifest(beam.DoFn):
        def __init__(self, output: str, build: dict[str, Any]):
            self.output, self.build = output, build

        def process(self, _, infos, skips, fixes, tags):
            infos = [shards_lib.ShardInfo(**i) for i in infos]
            counts = {r: n for r, (n, _) in skips}
            examples = {r: ex for r, (_, ex) in skips}
            _write_manifest(self.output, infos, counts, examples, dict(fixes), dict(tags), self.build)
            yield len(infos)

    options = PipelineOptions(list(pipeline_args), runner=runner, save_main_session=False)
    with beam.Pipeline(options=options) as p:
        read = (p | "Units" >> beam.Create(list(enumerate(units)))
                | "Spread" >> beam.Reshuffle()
                | "ReadUnit" >> beam.ParDo(ReadUnit(config, len(units), show)).with_outputs("skip", "fix", main="post"))
        written = (read.post | "ByShard" >> beam.GroupByKey()
                   | "WriteShard" >> beam.ParDo(WriteShard(output, config.num_shards)).with_outputs("tags", "skip", main="info"))
        skips = ((read.skip, written.skip) | "AllSkips" >> beam.Flatten()
                 | "CountSkips" >> beam.CombinePerKey(SkipCombine()))
        fixes = read.fix | "CountFixes" >> beam.combiners.Count.PerElement()
        tags = written.tags | "CountHashtags" >> beam.CombinePerKey(sum)
        _ = (p | "Once" >> beam.Create([None])
             | "WriteManifest" >> beam.ParDo(WriteManifest(output, build), AsList(written.info),
                                             AsList(skips), AsList(fixes), AsList(tags)))
    if _is_remote(output):
        return None
    return json.loads((Path(output) / shards_lib.MANIFEST).read_text())


def build(config: BuildConfig, output: str, *, runner: str = "local", workers: int | None = None,
          pipeline_args: Sequence[str] = (), overwrite: bool = False, progress: bool = True) -> dict[str, Any] | None:
    """Builds a corpus into `output` with the chosen runner ("local" or a Beam runner name).

    A local `output` is locked for the build, which is staged in `output/.build` and
    replaces the folder's corpus only once it is complete and holds records (see the
    module notes). Raises SourceError for an input without posts, CorpusError for a build
    without records or a busy or unusable output, StorageFailed for a write that failed
    (a full disk: ENOSPC), each with the output as it was before.
    """
    if runner in ("direct", "DirectRunner") and workers and not any(a.startswith("--direct_num_workers") for a in pipeline_args):
        pipeline_args = [*pipeline_args, f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    beam_runner = "DirectRunner" if runner == "direct" else runner

    def run(into: str) -> dict[str, Any] | None:
        if runner == "local":
            return run_local(config, into, workers=workers, progress=progress)
        return run_beam(config, into, runner=beam_runner, pipeline_args=pipeline_args, progress=progress)

    if _is_remote(output):  # no local folder to lock or stage in: written in place, manifest last
        return run(output)
    out = Path(output)
    created = not out.exists()
    try:
        with workdir_lock.hold(out, what="corpus build"):
            _check_output(out, overwrite)
            staging = out / STAGING
            abandoned = f"the build was abandoned and {out} is left as it was"
            try:
                try:
                    staging.mkdir()
                    manifest = run(str(staging))
                except OSError as e:  # the build's own files: spill, hashtag counts, manifest
                    where = f" writing {e.filename}" if e.filename else ""
                    raise StorageFailed(f"{out}: {os_cause(e) or e}{where}; {abandoned}") from None
                except shards_lib.CorpusError as e:
                    if os_cause(e):  # the shard writer (riegeli) reports a full disk in its message
                        raise StorageFailed(f"{e}; {abandoned}") from None
                    raise shards_lib.CorpusError(f"{e}; {abandoned}") from None
                if manifest is None or not manifest["records"]:
                    skipped = json.dumps((manifest or {}).get("skipped", {}))
                    raise shards_lib.CorpusError(f"{out}: the build produced no records from "
                                                 f"{config.input or config.source} (skipped: {skipped}); {abandoned}")
                _commit(staging, out)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except UsageError as e:
        if not isinstance(e, shards_lib.CorpusError):  # a busy or unusable folder (workdir_lock)
            raise shards_lib.CorpusError(f"output folder: {e}") from None
        raise
    finally:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when the failed build left it empty
    return manifest


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuses a complete corpus unless `overwrite` (and then leaves it for `_commit`); clears an interrupted build."""
    if (out / shards_lib.MANIFEST).exists():
        if not overwrite:
            raise shards_lib.CorpusError(
                f"{out}: already holds a complete corpus ({shards_lib.MANIFEST}); pass --overwrite to rebuild"
            )
    else:
        shards_lib.remove_incomplete(out)
    shutil.rmtree(out / STAGING, ignore_errors=True)


def _commit(staging: Path, out: Path) -> None:
    """Moves a finished build from `staging` into `out`, replacing the corpus there.

    Renames only, on one file system, so a full disk cannot stop it half way; the old
    manifest goes first and the new one comes last, so no moment looks complete but mixed.
    """
    (out / shards_lib.MANIFEST).unlink(missing_ok=True)
    shards_lib.remove_incomplete(out)
    for p in sorted(staging.iterdir()):
        if p.is_file() and p.name != shards_lib.MANIFEST:
            os.replace(p, out / p.name)
    os.replace(staging / shards_lib.MANIFEST, out / shards_lib.MANIFEST)
