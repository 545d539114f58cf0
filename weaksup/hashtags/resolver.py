"""The hashtag resolver: a raw hashtag -> one WordNet 3.0 noun synset, or nothing.

This is stage 1 of the paper's recipe: hashtags become canonical labels, and synonyms
merge because every hashtag that lands on a synset gets that synset (#burger and
#hamburger are both hamburger.n.01). The rules, tried in order for each tag:

  surface    NFKC, '#', case, separators and camelCase (`normalize`), accents dropped
             when that yields a lemma (#Café -> cafe)
  filler     social-media filler (#instagood, #tbt) and tags with digits (#like4like) -> nothing
  multiword  words the user separated, as a lemma (#Hot-Dog, #ice_cream -> ice_cream)
  lemma      WordNet noun morphology incl. irregular plurals (#puppies, #geese)
  letters    multiword lemmas written as one word (#goldenretriever, #hotairballoon)
  affix      Instagram idioms stripped, the rest resolved (#dogsofinstagram, #instacat,
             #catstagram, #catlover, #pizzatime, #beachlife, #foodporn; `idioms`)
  segment    split into known words, keep the head (#sunsetbeach -> beach; `compounds`),
             or the modifier when the head is abstract (#beachday -> beach)
  sense      pick the depictable sense (`senses`): #tiger -> tiger.n.02 the cat; abstract
             and adjectival words (#love, #happy) -> nothing
  post       the senses of all hashtags of a post chosen jointly (`context`): #crane with
             #bird -> crane.n.05, #cap #bottle #beer -> the bottle top; tags that are no
             label still count as context (#bass #music -> the instrument)

Each Resolution carries a short trace of the rules that fired.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

from weaksup.hashtags import idioms
from weaksup.hashtags.compounds import CompoundIndex
from weaksup.hashtags.context import CandidateScore, PostSenses, Slot
from weaksup.hashtags.normalize import MAX_TAG_CHARS, hashtag_words, strip_accents
from weaksup.hashtags.senses import SenseChoice, SensePolicy, SenseSelector
from weaksup.wordnet import WordNetIndex, load_index

# Bump when a rule changes what tags resolve to (part of the fingerprint).
RESOLVER_VERSION = 4

# Why a tag resolved to nothing, for the rules after which its noun senses still tell
# what a post is about (#music, #summer); filler, stop words and numbers do not.
_CONTEXT_ONLY_RULES = frozenset({"abstract", "mostly-abstract", "mostly-adj"})

_DIGIT_RE = re.compile(r"\d")


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where one hashtag landed in WordNet."""

    hashtag: str  # the input as given
    synset: str  # "dog.n.01"
    wnid: str  # "n02084071"
    lemma: str  # the WordNet lemma matched ("golden_retriever")
    lexname: str  # "noun.animal"
    trace: tuple[str, ...]  # rules applied, e.g. ("affix:-ofinstagram", "lemma:dogs->dog", ...)

    def as_dict(self) -> dict:
        return {"hashtag": self.hashtag, "synset": self.synset, "wnid": self.wnid,
                "lemma": self.lemma, "lexname": self.lexname, "trace": list(self.trace)}


@dataclass(frozen=True)
class ResolverConfig:
    """Every knob of the resolver; its JSON form is part of `Resolver.fingerprint()`."""

    policy: SensePolicy = field(default_factory=SensePolicy)
    filler: frozenset[str] = idioms.FILLER
    stopwords: frozenset[str] = idioms.STOPWORDS
    prefixes: tuple[str, ...] = idioms.PREFIXES
    suffixes: tuple[str, ...] = idioms.SUFFIXES
    min_stem: int = 3  # shortest subject left after stripping an affix
    max_affixes: int = 2  # affixes stripped from one tag at most (#instadogsofinstagram)
    segmentation: bool = True
    cache_size: int = 2_000_000  # resolved tags remembered (no context); 0 disables

    def as_dict(self) -> dict:
        return {
            "policy": self.policy.as_dict(),
            "filler": sorted(self.filler),
            "stopwords": sorted(self.stopwords),
            "prefixes": list(self.prefixes),
            "suffixes": list(self.suffixes),
            "min_stem": self.min_stem,
            "max_affixes": self.max_affixes,
            "segmentation": self.segmentation,
        }


