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

Which labels each post of a corpus carries under a vocabulary is `weaksup.labels`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from weaksup import atomic
from weaksup.errors import UsageError
from weaksup.hashtags.imagenet import ImageNetLabelsError, imagenet1k_wnids
from weaksup.hashtags.normalize import normalize_hashtag
from weaksup.hashtags.resolver import Resolver
from weaksup.wordnet import WordNetIndex, load_index

FORMAT = "weaksup-vocabulary"
FORMAT_VERSION = 1
MODES = ("imagenet1k", "nouns", "topk", "min_count", "raw")


class VocabularyError(UsageError, ValueError):
    """A vocabulary file that cannot be used: missing, malformed, or built for other data."""


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
            label = self._lookup.get(normalize_hashtag(hashtag))
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
        atomic.write_json(path, self.to_json())

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
        return cls.from_json(obj, str(path))

    @classmethod
    def from_json(cls, obj: Any, path: str = "vocabulary") -> Vocabulary:
        """The vocabulary of a `to_json` object; VocabularyError names `path` and the problem."""
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


# --- building ------------------------------------------------------------------------


def _merge_counts(counts: Mapping[str, int]) -> tuple[dict[str, int], dict[str, str]]:
    """Normalised form -> occurrences, and normalised form -> its most frequent raw spelling."""
    merged: dict[str, int] = {}
    best: dict[str, tuple[int, str]] = {}
    for raw, c in counts.items():
        form = normalize_hashtag(raw)
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
        resolver = resolver if resolver is not None else Resolver()
        build["resolver_fingerprint"] = resolver.fingerprint()
        index = load_index()
        try:
            allowed_wnids = set(imagenet1k_wnids()) if mode == "imagenet1k" else None
        except ImageNetLabelsError as e:
            raise VocabularyError(str(e)) from None
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


def _synset_name(index: WordNetIndex, ref: str, option: str) -> str:
    """Accepts "physical_entity.n.01" or a wnid; returns the synset name."""
    try:
        return index.synset(ref).name
    except KeyError:
        raise VocabularyError(f"{option} {ref!r}: no such WordNet 3.0 noun synset") from None


def _hypernym_names(index: WordNetIndex, synset: str) -> set[str]:
    return set(index.synset(synset).hypernyms)
