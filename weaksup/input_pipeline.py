"""Grain input pipelines: hashtag pretraining batches and TFDS evaluation batches.

Pretraining, per JAX process:

  record positions (resampler, `weaksup.sampling`) -> read (ArrayRecord) -> parse the
  record -> labels (cached per-post labels, optional label noise) -> decode + train crop
  (`weaksup.augment`; a corpus of small pictures decodes once, `weaksup.picture_cache`)
  -> skip bad records, count them -> batch

grain maps chunks of CHUNK positions, not single ones, and the crops' random numbers come
from `augment.train_draws`.

A batch is a dict of numpy arrays: `image` uint8 (B_local, H, W, 3) and `labels` int32
(B_local, max_labels), a post's labels padded with -1 (on device, `losses.label_targets`
turns them into the paper's 1/k softmax targets and `train_lib.normalize_images` the
pictures into the model's input). Post labels come from `weaksup.labels`.

Evaluation and fine-tuning read a `Target`: a TFDS dataset, its splits and feature keys,
or your own pictures in the ImageFolder layout (`dataset="folder:PATH"`, see `ImageFolder`).

Global stream. The resampler defines one global sequence of record positions per epoch,
the same in every process. Global batch b is positions [b*G, (b+1)*G) for global batch
size G; process p reads positions [b*G + p*B, b*G + (p+1)*B) with B = G / process_count.
So the data a run sees does not depend on how many processes read it, and together the
processes cover every position exactly once. Every random choice for a position (crop,
flip) comes from (seed, epoch, position); label noise comes from (seed, record index) so
a noisy post stays the same noisy post in every epoch, like the paper's perturbed
dataset. The iterator's state (grain's next chunk of `CHUNK` positions, how many of its
examples were served, and the skip counters) therefore pins the exact continuation;
`get_state()`/`set_state()` round-trip through Orbax with
`grain.checkpoint.CheckpointSave/CheckpointRestore`.

Label noise (paper Sec. 4.3): each of a post's in-vocabulary hashtag occurrences is,
with probability p, replaced by a draw from the marginal distribution of in-vocabulary
hashtag occurrences in the corpus (drawing a uniformly random occurrence does exactly
that). Resampling weights are computed from the clean labels.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np

import tensorflow_datasets as tfds
from absl import flags

from weaksup import augment, picture_cache
from weaksup.corpus.record import decode_post
from weaksup.corpus.shards import Corpus
from weaksup.errors import UsageError
from weaksup.hashtags.vocabulary import Vocabulary
from weaksup.labels import PostLabels, check_built_from, load_post_labels, pad_labels
from weaksup.sampling import Resampler, training_eligible

# Label noise's random stream (crops draw from `augment.train_draws`).
_NOISE_STREAM = 0x401

# An iterator without an end still needs a length for grain's MapDataset.
_ENDLESS = 1 << 60
# Examples decoded per grain element. grain's threaded prefetch spends ~120 us of CPU on
# each element it serves (a future, locks, its statistics), as much as decoding and
# cropping a 32 px example; over a chunk of 32 that is ~4 us per example (measured in
# benchmarks/train.py's full loop, where the decoders share the cores with the step).
CHUNK = 32
# Chunks decoded ahead of the batch being assembled: two local batches' worth.
_PREFETCH_BATCHES = 2
# Warn about the first bad records individually, then only every this many.
_WARN_FIRST, _WARN_EVERY = 20, 1000


# --- per-example work (runs in grain threads / worker processes) -----------------------


@dataclasses.dataclass
class _Layout:
    """How process-local positions map to global stream positions."""

    global_batch: int
    local_batch: int
    process_index: int
    total: int  # global positions in the stream (_ENDLESS when endless)

    def global_position(self, j: int) -> int:
        b, r = divmod(j, self.local_batch)
        return b * self.global_batch + self.process_index * self.local_batch + r

    def local_length(self) -> int:
        full, rem = divmod(self.total, self.global_batch)
        tail = min(max(rem - self.process_index * self.local_batch, 0), self.local_batch)
        return full * self.local_batch + tail


class _Chunks:
    """Chunk index -> the examples (or skip markers) at process-local positions
    [c*CHUNK, (c+1)*CHUNK) of the stream, each made by `example(record, draws)`.

    `order.record_at` maps a global position to (epoch, position in epoch, record); the
    crop draws of a position come from (seed, epoch, position) (`augment.train_draws`).
    """

    def __init__(self, order: Any, layout: _Layout, seed: int, example: Callable[[int, list[float]], dict[str, Any]]):
        self.order, self.layout, self.seed, self.example = order, layout, int(seed), example
        self.length = layout.local_length()

    def __call__(self, c: int) -> list[dict[str, Any]]:
        start = int(c) * CHUNK
        where = [self.order.record_at(self.layout.global_position(j))
                 for j in range(start, min(start + CHUNK, self.length))]
        epochs, positions, records = zip(*where)
        draws = augment.train_draws(self.seed, epochs, positions)
        return [self.example(record, u) for record, u in zip(records, draws.tolist())]


class _PretrainExample:
    """(record, crop draws) -> example dict, or a skip marker naming what went wrong."""

    def __init__(
        self,
        source: Any,
        describe: Callable[[int], str],
        post_labels: PostLabels,
        vocab: Vocabulary,
        *,
        seed: int,
        image_size: int,
        max_labels: int,
        label_noise: float,
        with_record_index: bool,
        crop_min_area: float = 0.08,
        pictures: picture_cache.PictureCache | None = None,
    ):
        self.source = source
        self.pictures = pictures
        self.describe = describe
        self.post_labels = post_labels
        self.vocab = vocab
        self.seed = int(seed)
        self.image_size = int(image_size)
        self.max_labels = int(max_labels)
        self.label_noise = float(label_noise)
        self.with_record_index = with_record_index
        self.crop_min_area = float(crop_min_area)

    def labels(self, record: int) -> np.ndarray:
        if self.label_noise <= 0:
            labels = self.post_labels.of(record)
        else:
            occ = self.post_labels.occurrences_of(record).copy()
            rng = np.random.default_rng([self.seed, record, _NOISE_STREAM])
            flip = rng.random(len(occ)) < self.label_noise
            pool = self.post_labels.occ_labels
            occ[flip] = pool[rng.integers(0, len(pool), int(flip.sum()))]
            labels = np.asarray(self.vocab.prune(occ.tolist()), np.int32)
        return pad_labels(labels, self.max_labels)

    def __call__(self, record: int, draws: list[float]) -> dict[str, Any]:
        try:
            image = None
            if self.pictures is not None:  # the same pixels, decoded once
                image = self.pictures.train_crop(record, self.image_size, draws, self.crop_min_area)
            if image is None:
                image_bytes = decode_post(self.source[record]).image
                image = augment.train_crop(image_bytes, self.image_size, draws, self.crop_min_area)
        except Exception as e:  # any bad record is skipped, never fatal
            return {"skip": f"{self.describe(record)}: {type(e).__name__}: {e}"}
        example = {"image": image, "labels": self.labels(record)}
        if self.with_record_index:
            example["record"] = np.int64(record)
        return example


# --- batching, skipping and counting (main process) ------------------------------------


class BatchIterator(grain.DatasetIterator):
    """Serves the examples of decoded chunks in order, skips bad ones (counting and
    warning) and stacks the rest into batches.

    Its state is the upstream grain state at the chunk being served, how many of that
    chunk's examples were served, and the counters; so a restored run continues with the
    same batches and the same counts. A state from before chunked decoding (grain's index
    of the next example) resumes at that example.
    """

    def __init__(
        self,
        parent: grain.DatasetIterator,
        batch_size: int,
        drop_remainder: bool,
        static: dict[str, int] | None = None,
    ):
        super().__init__(parent)
        self.batch_size = batch_size
        self.drop_remainder = drop_remainder
        self.static = dict(static or {})
        self.counters = {"examples": 0, "batches": 0, "skipped_unreadable": 0}
        self._chunk: list[dict[str, Any]] | None = []  # None: fetch it from `_chunk_state` first
        self._chunk_state: Any = None  # the upstream state that yields `_chunk`
        self._served = 0  # examples of `_chunk` already served

    def _next_example(self) -> dict[str, Any]:
        while True:
            if self._chunk is None:
                self._chunk = next(self._parent)
            if self._served < len(self._chunk):
                self._served += 1
                return self._chunk[self._served - 1]
            self._chunk_state, self._chunk, self._served = self._parent.get_state(), None, 0

    def __next__(self) -> dict[str, np.ndarray]:
        items: list[dict[str, Any]] = []
        while len(items) < self.batch_size:
            try:
                ex = self._next_example()
            except StopIteration:
                break
            if "skip" in ex:
                self.counters["skipped_unreadable"] += 1
                n = self.counters["skipped_unreadable"]
                if n <= _WARN_FIRST or n % _WARN_EVERY == 0:
                    warnings.warn(f"skipping unreadable record ({n} so far): {ex['skip']}")
                continue
            items.append(ex)
        if not items or (self.drop_remainder and len(items) < self.batch_size):
            raise StopIteration
        batch = {k: np.stack([ex[k] for ex in items]) for k in items[0]}
        self.counters["examples"] += len(items)
        self.counters["batches"] += 1
        return batch

    def stats(self) -> dict[str, int]:
        """Counters for logging: examples/batches served, records skipped, corpus totals."""
        return {**self.static, **self.counters}

    def get_state(self) -> dict[str, Any]:
        if self._chunk is not None and self._served >= len(self._chunk):
            parent, served = self._parent.get_state(), 0
        else:
            parent, served = self._chunk_state, self._served
        return {"parent": parent, "served": served, "chunk": CHUNK, "counters": dict(self.counters)}

    def set_state(self, state: dict[str, Any]) -> None:
        parent, served, chunk = state["parent"], int(state.get("served", 0)), int(state.get("chunk", 1))
        if chunk != CHUNK:
            # Written with another chunk size (1: before chunked decoding). Threaded
            # iterators count grain elements, which convert; worker processes keep
            # per-worker counts, which do not.
            if set(parent) != {"next_index"}:
                raise ValueError(f"an iterator state written with {chunk} examples per chunk by worker processes "
                                 f"cannot resume with {CHUNK}; resume with input.num_workers=0")
            example = int(parent["next_index"]) * chunk + served
            parent, served = {"next_index": example // CHUNK}, example % CHUNK
        self._parent.set_state(parent)
        self._chunk_state, self._served = parent, served
        self._chunk = None if served else []
        self.counters = {k: int(v) for k, v in state["counters"].items()}


def _chunked_iterator(chunks: _Chunks, local_batch: int, num_workers: int, num_threads: int) -> grain.DatasetIterator:
    """grain iterator of `chunks(c)` for every chunk of the process's positions."""
    ds = grain.MapDataset.range(-(-chunks.length // CHUNK)).map(chunks)
    prefetch = max(2, -(-_PREFETCH_BATCHES * local_batch // CHUNK))
    it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
    if num_workers > 0:
        # grain 0.2.18's worker start-up reads an absl flag directly and fails unless flags
        # were parsed; outside an absl app we take every flag's default.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return iter(it_ds)


def _process_layout(
    global_batch_size: int, process_index: int | None, process_count: int | None
) -> tuple[int, int, int]:
    if process_index is None or process_count is None:
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    if global_batch_size % process_count:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by {process_count} processes"
        )
    return process_index, process_count, global_batch_size // process_count


# --- pretraining ------------------------------------------------------------------------


def make_pretrain_iterator(
    corpus_dir: str | os.PathLike,
    vocab_path: str | os.PathLike,
    *,
    global_batch_size: int,
    image_size: int,
    resampling: str = "natural",
    balance_t: int = 20_000,
    label_noise: float = 0.0,
    max_labels: int = 8,
    seed: int = 0,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    num_workers: int = 0,
    num_threads: int = 2,
    decoded_cache_mb: int = 2048,
    with_record_index: bool = False,
    holdout_records: int = 0,
    allow_corpus_mismatch: bool = False,
    crop_min_area: float = 0.08,
) -> BatchIterator:
    """This process's iterator of pretraining batches (checkpointable grain iterator).

    `num_epochs=None` repeats forever. `process_index`/`process_count` default to JAX's.
    `num_workers` > 0 decodes in that many worker processes (grain mp_prefetch);
    `num_threads` is grain's per-process read/decode thread count. With
    `decoded_cache_mb` > 0 and no worker processes, a corpus of small pictures decodes
    once into memory (at most that many MB; `weaksup.picture_cache`). The last
    `holdout_records` records are never sampled (kept for evaluation). A vocabulary built
    from a different corpus is an error unless `allow_corpus_mismatch`.
    """
    crop_min_area = augment.check_min_area(crop_min_area)
    process_index, process_count, local_batch = _process_layout(
        global_batch_size, process_index, process_count
    )
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    corpus = Corpus(corpus_dir)
    vocab = Vocabulary.load(vocab_path)
    if not allow_corpus_mismatch:
        check_built_from(vocab, vocab_path, corpus)
    post_labels = load_post_labels(vocab, vocab_path, corpus)
    resampler = Resampler(
        post_labels.offsets, post_labels.labels, vocab.num_classes, resampling, seed=seed,
        eligible=training_eligible(len(post_labels), holdout_records), balance_t=balance_t,
    )
    total = _ENDLESS if num_epochs is None else int(num_epochs) * len(resampler)
    layout = _Layout(global_batch_size, local_batch, process_index, total)
    source = corpus.data_source()
    pictures = None
    if decoded_cache_mb > 0 and num_workers == 0:
        pictures = picture_cache.build(source, resampler.labelled, len(post_labels), decoded_cache_mb << 20,
                                       corpus.describe)
    fn = _PretrainExample(
        source,
        corpus.describe,
        post_labels,
        vocab,
        seed=seed,
        image_size=image_size,
        max_labels=max_labels,
        label_noise=label_noise,
        with_record_index=with_record_index,
        crop_min_area=crop_min_area,
        pictures=pictures,
    )
    static = {
        "records": len(post_labels),
        "labelled_records": int(len(resampler.labelled)),
        "unlabelled_records": int(len(post_labels) - len(resampler.labelled) - holdout_records),
        "holdout_records": int(holdout_records),
        "unreadable_hashtags": int(len(post_labels.bad)),
        "epoch_size": len(resampler),
    }
    parent = _chunked_iterator(_Chunks(resampler, layout, seed, fn), local_batch, num_workers, num_threads)
    return BatchIterator(parent, local_batch, drop_remainder, static)


def make_pretrain_iterator_from_config(
    config: Any, process_index: int | None = None, process_count: int | None = None
) -> BatchIterator:
    """`make_pretrain_iterator` from a config's corpus_dir, vocab_path, seed and `input`."""
    inp = config.input
    return make_pretrain_iterator(
        config.corpus_dir,
        config.vocab_path,
        global_batch_size=inp.global_batch_size,
        image_size=inp.image_size,
        resampling=inp.resampling,
        balance_t=inp.balance_t,
        label_noise=inp.label_noise,
        max_labels=inp.max_labels,
        seed=config.seed,
        num_workers=inp.num_workers,
        num_threads=inp.num_threads,
        decoded_cache_mb=inp.decoded_cache_mb,
        holdout_records=config.holdout_records,
        crop_min_area=inp.crop_min_area,
        allow_corpus_mismatch=inp.allow_corpus_mismatch,
        process_index=process_index,
        process_count=process_count,
    )


# --- evaluation targets (TFDS, array_record, no TensorFlow) -------------------------------


class EvalDataError(UsageError, ValueError):
    """An evaluation dataset that cannot be opened as asked (name, split or feature key)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """A transfer dataset: where it lives (TFDS name and data_dir), its splits, keys and crop size.

    A target without a validation split gets one carved from its training split (a fixed,
    seeded `val_fraction`; see `weaksup.evaluators.features`), so hyper-parameters are
    never chosen on the test split. `batch_size` is global.
    """

    dataset: str
    data_dir: str | None = None
    image_key: str = "image"
    label_key: str = "label"
    train_split: str = "train"
    val_split: str | None = None
    test_split: str | None = "test"
    val_fraction: float = 0.2
    image_size: int = 32
    batch_size: int = 64
    seed: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> tuple[Target, dict[str, Any]]:
        """Splits options into the target's fields and the rest ("" for a split or data_dir: none)."""
        names = {f.name for f in dataclasses.fields(cls)}
        mine = {k: v for k, v in options.items() if k in names}
        rest = {k: v for k, v in options.items() if k not in names}
        if not mine.get("dataset"):
            raise EvalDataError("evaluator options need a `dataset` (TFDS name)")
        for key in ("data_dir", "val_split", "test_split"):  # "" (command-line friendly) means none
            if key in mine:
                mine[key] = str(mine[key]) if mine[key] else None
        return cls(**mine), rest

    def open(self, split: str) -> tuple[Any, int]:
        """(random-access source of {image bytes, label}, class count) of a split; EvalDataError names what is wrong."""
        if self.dataset.startswith(FOLDER_PREFIX):
            folder = ImageFolder(self.dataset[len(FOLDER_PREFIX):], seed=self.seed)
            return folder.source(split, self.image_key, self.label_key), len(folder.classes)
        return open_tfds_source(self.dataset, split, data_dir=self.data_dir, image_key=self.image_key,
                                label_key=self.label_key)

    def class_names(self) -> list[str]:
        """The classes' names in label order (ClassLabel names; an image folder's sub-folders)."""
        if self.dataset.startswith(FOLDER_PREFIX):
            return list(ImageFolder(self.dataset[len(FOLDER_PREFIX):], seed=self.seed).classes)
        builder = _tfds_builder(self.dataset, self.data_dir)
        names = list(getattr(builder.info.features[self.label_key], "names", None) or [])
        if not names:
            raise EvalDataError(f"TFDS dataset {self.dataset!r}: label feature {self.label_key!r} names no classes")
        return names

    def num_classes(self) -> int:
        """Class count from the label feature (ClassLabel); checked on the training split."""
        _, n = self.open(self.train_split)
        if n <= 0:
            raise EvalDataError(f"TFDS dataset {self.dataset!r}: label feature {self.label_key!r} is not a "
                                "ClassLabel, so the class count is unknown")
        return n

    def check(self) -> None:
        """Opens every split once, so a wrong name or key fails before any compute."""
        for split in (self.train_split, self.val_split, self.test_split):
            if split is not None:
                self.open(split)
        self.num_classes()


FOLDER_PREFIX = "folder:"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
SPLIT_FOLDERS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
# Shares of each class's pictures in the carved train / validation / test splits.
FOLDER_SPLIT_SHARES = (0.7, 0.1, 0.2)


class ImageFolder:
    """Your own pictures as a target: ROOT/CLASS/*.jpg, or ROOT/{train,validation,test}/CLASS/*.jpg.

    Classes are the sub-folder names, sorted (label i is the i-th). With split folders
    (`val` counts as `validation`) each split is its folder. Without them every class's
    pictures (sorted by path) are shuffled with `seed` and cut 70% / 10% / 20% into
    train / validation / test, so the split is stated and repeatable. Files are kept by
    their suffix (jpg, jpeg, png, gif, bmp, webp, tif, tiff, ppm, pgm); unreadable
    pictures are masked out by the evaluation pipeline like any bad example.
    """

    def __init__(self, root: str | os.PathLike, seed: int = 0):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise EvalDataError(f"image folder {self.root}: no such folder")
        subdirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        split_dirs = {SPLIT_FOLDERS[p.name]: p for p in subdirs if p.name in SPLIT_FOLDERS}
        if split_dirs and len(split_dirs) != len(subdirs):
            raise EvalDataError(f"image folder {self.root}: mixes split folders ({', '.join(sorted(split_dirs))}) "
                                "with class folders")
        per_split = {name: self._scan(d) for name, d in split_dirs.items()} if split_dirs else None
        pool = None if per_split else self._scan(self.root)
        classes = sorted({c for files in (per_split or {"all": pool}).values() for c in files})
        if not classes:
            raise EvalDataError(f"image folder {self.root}: no class folders with pictures in them")
        self.classes = classes
        index = {c: i for i, c in enumerate(classes)}
        self.splits: dict[str, list[tuple[Path, int]]] = {}
        if per_split:
            for name, files in per_split.items():
                self.splits[name] = [(f, index[c]) for c in sorted(files) for f in files[c]]
        else:
            rng = np.random.default_rng([seed, 0xF01D])
            for name in ("train", "validation", "test"):
                self.splits[name] = []
            for c in classes:
                files = [pool[c][i] for i in rng.permutation(len(pool[c]))]
                n_train = int(round(FOLDER_SPLIT_SHARES[0] * len(files)))
                n_val = int(round(FOLDER_SPLIT_SHARES[1] * len(files)))
                for name, part in (("train", files[:n_train]), ("validation", files[n_train:n_train + n_val]),
                                   ("test", files[n_train + n_val:])):
                    self.splits[name] += [(f, index[c]) for f in part]

    def _scan(self, folder: Path) -> dict[str, list[Path]]:
        """{class folder name: its pictures, sorted} for the class folders under `folder`."""
        out = {}
        for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                out[d.name] = files
        return out

    def source(self, split: str, image_key: str = "image", label_key: str = "label") -> _FolderSource:
        """A random-access source of one split: {image_key: encoded bytes, label_key: class index}."""
        items = self.splits.get(SPLIT_FOLDERS.get(split, split))
        if not items:
            have = sorted(k for k, v in self.splits.items() if v)
            raise EvalDataError(f"image folder {self.root} has no split {split!r} with pictures; splits: {have}")
        return _FolderSource(items, image_key, label_key)


class _FolderSource:
    """Index -> {image bytes, label} over a list of (path, label); a file read error surfaces per example."""

    def __init__(self, items: list[tuple[Path, int]], image_key: str, label_key: str):
        self.items, self.image_key, self.label_key = items, image_key, label_key

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.items[i]
        return {self.image_key: path.read_bytes(), self.label_key: label}


def _tfds_builder(dataset: str, data_dir: str | os.PathLike | None) -> Any:
    """The prepared TFDS builder of `dataset`; EvalDataError when it is unknown or not built."""
    try:
        builder = tfds.builder(dataset, data_dir=None if data_dir is None else str(data_dir))
    except Exception as e:  # tfds raises DatasetNotFoundError and friends
        raise EvalDataError(f"TFDS dataset {dataset!r} (data_dir {data_dir}): {type(e).__name__}: {e}") from None
    if not builder.is_prepared():
        raise EvalDataError(f"TFDS dataset {dataset!r} is not built under {builder.data_dir}")
    return builder


def open_tfds_source(
    dataset: str,
    split: str,
    *,
    data_dir: str | os.PathLike | None,
    image_key: str = "image",
    label_key: str = "label",
) -> tuple[Any, int]:
    """A TFDS random-access source yielding encoded image bytes, and the class count.

    Images come undecoded (SkipDecoding) so that JPEGs go through the fast decoder.
    """
    builder = _tfds_builder(dataset, data_dir)
    features = builder.info.features
    for what, key in (("image_key", image_key), ("label_key", label_key)):
        if key not in features:
            raise EvalDataError(
                f"TFDS dataset {dataset!r} has no feature {key!r} ({what}); features: {sorted(features.keys())}"
            )
    if split not in builder.info.splits:
        raise EvalDataError(f"TFDS dataset {dataset!r} has no split {split!r}; splits: {sorted(builder.info.splits.keys())}")
    label_feature = features[label_key]
    num_classes = int(getattr(label_feature, "num_classes", 0) or 0)
    decoders = {image_key: tfds.decode.SkipDecoding()}
    source = builder.as_data_source(split=split, decoders=decoders)
    return source, num_classes


class _EvalExample:
    """Local index -> centre-cropped example; indices past this process's part are padding."""

    def __init__(self, source, lo, count, image_key, label_key, image_size, crop_fraction, name):
        self.source, self.lo, self.count = source, lo, count
        self.image_key, self.label_key = image_key, label_key
        self.image_size, self.crop_fraction, self.name = image_size, crop_fraction, name

    def _padding(self) -> dict[str, Any]:
        return {
            "image": np.zeros((self.image_size, self.image_size, 3), np.uint8),
            "label": np.int32(-1),
            "mask": np.bool_(False),
        }

    def __call__(self, j: int) -> dict[str, Any]:
        if j >= self.count:
            return self._padding()
        i = self.lo + int(j)
        try:
            ex = self.source[i]
            image = _as_image(ex[self.image_key], self.image_size, self.crop_fraction)
            label = np.int32(ex[self.label_key])
        except Exception as e:  # one bad picture must not end an evaluation
            warnings.warn(f"{self.name} example {i}: unreadable, masked out: {type(e).__name__}: {e}")
            return self._padding()
        return {"image": image, "label": label, "mask": np.bool_(True)}


def _as_image(value: Any, size: int, crop_fraction: float) -> np.ndarray:
    if isinstance(value, (bytes, bytearray)):
        return augment.eval_crop(bytes(value), size, crop_fraction)
    return augment.center_crop(np.asarray(value, np.uint8), size, crop_fraction)


def make_eval_iterator(
    target: Target,
    split: str,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
    crop_fraction: float = 0.875,
    num_threads: int = 2,
) -> Iterator[dict[str, np.ndarray]]:
    """One pass over a split of `target`: `image` uint8, `label` int32, `mask` bool batches.

    `target.batch_size` is global; this process yields batches of batch_size / process_count
    over its contiguous part of the split. Every process yields the same number of
    batches; the last ones are padded (mask False, label -1) so shapes stay static.
    """
    process_index, process_count, local_batch = _process_layout(target.batch_size, process_index, process_count)
    source, _ = target.open(split)
    n = len(source)
    bounds = [n * p // process_count for p in range(process_count + 1)]
    lo, hi = bounds[process_index], bounds[process_index + 1]
    per_process = -(-n // process_count)
    num_batches = -(-per_process // local_batch)
    fn = _EvalExample(source, lo, hi - lo, target.image_key, target.label_key, target.image_size, crop_fraction,
                      f"{target.dataset}/{split}")
    ds = grain.MapDataset.range(num_batches * local_batch).map(fn).batch(local_batch)
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=4 * local_batch)))


class _Permutation:
    """Every example once per epoch, in an order fixed by (seed, epoch)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.n

    def record_at(self, position: int) -> tuple[int, int, int]:
        epoch, pos = divmod(int(position), self.n)
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch, 0x5A3D]).permutation(self.n))
        return epoch, pos, int(self._cached[1][pos])


class _FinetuneExample:
    """(example index, crop draws) -> random-resized-crop example, or a skip marker."""

    def __init__(self, source, image_key, label_key, image_size, name, crop_min_area):
        self.source, self.image_key, self.label_key = source, image_key, label_key
        self.image_size, self.name, self.crop_min_area = image_size, name, crop_min_area

    def __call__(self, i: int, draws: list[float]) -> dict[str, Any]:
        try:
            ex = self.source[i]
            value = ex[self.image_key]
            if isinstance(value, (bytes, bytearray)):
                image = augment.train_crop(bytes(value), self.image_size, draws, self.crop_min_area)
            else:  # already decoded by TFDS: crop the array
                image = augment.train_crop_array(np.asarray(value, np.uint8), self.image_size, draws,
                                                 self.crop_min_area)
            return {"image": image, "label": np.int32(ex[self.label_key])}
        except Exception as e:  # any bad example is skipped, never fatal
            return {"skip": f"{self.name} example {i}: {type(e).__name__}: {e}"}


def make_finetune_iterator(
    target: Target,
    *,
    num_epochs: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    num_workers: int = 0,
    num_threads: int = 2,
    crop_min_area: float = 0.08,
) -> BatchIterator:
    """Training batches from `target`'s training split for fine-tuning: shuffled, repeated, augmented.

    Random-resized crop (keeping at least `crop_min_area` of the picture) + flip; `image`
    uint8 and `label` int32; `target.batch_size` is global; the order and crops follow
    `target.seed`. Checkpointable like the pretraining iterator (same global-stream layout).
    """
    crop_min_area = augment.check_min_area(crop_min_area)
    process_index, process_count, local_batch = _process_layout(target.batch_size, process_index, process_count)
    split = target.train_split
    source, _ = target.open(split)
    order = _Permutation(len(source), target.seed)
    total = _ENDLESS if num_epochs is None else int(num_epochs) * len(source)
    layout = _Layout(target.batch_size, local_batch, process_index, total)
    fn = _FinetuneExample(source, target.image_key, target.label_key, target.image_size, f"{target.dataset}/{split}",
                          crop_min_area)
    parent = _chunked_iterator(_Chunks(order, layout, target.seed, fn), local_batch, num_workers, num_threads)
    return BatchIterator(parent, local_batch, drop_remainder=True, static={"records": len(source)})
