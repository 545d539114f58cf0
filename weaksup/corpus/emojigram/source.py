"""EmojiGramSource: the embedded default corpus as a corpus Source.

    python -m weaksup corpus build --source emojigram --output DIR [options]

Post i is a pure function of (seed, i): its random generator is seeded with [seed, i], so
any split into work units ("start:stop" index ranges) yields identical posts. A post:

  * one artist, uniform over `artists` (the pretraining artists; by default Noto and
    Symbola, keeping EmojiOne for the held-out target, see `assets.DEFAULT_HELDOUT_ARTIST`);
  * 1..max_emoji_per_post distinct concepts (P(k) ~ 2^-k), each drawn from a Zipfian
    popularity over the concepts that artist draws: the concept at popularity rank r
    (a seeded permutation of all concepts) has weight 1 / (r + 1) ** zipf_exponent;
    `concept_ids` (comma-separated ids, e.g. "dog_face,hot_dog") limits the draw to those
    concepts: a closed world, for checks that must learn something in a few hundred steps;
  * the image: `render.compose` at image_size px, JPEG (or PNG);
  * hashtags: per concept 1-3 tags from its annotations (`concepts.concept_hashtags`), each
    dropped with probability tag_dropout and replaced by a tag of a random other concept
    with probability wrong_tag_rate; plus Poisson(filler_rate) popular filler tags
    (#instagood, #love, ...), Zipfian too; duplicates (case-insensitive) removed, shuffled;
  * with `clean_labels`, the hashtags are instead the ids of exactly the concepts shown
    (`#hot_dog`, which resolves to the synset the concept's name does): the same pictures
    with true labels, for the clean-label ceiling;
  * caption: an optional short phrase and the hashtags, as users write them;
  * meta: {"concepts": [concept ids], "artist": name, "width", "height", "format"}, the
    ground truth, for analysis only (never a training label).

Default image_size is 64: the CPU-scale models train on 32-64 px crops, a 64 px JPEG is
~2-3 kB (100k posts ~ 300 MB) and renders in well under a millisecond, while the glyphs
stay recognisable (EmojiOne's own PNGs are 64 px).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np

from weaksup.corpus.emojigram import assets, concepts, render
from weaksup.corpus.record import Post, make_post
from weaksup.corpus.sources.base import Skip, SourceError

CAPTION_PHRASES: tuple[str, ...] = (
    "", "", "", "Sunday vibes", "Look at this!", "New post", "Throwback", "Good morning",
    "Just because", "Weekend mood", "Guess what", "Can't stop smiling", "Best day ever",
    "Feeling it", "Had to share", "Mood", "Love this", "Today's find", "Oh hey",
)


def _as_int(name: str, value: object, lo: int) -> int:
    try:
        v = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SourceError(f"emojigram: option {name}={value!r} is not an integer") from None
    if v < lo:
        raise SourceError(f"emojigram: option {name}={v} must be >= {lo}")
    return v


def _as_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise SourceError(f"emojigram: option {name}={value!r} is not true or false")


def _as_float(name: str, value: object, lo: float, hi: float) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SourceError(f"emojigram: option {name}={value!r} is not a number") from None
    if not lo <= v <= hi:
        raise SourceError(f"emojigram: option {name}={v} must be in [{lo}, {hi}]")
    return v


_CACHED = frozenset({"concepts", "popularity", "_tables", "_filler_cdf", "_count_p"})


class EmojiGramSource:
    """Generated posts of emoji artwork with user-style hashtags (see module doc)."""

    name = "emojigram"

    def __init__(
        self,
        input: str | None = None,
        *,
        num_posts: int = 100_000,
        seed: int = 0,
        artists: str | Sequence[str] = assets.DEFAULT_PRETRAIN_ARTISTS,
        image_size: int = 64,
        zipf_exponent: float = 1.0,
        max_emoji_per_post: int = 3,
        tag_dropout: float = 0.15,
        wrong_tag_rate: float = 0.1,
        filler_rate: float = 1.5,
        image_format: str = "jpeg",
        jpeg_quality: int = 90,
        unit_size: int = 1000,
        concept_ids: str | Sequence[str] = "",
        clean_labels: bool = False,
    ) -> None:
        if input is not None:
            raise SourceError(f"emojigram takes no --input (got {input!r}); it is generated")
        self.num_posts = _as_int("num_posts", num_posts, 0)
        self.seed = _as_int("seed", seed, 0)
        try:
            self.artists = assets.artist_names(artists)  # type: ignore[arg-type]
        except ValueError as e:
            raise SourceError(f"emojigram: {e}") from None
        self.image_size = _as_int("image_size", image_size, 8)
        self.zipf_exponent = _as_float("zipf_exponent", zipf_exponent, 0.0, 10.0)
        self.max_emoji_per_post = _as_int("max_emoji_per_post", max_emoji_per_post, 1)
        self.tag_dropout = _as_float("tag_dropout", tag_dropout, 0.0, 1.0)
        self.wrong_tag_rate = _as_float("wrong_tag_rate", wrong_tag_rate, 0.0, 1.0)
        self.filler_rate = _as_float("filler_rate", filler_rate, 0.0, 100.0)
        if image_format not in ("jpeg", "png"):
            raise SourceError(f"emojigram: image_format={image_format!r}; use jpeg or png")
        self.image_format = image_format
        self.jpeg_quality = _as_int("jpeg_quality", jpeg_quality, 1)
        self.unit_size = _as_int("unit_size", unit_size, 1)
        if isinstance(concept_ids, str):
            ids = concept_ids.split(",")
        elif isinstance(concept_ids, (list, tuple)):
            ids = [str(i) for i in concept_ids]
        else:
            raise SourceError(f"emojigram: concept_ids={concept_ids!r}; give comma-separated concept ids")
        self.concept_ids = tuple(sorted({i.strip() for i in ids if i.strip()}))
        unknown = sorted(set(self.concept_ids) - {c.id for c in concepts.load_concepts()})
        if unknown:
            raise SourceError(f"emojigram: unknown concept_ids {', '.join(unknown[:5])}"
                              f"{' ...' if len(unknown) > 5 else ''} (ids are CLDR name slugs, e.g. hot_dog)")
        self.clean_labels = _as_bool("clean_labels", clean_labels)
        self.aug = render.Augment()

    def __getstate__(self) -> dict:
        # Workers rebuild the sampling tables; shipping only the options keeps pickles small.
        return {k: v for k, v in self.__dict__.items() if k not in _CACHED}

    # -- sampling tables (depend on seed and options only) -------------------------------

    @functools.cached_property
    def concepts(self) -> tuple[concepts.Concept, ...]:
        return concepts.load_concepts()

    @functools.cached_property
    def popularity(self) -> np.ndarray:
        """Zipfian weight of each concept (index into `concepts`), seeded permutation."""
        n = len(self.concepts)
        rank = np.random.default_rng([self.seed, 0x5A1F]).permutation(n)
        return 1.0 / (rank + 1.0) ** self.zipf_exponent

    @functools.cached_property
    def _tables(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """artist -> (concept indices it draws, their cumulative probabilities)."""
        out = {}
        allowed = set(self.concept_ids)
        for a in self.artists:
            idx = np.array([k for k, c in enumerate(self.concepts)
                            if a in c.artists and (not allowed or c.id in allowed)])
            if len(idx) == 0:
                raise SourceError(f"emojigram: artist {a!r} draws no concept"
                                  + (" of concept_ids" if allowed else ""))
            cdf = np.cumsum(self.popularity[idx])
            out[a] = (idx, cdf / cdf[-1])
        return out

    @functools.cached_property
    def _filler_cdf(self) -> np.ndarray:
        w = 1.0 / np.arange(1, len(concepts.FILLER_TAGS) + 1)
        c = np.cumsum(w)
        return c / c[-1]

    @functools.cached_property
    def _count_p(self) -> np.ndarray:
        w = 0.5 ** np.arange(1, self.max_emoji_per_post + 1)
        return w / w.sum()

    # -- Source protocol ------------------------------------------------------------------

    def work_units(self) -> list[str]:
        """Index ranges "start:stop" of unit_size posts."""
        n, u = self.num_posts, self.unit_size
        return [f"{s}:{min(s + u, n)}" for s in range(0, n, u)]

    def read(self, unit: str) -> Iterator[Post | Skip]:
        """The posts of one "start:stop" unit; a post that fails to render is a Skip."""
        try:
            start, stop = (int(x) for x in unit.split(":"))
        except ValueError:
            raise SourceError(f"emojigram: bad work unit {unit!r}; expected 'start:stop'") from None
        for i in range(max(start, 0), min(stop, self.num_posts)):
            try:
                yield self.post(i)
            except assets.AssetError as e:
                yield Skip("render_failed", f"emojigram-{i}", str(e))

    # -- one post -------------------------------------------------------------------------

    def post(self, i: int) -> Post:
        """Post i, a pure function of (seed, i) and the options."""
        rng = np.random.default_rng([self.seed, i])
        artist = self.artists[int(rng.integers(len(self.artists)))]
        idx, cdf = self._tables[artist]
        k = min(int(rng.choice(len(self._count_p), p=self._count_p)) + 1, len(idx))
        chosen: list[int] = []
        for _ in range(8 * k):
            c = int(idx[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(idx) - 1)])
            if c not in chosen:
                chosen.append(c)
                if len(chosen) == k:
                    break
        picked = [self.concepts[c] for c in chosen]
        image = render.render_glyphs(artist, [c.emoji for c in picked], rng, self.image_size, self.aug)
        data = render.encode(image, self.image_format, self.jpeg_quality)
        tags = [c.id for c in picked] if self.clean_labels else self._hashtags(picked, chosen, rng)
        caption = self._caption(tags, rng)
        return make_post(
            id=f"emojigram-{i}",
            image=data,
            hashtags=tags,
            caption=caption,
            source=self.name,
            meta={
                "concepts": [c.id for c in picked],
                "artist": artist,
                "width": self.image_size,
                "height": self.image_size,
                "format": self.image_format,
            },
        )

    def _hashtags(
        self, picked: list[concepts.Concept], chosen: list[int], rng: np.random.Generator
    ) -> list[str]:
        tags: list[str] = []
        n_all = len(self.concepts)
        for c in picked:
            n = 1 + int(rng.binomial(2, 0.5))
            for tag in concepts.concept_hashtags(c, rng, n):
                if rng.random() < self.tag_dropout:
                    continue
                if rng.random() < self.wrong_tag_rate:
                    other = int(rng.integers(n_all))
                    while other in chosen:  # a wrong tag names a concept not in the image
                        other = (other + 1) % n_all
                    tag = concepts.concept_hashtags(self.concepts[other], rng, 1)[0]
                tags.append(tag)
        for _ in range(int(rng.poisson(self.filler_rate))):
            j = int(np.searchsorted(self._filler_cdf, rng.random(), side="right"))
            tag = concepts.FILLER_TAGS[min(j, len(concepts.FILLER_TAGS) - 1)]
            tags.append(tag.capitalize() if rng.random() < 0.1 else tag)
        seen, out = set(), []
        for t in tags:
            if t.lower() not in seen:
                seen.add(t.lower())
                out.append(t)
        order = rng.permutation(len(out))
        return [out[j] for j in order]

    def _caption(self, tags: list[str], rng: np.random.Generator) -> str:
        phrase = CAPTION_PHRASES[int(rng.integers(len(CAPTION_PHRASES)))]
        hashtags = " ".join("#" + t for t in tags)
        if not phrase:
            return hashtags
        sep = "\n.\n.\n.\n" if rng.random() < 0.2 else " "  # Instagram's spacer habit
        return f"{phrase}{sep}{hashtags}" if hashtags else phrase
