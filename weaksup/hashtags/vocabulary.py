"""The label space: which canonical labels exist, and which hashtags merge into each.

Paper Sec. 2.1: hashtags are mapped to WordNet noun synsets; synonyms merge into one label,
and three vocabularies were built (ImageNet-1k synsets, every noun synset, the most
frequent nouns). Modes here:

  imagenet1k  synsets among the 1,000 ImageNet-1k wnids (read from tensorflow-datasets)
  nouns       every resolved noun synset, optionally only below `under` synsets and/or in
              the given lexicographer files (e.g. noun.animal)
  topk        the `top_k` most frequent of `nouns`
  min_count   the `nouns` seen at least `min_count` times
  raw         no WordNet: each normalised hashtag (`normalize_hashtag`) is its own class

`top_k` / `min_count` also apply as extra filters to any mode, and `within` (a list of
synsets) keeps only those: the paper's target-aligned vocabulary for any target, as
`imagenet1k` is for ImageNet (e.g. the synsets of a TFDS dataset's classes). Labels are ordered by
frequency (hashtag occurrences, most frequent first), ties by id. A label's id is its
wnid ("n02084071"); in `raw` mode it is "#" + the normalised hashtag, which is never a wnid.

"Prefer specific over general" (optional): within a post, a label is dropped when one of
its hyponyms is also among the post's labels (#animal #dog -> dog). Each label stores the
vocabulary indices of its WordNet hypernyms so that the pruning needs no WordNet at
training time.

Per-post labels (`PostLabels`) come from one pass over the corpus records that decodes
only the hashtags; they are cached next to the vocabulary file, keyed by the corpus
manifest checksum and the vocabulary hash, and shared by coverage, the resampler and the
input pipeline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

FORMAT = "weaksup-vocabulary"
FORMAT_VERSION = 1
MODES = ("imagenet1k", "nouns", "topk", "min_count", "raw")


class VocabularyError(ValueError):
    """A vocabulary file that cannot be used: missing, malformed, or built for other data."""


def _normalize(tag: str) -> str:
    from weaksup.hashtags.normalize import normalize_hashtag

    return normalize_hashtag(tag)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def imagenet1k_wnids() -> list[str]:
    """The 1,000 ImageNet-1k wnids in class order, from the installed tensorflow-datasets."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise VocabularyError("tensorflow-datasets is not installed; it ships the ImageNet labels")
    root = Path(next(iter(spec.submodule_search_locations)))
    candidates = [
        root / "datasets" / "imagenet2012" / "labels.txt",
        root / "image_classification" / "imagenet2012_labels.txt",
    ]
    for path in candidates:
        if path.exists():
            wnids = [w.strip() for w in path.read_text().splitlines() if w.strip()]
            if len(wnids) != 1000 or len(set(wnids)) != 1000:
                raise VocabularyError(f"{path}: expected 1000 unique wnids, found {len(wnids)}")
            return wnids
    raise VocabularyError(
        "ImageNet-1k label file not found in tensorflow-datasets; looked in "
        + ", ".join(str(p) for p in candidates)
    )