class _Hit(NamedTuple):
    """An internal outcome: a chosen row (or None = resolved to nothing by a rule)."""

    row: int | None
    lemma: str
    trace: tuple[str, ...]


class _PostTag(NamedTuple):
    """How one hashtag takes part in a post."""

    resolution: Resolution | None  # what it resolves to alone
    slot: Slot | None  # its candidate senses in the joint choice; None: takes no part
    alone: int | None  # the row of `resolution` where it has a slot


class Resolver:
    """Resolves hashtags to WordNet noun synsets. Thread-compatible, not thread-safe."""

    def __init__(self, config: ResolverConfig | None = None, index: WordNetIndex | None = None):
        self.config = config or ResolverConfig()
        self.index = index or load_index()
        self.senses = SenseSelector(self.index, self.config.policy)
        self.compounds = CompoundIndex(self.index)
        self._cache: dict[str, Resolution | None] = {}
        self._word_cache: dict[tuple[str, int], _Hit | None] = {}
        self._row_info: dict[int, tuple[str, str, str]] = {}
        self._decide = self.senses.candidates
        pol = self.config.policy
        self.post_senses = PostSenses(self.index, dict(pol.context_weights),
                                      pol.context_only_weight, pol.context_taxonomy_floor,
                                      pol.context_cap)
        # tag -> how it takes part in a post (memoised).
        self._post_tags: dict[str, _PostTag] = {}
        self._in_context: dict[tuple[str, int], Resolution] = {}

    # ------------------------------------------------------------------ public API

    def fingerprint(self) -> str:
        """Stable hash of the settings, resolver rules version and WordNet version."""
        blob = json.dumps({"config": self.config.as_dict(), "rules": RESOLVER_VERSION,
                           "wordnet": self.index.fingerprint()}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def resolve(self, tag: str, context: Sequence[str] = ()) -> Resolution | None:
        """The synset a hashtag means, or None. `context`: the post's other hashtags."""
        if not context:
            cache = self._cache
            if tag in cache:
                return cache[tag]
            result = self._resolve(tag)
            if len(cache) >= self.config.cache_size > 0:
                cache.clear()
            if self.config.cache_size > 0:
                cache[tag] = result
            return result
        others = [c for c in context if c != tag]
        return self.resolve_post([tag, *others])[0] if others else self.resolve(tag)

    def resolve_post(self, tags: Sequence[str]) -> list[Resolution | None]:
        """Resolve every hashtag of one post, the senses chosen jointly (`context`)."""
        if len(tags) < 2:
            return [self.resolve(t) for t in tags]
        entries, slots, where = self._post_slots(tags)
        out = [e.resolution for e in entries]
        if len(slots) < 2:
            return out
        choice = self.post_senses.choose(slots)
        for i, k in enumerate(where):
            if k is None or out[i] is None:
                continue
            row = slots[k].candidates[choice[k]][0]
            if row != entries[i].alone:
                out[i] = self._context_resolution(tags[i], out[i], row)
        return out

    def explain_post(self, tags: Sequence[str]) -> list[list[CandidateScore]]:
        """Per tag, its candidate senses with the parts of their scores as `resolve_post`
        chose them ([] for a tag that takes no part)."""
        _, slots, where = self._post_slots(tags)
        if not slots:
            return [[] for _ in tags]
        choice = self.post_senses.choose(slots)
        scores = self.post_senses.explain(slots, choice)
        return [[] if k is None else scores[k] for k in where]

    def _post_slots(self, tags: Sequence[str]
                    ) -> tuple[list[_PostTag], list[Slot], list[int | None]]:
        """Per tag how it takes part; the post's distinct slots; per tag the index of its
        slot (None where it has none)."""
        known = self._post_tags.get
        entries = [known(t) or self._post_tag(t) for t in tags]
        slots: list[Slot] = []
        keys: dict[str, int] = {}
        where: list[int | None] = []
        for e in entries:
            slot = e.slot
            if slot is None:
                where.append(None)
                continue
            k = keys.get(slot.key)
            if k is None:
                k = keys[slot.key] = len(slots)
                slots.append(slot)
            where.append(k)
        return entries, slots, where

    def _post_tag(self, tag: str) -> _PostTag:
        res = self.resolve(tag)
        entry = _PostTag(res, *(self._slot(tag, res) or (None, None)))
        if len(self._post_tags) > 2 * max(self.config.cache_size, 1):
            self._post_tags.clear()
        self._post_tags[tag] = entry
        return entry

    def _slot(self, tag: str, res: Resolution | None) -> tuple[Slot, int | None] | None:
        """The tag's slot in a post and the row it resolves to alone (`res`), if any."""
        if res is not None:
            row = self.index.row(res.wnid)
            cands = self.senses.context_candidates(res.lemma)
            if not cands or cands[0][0] != row:  # a rule other than the sense policy chose
                return Slot(f"{res.lemma}@{row}", ((row, 0.0),), True), row
            return Slot(res.lemma, cands, True), row
        hit = self._hit(tag)
        if not isinstance(hit, _Hit) or not hit.trace or hit.trace[-1] not in _CONTEXT_ONLY_RULES:
            return None
        senses = self.index.noun_senses(hit.lemma)[: self.config.policy.context_only_senses]
        if not senses:
            return None
        return Slot("~" + hit.lemma, tuple((r, 0.0) for r, _ in senses), False), None

    def _context_resolution(self, tag: str, alone: Resolution, row: int) -> Resolution:
        key = (tag, row)
        got = self._in_context.get(key)
        if got is None:
            idx = self.index
            got = Resolution(tag, idx.names[row], idx.wnid(row), alone.lemma, idx.lexname(row),
                             alone.trace[:-1] + (f"context:{idx.names[row]}",))
            if len(self._in_context) > 2 * max(self.config.cache_size, 1):
                self._in_context.clear()
            self._in_context[key] = got
        return got

    def explain(self, tag: str) -> tuple[str, ...]:
        """The rules applied to a tag, also when it resolves to nothing ("filler", ...)."""
        hit = self._hit(tag)
        if isinstance(hit, str):
            return (hit,)
        return hit.trace if hit is not None else ("not-a-wordnet-noun",)

    # ------------------------------------------------------------------ the rules

    def _hit(self, tag: str) -> _Hit | str | None:
        if not isinstance(tag, str) or not tag or len(tag) > 4 * MAX_TAG_CHARS:
            return "too-long" if isinstance(tag, str) and tag else "empty"
        if not tag.isascii():
            try:
                tag.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: undecodable bytes upstream
                return "invalid-unicode"
        words = [w for w in hashtag_words(tag) if w]
        letters = "".join(words)
        if not letters:
            return "no-letters"
        if len(letters) > MAX_TAG_CHARS:
            return "too-long"
        return self._resolve_words(words, letters)

    def _resolve(self, tag: str) -> Resolution | None:
        hit = self._hit(tag)
        if hit is None or isinstance(hit, str) or hit.row is None:
            return None
        row, trace = hit.row, hit.trace
        info = self._row_info.get(row)
        if info is None:
            idx = self.index
            info = self._row_info[row] = (idx.names[row], idx.wnid(row), idx.lexname(row))
        return Resolution(tag, info[0], info[1], hit.lemma, info[2], trace)

    def _resolve_words(self, words: list[str], letters: str) -> _Hit | None:
        cfg = self.config
        if letters in cfg.filler:
            return _Hit(None, letters, ("filler",))
        if _DIGIT_RE.search(letters):
            # Numbers carry no label (#2019, #like4like) unless WordNet spells them (#4x4).
            for cand in ("_".join(words), letters):
                for lemma in self.index.lemmatize_noun(cand):
                    return self._sense(lemma, cand, ("digits",))
            return _Hit(None, letters, ("digits",))
        variants = [letters]
        if not letters.isascii():
            plain = strip_accents(letters)
            if plain != letters:
                variants.append(plain)
        for v in variants:
            pre = ("accents",) if v is not letters else ()
            if len(words) > 1:
                multi = "_".join(strip_accents(w) if pre else w for w in words)
                for lemma in self.index.lemmatize_noun(multi):
                    return self._sense(lemma, multi, pre + ("multiword",))
            hit = self._word(v, cfg.max_affixes)
            if hit is not None:
                return _Hit(hit.row, hit.lemma, pre + hit.trace) if pre else hit
        return None

    def _sense(self, lemma: str, form: str, trace: tuple[str, ...]) -> _Hit:
        choice: SenseChoice = self._decide(lemma, form)[0]
        step = f"lemma:{form}->{lemma}" if form != lemma else f"lemma:{lemma}"
        rule = choice.rule if choice.row is None else f"sense:{self.index.names[choice.row]}"
        return _Hit(choice.row, lemma, trace + (step, rule))

    def _word(self, s: str, affixes_left: int) -> _Hit | None:
        """Resolve one run of letters; None when no rule applies (a rule may say 'nothing')."""
        key = (s, affixes_left)
        if key in self._word_cache:
            return self._word_cache[key]
        hit = self._word_uncached(s, affixes_left)
        if len(self._word_cache) > 2 * max(self.config.cache_size, 1):
            self._word_cache.clear()
        self._word_cache[key] = hit
        return hit

    def _word_uncached(self, s: str, affixes_left: int) -> _Hit | None:
        cfg = self.config
        if s in cfg.filler:
            return _Hit(None, s, ("filler",))
        if s in cfg.stopwords:
            return _Hit(None, s, ("stopword",))
        lemmas = self.index.lemmatize_noun(s)
        if lemmas:
            first = None
            for lemma in lemmas:
                hit = self._sense(lemma, s, ())
                if hit.row is not None:
                    return hit
                first = first or hit
            return first
        for lemma in self.compounds.lemmas_for_letters(s):
            return self._sense(lemma, s, (f"letters:{lemma}",))
        if affixes_left > 0:
            stripped: _Hit | None = None
            for suf in cfg.suffixes:
                if s.endswith(suf) and len(s) - len(suf) >= cfg.min_stem:
                    hit = self._word(s[: -len(suf)], affixes_left - 1)
                    if hit is not None:
                        hit = _Hit(hit.row, hit.lemma, (f"affix:-{suf}",) + hit.trace)
                        if hit.row is not None:
                            return hit
                        stripped = stripped or hit
            for pre in cfg.prefixes:
                if s.startswith(pre) and len(s) - len(pre) >= cfg.min_stem:
                    hit = self._word(s[len(pre):], affixes_left - 1)
                    if hit is not None:
                        hit = _Hit(hit.row, hit.lemma, (f"affix:{pre}-",) + hit.trace)
                        if hit.row is not None:
                            return hit
                        stripped = stripped or hit
            if stripped is not None:
                # An idiom around a known word that means nothing depictable (#instatravel,
                # #summervibes): that is the reading, not a segmentation into odd pieces.
                return stripped
        if cfg.segmentation:
            words = self.compounds.segment(s)
            if words:
                step = "segment:" + "|".join(words)
                for lemma, n in self.compounds.head_lemmas(words):
                    hit = self._sense(lemma, "_".join(words[-n:]), (step,))
                    if hit.row is None and len(words) == 2 and n == 1:
                        # An abstract head leaves the depictable modifier as the subject:
                        # #mountainview, #horseriding, #beachday.
                        for mod in self.index.lemmatize_noun(words[0]):
                            alt = self._sense(mod, words[0], (step, "modifier"))
                            # Only a thing, not a person or group (#selfcare, #girlpower).
                            if alt.row is not None and self.index.lexname(alt.row) not in (
                                    "noun.person", "noun.group"):
                                return alt
                    return hit
        return None