@dataclasses.dataclass
class Vocabulary:
    """An ordered label space; `label_of` maps a hashtag to its class index."""

    wnids: list[str]
    names: list[str]
    frequencies: list[int]
    hashtags: list[dict[str, int]]  # per label: normalised hashtag -> occurrences
    hypernyms: list[list[int]]  # per label: vocabulary indices of its hypernyms
    build: dict[str, Any] = dataclasses.field(default_factory=dict)
    coverage: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.wnids)
        for field in ("names", "frequencies", "hashtags", "hypernyms"):
            if len(getattr(self, field)) != n:
                raise VocabularyError(f"vocabulary field {field!r} has {len(getattr(self, field))} entries, wnids has {n}")
        if len(set(self.wnids)) != n:
            raise VocabularyError("vocabulary has duplicate label ids")
        self._lookup: dict[str, int] = {}
        for i, tags in enumerate(self.hashtags):
            for tag in tags:
                if tag in self._lookup:
                    raise VocabularyError(f"hashtag {tag!r} is merged into two labels")
                self._lookup[tag] = i

    # --- the label space -------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        return len(self.wnids)

    @property
    def prefer_specific(self) -> bool:
        return bool(self.build.get("prefer_specific", False))

    @property
    def hash(self) -> str:
        """Stable hash of what decides labels: ids, merged hashtags, hierarchy, pruning."""
        payload = json.dumps(
            [self.wnids, [sorted(t) for t in self.hashtags], self.hypernyms, self.prefer_specific],
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def label_of(self, hashtag: str) -> int | None:
        """Class index of a hashtag (raw or normalised), or None when it is not in the space."""
        label = self._lookup.get(hashtag)
        if label is None:
            label = self._lookup.get(_normalize(hashtag))
        return label

    def prune(self, labels: Sequence[int]) -> list[int]:
        """Unique labels in first-seen order, general ones dropped under `prefer_specific`."""
        seen: list[int] = []
        for label in labels:
            if label not in seen:
                seen.append(label)
        if not self.prefer_specific or len(seen) < 2:
            return seen
        general: set[int] = set()
        for label in seen:
            general.update(self.hypernyms[label])
        return [label for label in seen if label not in general]

    def labels_of_post(self, hashtags: Iterable[str]) -> list[int]:
        """A post's labels: its hashtags mapped, de-duplicated and pruned."""
        mapped = [self.label_of(t) for t in hashtags]
        return self.prune([m for m in mapped if m is not None])

    # --- files -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "num_classes": self.num_classes,
            "hash": self.hash,
            "build": self.build,
            "coverage": self.coverage,
            "wnids": self.wnids,
            "names": self.names,
            "frequencies": self.frequencies,
            "hashtags": self.hashtags,
            "hypernyms": self.hypernyms,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Writes the JSON atomically (temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(path, (json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n").encode())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Reads a vocabulary JSON; VocabularyError names the file and the problem."""
        path = Path(path)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            raise VocabularyError(f"{path}: vocabulary file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise VocabularyError(f"{path}: not a readable JSON vocabulary: {e}") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise VocabularyError(f"{path}: not a {FORMAT} file")
        if obj.get("format_version") != FORMAT_VERSION:
            raise VocabularyError(f"{path}: unsupported format_version {obj.get('format_version')!r}")
        try:
            vocab = cls(
                wnids=list(obj["wnids"]),
                names=list(obj["names"]),
                frequencies=[int(f) for f in obj["frequencies"]],
                hashtags=[{str(k): int(v) for k, v in t.items()} for t in obj["hashtags"]],
                hypernyms=[[int(i) for i in h] for h in obj["hypernyms"]],
                build=dict(obj.get("build", {})),
                coverage=dict(obj.get("coverage", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise VocabularyError(f"{path}: malformed vocabulary: {type(e).__name__}: {e}") from None
        if obj.get("hash") not in (None, vocab.hash):
            raise VocabularyError(f"{path}: content does not match its recorded hash (edited by hand?)")
        return vocab

    def check_resolver(self, fingerprint: str) -> None:
        """Raises VocabularyError when built with different resolver settings."""
        built = self.build.get("resolver_fingerprint")
        if built is not None and built != fingerprint:
            raise VocabularyError(
                f"vocabulary was built with resolver {built[:12]}, current resolver is "
                f"{fingerprint[:12]}; rebuild it with `python -m weaksup vocab build`"
            )


# --- building ------------------------------------------------------------------------


def _merge_counts(counts: Mapping[str, int]) -> tuple[dict[str, int], dict[str, str]]:
    """Normalised form -> occurrences, and normalised form -> its most frequent raw spelling."""
    merged: dict[str, int] = {}
    best: dict[str, tuple[int, str]] = {}
    for raw, c in counts.items():
        form = _normalize(raw)
        if not form:
            continue
        merged[form] = merged.get(form, 0) + int(c)
        if form not in best or (int(c), raw) > best[form]:
            best[form] = (int(c), raw)
    return merged, {f: r for f, (_, r) in best.items()}


def build_vocabulary(
    hashtag_counts: Mapping[str, int],
    *,
    mode: str,
    resolver: Any = None,
    top_k: int | None = None,
    min_count: int | None = None,
    under: Sequence[str] = (),
    lexnames: Sequence[str] = (),
    prefer_specific: bool = False,
    within: Sequence[str] = (),
) -> Vocabulary:
    """Builds the label space from a corpus's hashtag counts ({raw hashtag: count}).

    `within` (synset names or wnids) keeps only those synsets: a target-aligned label space.

    Each distinct normalised hashtag is resolved once (its most frequent spelling is the
    one handed to the resolver, so camel-case hints survive). Coverage is left empty;
    `measure_coverage` fills it from a corpus pass.
    """
    if mode not in MODES:
        raise VocabularyError(f"unknown vocabulary mode {mode!r}; expected one of {MODES}")
    if mode == "topk" and not top_k:
        raise VocabularyError("mode 'topk' needs top_k > 0")
    if mode == "min_count" and not min_count:
        raise VocabularyError("mode 'min_count' needs min_count > 0")
    if (under or lexnames or within) and mode == "raw":
        raise VocabularyError("--under / --lexnames / --within need WordNet; they do not apply to mode 'raw'")
    if prefer_specific and mode == "raw":
        raise VocabularyError("prefer_specific needs the WordNet hierarchy; not available in mode 'raw'")
    merged, spelling = _merge_counts(hashtag_counts)
    build: dict[str, Any] = {
        "mode": mode,
        "top_k": top_k,
        "min_count": min_count,
        "under": list(under),
        "lexnames": list(lexnames),
        "prefer_specific": bool(prefer_specific),
        "within": len(within),
        "resolver_fingerprint": None,
        "unique_hashtags": len(merged),
    }

    # label id -> (name, {form: count}); `closure` holds each synset's hypernym names.
    groups: dict[str, tuple[str, dict[str, int]]] = {}
    closure: dict[str, set[str]] = {}
    if mode == "raw":
        for form, c in merged.items():
            groups["#" + form] = (form, {form: c})
    else:
        if resolver is None:
            from weaksup.hashtags.resolver import Resolver

            resolver = Resolver()
        build["resolver_fingerprint"] = resolver.fingerprint()
        from weaksup.wordnet import load_index

        index = load_index()
        allowed_wnids = set(imagenet1k_wnids()) if mode == "imagenet1k" else None
        under_names = [_synset_name(index, u, "--under") for u in under]
        within_names = {_synset_name(index, w, "--within") for w in within}
        for form, c in merged.items():
            res = resolver.resolve(spelling[form])
            if res is None:
                continue
            if allowed_wnids is not None and res.wnid not in allowed_wnids:
                continue
            if lexnames and res.lexname not in lexnames:
                continue
            if within_names and res.synset not in within_names:
                continue
            if res.synset not in closure:
                closure[res.synset] = _hypernym_names(index, res.synset)
            if under_names and not any(
                u == res.synset or u in closure[res.synset] for u in under_names
            ):
                continue
            name, tags = groups.setdefault(res.wnid, (res.synset, {}))
            tags[form] = tags.get(form, 0) + c

    items = [(sum(tags.values()), wid, name, tags) for wid, (name, tags) in groups.items()]
    if min_count:
        items = [it for it in items if it[0] >= min_count]
    items.sort(key=lambda it: (-it[0], it[1]))
    if top_k:
        items = items[:top_k]
    if not items:
        raise VocabularyError(f"mode {mode!r} leaves an empty vocabulary for this corpus")
    wnids = [it[1] for it in items]
    names = [it[2] for it in items]
    position = {n: i for i, n in enumerate(names)}
    hypernyms = [
        sorted(position[h] for h in closure.get(n, ()) if h in position and h != n) for n in names
    ]
    return Vocabulary(
        wnids=wnids,
        names=names,
        frequencies=[it[0] for it in items],
        hashtags=[dict(sorted(it[3].items(), key=lambda kv: (-kv[1], kv[0]))) for it in items],
        hypernyms=hypernyms,
        build=build,
    )


def _synset_name(index: Any, ref: str, option: str) -> str:
    """Accepts "physical_entity.n.01" or a wnid; returns the synset name."""
    try:
        return index.synset(ref).name
    except KeyError:
        raise VocabularyError(f"{option} {ref!r}: no such WordNet 3.0 noun synset") from None


def _hypernym_names(index: Any, synset: str) -> set[str]:
    return set(index.synset(synset).hypernyms)


# --- per-post labels -------------------------------------------------------------------


@dataclasses.dataclass
class PostLabels:
    """Every record's labels in CSR form, and its in-vocabulary hashtag occurrences.

    `offsets`/`labels`: a post's unique labels after pruning (what the target uses).
    `occ_offsets`/`occ_labels`: one entry per hashtag occurrence that maps into the
    vocabulary, in post order, before de-duplication (what label noise perturbs).
    `bad`: indices of records whose hashtags could not be parsed.
    """

    offsets: np.ndarray
    labels: np.ndarray
    occ_offsets: np.ndarray
    occ_labels: np.ndarray
    bad: np.ndarray
    key: str

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def of(self, i: int) -> np.ndarray:
        return self.labels[self.offsets[i] : self.offsets[i + 1]]

    def occurrences_of(self, i: int) -> np.ndarray:
        return self.occ_labels[self.occ_offsets[i] : self.occ_offsets[i + 1]]


def parse_hashtags(record: bytes) -> list[str]:
    """A record's hashtags, skipping over the image bytes without copying them."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(record) + 1)
    unpacker.feed(record)
    n = unpacker.read_map_header()
    for _ in range(n):
        key = unpacker.unpack()
        if key == "hashtags":
            tags = unpacker.unpack()
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError("'hashtags' is not a list of strings")
            return tags
        unpacker.skip()
    raise ValueError("record has no 'hashtags'")


def compute_post_labels(
    vocab: Vocabulary,
    source: Any,
    key: str = "",
    describe: Callable[[int], str] = lambda i: f"record {i}",
    chunk: int = 1024,
) -> PostLabels:
    """One pass over `source` (random access record bytes) decoding only hashtags."""
    n = len(source)
    offsets = np.zeros(n + 1, np.int64)
    occ_offsets = np.zeros(n + 1, np.int64)
    labels: list[int] = []
    occ: list[int] = []
    bad: list[int] = []
    memo: dict[str, int | None] = {}
    for start in range(0, n, chunk):
        idx = list(range(start, min(n, start + chunk)))
        records = source.__getitems__(idx) if hasattr(source, "__getitems__") else [source[i] for i in idx]
        for i, rec in zip(idx, records):
            try:
                tags = parse_hashtags(rec)
            except Exception as e:  # msgpack raises several unrelated types
                bad.append(i)
                warnings.warn(f"{describe(i)}: unreadable hashtags, post has no labels: {e}")
                tags = []
            mapped = []
            for t in tags:
                if t not in memo:
                    memo[t] = vocab.label_of(t)
                if memo[t] is not None:
                    mapped.append(memo[t])
            occ.extend(mapped)
            labels.extend(vocab.prune(mapped))
            offsets[i + 1] = len(labels)
            occ_offsets[i + 1] = len(occ)
    return PostLabels(
        offsets=offsets,
        labels=np.asarray(labels, np.int32),
        occ_offsets=occ_offsets,
        occ_labels=np.asarray(occ, np.int32),
        bad=np.asarray(bad, np.int64),
        key=key,
    )


def post_labels_key(vocab: Vocabulary, manifest_sha256: str) -> str:
    return hashlib.sha256(f"{manifest_sha256}:{vocab.hash}".encode()).hexdigest()


def manifest_sha256(corpus_dir: str | os.PathLike) -> str:
    """Checksum of a corpus's manifest.json (identifies the corpus contents)."""
    path = Path(corpus_dir) / "manifest.json"
    if not path.exists():
        raise VocabularyError(f"{path}: corpus manifest not found (incomplete corpus?)")
    return _sha256_file(path)


def load_post_labels(
    vocab: Vocabulary,
    vocab_path: str | os.PathLike,
    corpus: Any,
) -> PostLabels:
    """Per-post labels for (vocab, corpus), cached as an .npz next to the vocabulary.

    `corpus` is a `weaksup.corpus.shards.Corpus`.
    """
    from weaksup.input_pipeline import record_locator

    key = post_labels_key(vocab, manifest_sha256(corpus.path))
    vocab_path = Path(vocab_path)
    cache = vocab_path.with_name(f"{vocab_path.stem}.postlabels-{key[:16]}.npz")
    if cache.exists():
        try:
            with np.load(cache) as z:
                if str(z["key"]) == key:
                    return PostLabels(
                        offsets=z["offsets"], labels=z["labels"], occ_offsets=z["occ_offsets"],
                        occ_labels=z["occ_labels"], bad=z["bad"], key=key,
                    )
        except (OSError, KeyError, ValueError) as e:
            warnings.warn(f"{cache}: unreadable label cache, recomputing: {e}")
    labels = compute_post_labels(vocab, corpus.data_source(), key, describe=record_locator(corpus))
    tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}.npz")
    try:
        np.savez(
            tmp, offsets=labels.offsets, labels=labels.labels, occ_offsets=labels.occ_offsets,
            occ_labels=labels.occ_labels, bad=labels.bad, key=np.asarray(key),
        )
        os.replace(tmp, cache)
    except OSError as e:  # a read-only vocabulary directory only costs the cache
        tmp.unlink(missing_ok=True)
        warnings.warn(f"{cache}: cannot write the per-post label cache ({e}); continuing without it")
    return labels


def measure_coverage(
    vocab: Vocabulary, hashtag_counts: Mapping[str, int], post_labels: PostLabels
) -> dict[str, Any]:
    """Share of posts with >= 1 label; share of hashtag occurrences that map to a label."""
    total = sum(int(c) for c in hashtag_counts.values())
    mapped = sum(int(c) for t, c in hashtag_counts.items() if vocab.label_of(t) is not None)
    n_posts = len(post_labels) - len(post_labels.bad)
    with_label = int(np.count_nonzero(np.diff(post_labels.offsets) > 0))
    return {
        "posts": n_posts,
        "unreadable_posts": int(len(post_labels.bad)),
        "posts_with_label": with_label,
        "post_share": with_label / n_posts if n_posts else 0.0,
        "hashtag_occurrences": total,
        "occurrences_mapped": mapped,
        "occurrence_share": mapped / total if total else 0.0,
        "mean_labels_per_labelled_post": (
            float(len(post_labels.labels)) / with_label if with_label else 0.0
        ),
    }


def build_from_corpus(
    corpus_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    mode: str,
    top_k: int | None = None,
    min_count: int | None = None,
    under: Sequence[str] = (),
    lexnames: Sequence[str] = (),
    prefer_specific: bool = False,
    within: Sequence[str] = (),
    resolver: Any = None,
) -> Vocabulary:
    """Builds a vocabulary from a corpus directory, measures coverage, writes `output`.

    The per-post label cache is written next to `output` as a side effect.
    """
    from weaksup.corpus.shards import Corpus

    corpus = Corpus(corpus_dir)
    counts = corpus.hashtag_counts()
    vocab = build_vocabulary(
        counts, mode=mode, resolver=resolver, top_k=top_k, min_count=min_count,
        under=under, lexnames=lexnames, prefer_specific=prefer_specific, within=within,
    )
    vocab.build["corpus"] = {
        "path": str(corpus.path),
        "manifest_sha256": manifest_sha256(corpus.path),
        "records": len(corpus),
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    post_labels = load_post_labels(vocab, output, corpus)
    vocab.coverage = measure_coverage(vocab, counts, post_labels)
    vocab.save(output)
    return vocab
