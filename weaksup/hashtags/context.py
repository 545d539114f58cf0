"""Sense choice for a whole post: each tag's sense chosen jointly with the others'.

A post's hashtags are about one scene, so #cap beside #bottle and #beer is the bottle
top, not a headdress, and #mouse beside #keyboard is the computer's. Each hashtag of a post
is a slot: a label slot holds the depictable senses of a tag the resolver labels, each
with its prior (the single-tag score of `senses`: depictability, sense-tag frequency,
head lemma); a context slot holds the noun senses of a tag that is no label itself but
still says what the post is about (#music, #summer), with prior 0 for each of its
senses. Two senses of different slots are related by a weighted sum of six components,
each in 0..1, that saturates at `cap` (see `PostSenses.__init__`):

  taxonomy   shared ancestry: Lin similarity with intrinsic information content
             (1 - log(1 + hyponyms) / log(synsets)), so two kinds of drink share much and
             two artifacts little; what lies below `taxonomy_floor` counts as nothing
  relations  a WordNet link within a few steps: part/member/substance meronyms and
             holonyms of a sense or its near hypernyms (a car has a hood, its engine is
             a kind of engine), or one sense a near hypernym of the other
  gloss      extended gloss overlap: cosine of IDF-weighted word bags of each sense's
             definition, examples and lemmas plus its hypernyms', hyponyms' and linked
             synsets' lemmas and definitions
  mention    one sense's own definition or examples name the other: a noun of the
             gloss is the head of one of its lemmas (mouse.n.04 "... a cursor on your
             computer display"; the "flowers" of garden.n.02's gloss do not name
             flower_petal, nor does "capped" name a cap)
  domain     WordNet's topic/region/usage domain pointers (of the sense or its
             ancestors) shared, or one sense inside the other's domain
  lexname    both senses in the same lexicographer file (noun.food, noun.artifact ...)

The assignment maximises  sum prior(s_i) + sum_{i<j} w_i w_j rel(s_i, s_j)  (w = 1 for
label slots, `context_only_weight` for context slots): every slot starts at its best
sense given the best partner in every other slot, then slots take turns re-choosing
given the others' current senses until nothing changes (iterated conditional modes; a
fixed point, reached in two or three rounds; with one undecided slot the start is the
optimum). Features per synset, relatedness per pair
of synsets and the matrices per pair of slots are memoised, so a warm post costs a few
dict look-ups per pair of tags.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from weaksup.wordnet import WordNetIndex

COMPONENTS = ("taxonomy", "relations", "gloss", "mention", "domain", "lexname")

_PART_KINDS = ("%p", "%m", "%s", "#p", "#m", "#s")
_DOMAIN_KINDS = (";c", ";r", ";u")
_WORD_RE = re.compile(r"[a-z]+")
# Function words and gloss boilerplate ("a kind of", "used for", "especially") carry no
# topic; dropping them keeps the bags small.
_GLOSS_STOPWORDS = frozenset("""
    a an the and or but of in on at to for from with by as is am are was be been being it its
    that this these those which who whom whose what when where while than then there their
    they them he she his her we you your our not no nor any all some each every other such
    one two usually especially often sometimes used use uses using made make makes kind kinds
    sort type something someone very more most less much many can may might will would
    should also into onto over under out up down about after before between through having
    has have had like e g etc i
""".split())


# Word stems: the noun lemma, then the Snowball (Porter 2) stem, so musical/music and
# instrumental/instrument meet (WordNet has no derivation links between the words of
# glosses) while harmonious/harmonica do not.
@functools.cache
def _stemmer():
    # Imported on first use: nltk's package import pulls in scipy.stats and scikit-learn
    # (about 1.5 s), which a trainer or evaluator process, importing the resolver through
    # the vocabulary but never choosing senses in context, should not pay at start-up.
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer("english")


class Slot(NamedTuple):
    """One hashtag of a post: candidate (row, prior) pairs, best first (prior <= 0; all 0
    in a context slot)."""

    key: str  # what the slot's candidates depend on (the lemma), for memoising
    candidates: tuple[tuple[int, float], ...]
    label: bool  # True: the tag is labelled with the chosen sense; False: context only


@dataclass(frozen=True, slots=True)
class CandidateScore:
    """One candidate sense of a slot with the parts of its score at the fixed point."""

    row: int
    prior: float
    components: dict[str, float]  # weighted components summed over the other slots
    context: float  # relatedness to the other slots' senses, each pair saturated
    total: float  # prior + context


class _Matrix(NamedTuple):
    """Relatedness of one slot's candidates (a) to another's (b), slot weights in."""

    cols: tuple[tuple[float, ...], ...]  # cols[b][a]
    best: tuple[float, ...]  # best[a] = max over b


class _Features(NamedTuple):
    ic: float
    ancestry: frozenset[int]  # itself and every ancestor
    near: frozenset[int]  # itself and hypernyms up to 2 steps
    linked: frozenset[int]  # parts/wholes of near, and their hypernyms up to 3 steps
    domains: frozenset[int]  # domain pointers of itself and its ancestors
    bag: dict[str, float]  # unit-norm IDF-weighted word stems
    own: frozenset[str]  # the nouns (lemmas) of its own definition and examples
    names: frozenset[str]  # its lemmas' heads (last words)
    lexname: int


class PostSenses:
    """Scores and jointly chooses the senses of a post's slots on one WordNet index."""

    def __init__(self, index: WordNetIndex, weights: dict[str, float],
                 context_only_weight: float = 0.5, taxonomy_floor: float = 0.0,
                 cap: float = 0.0, max_rounds: int = 6, max_cached: int = 4_000_000):
        self.index = index
        # Lin similarity that unrelated senses reach through broad roots (whole.n.02,
        # matter.n.03) is not evidence; what exceeds the floor is rescaled to 0..1.
        self.taxonomy_floor = taxonomy_floor
        # Relatedness saturates at `cap` (cap * (1 - exp(-sum / cap))): two rare senses
        # that are near-synonyms of each other (a television camera and its lens) must
        # not outvote both tags' priors. 0: a plain weighted sum.
        self.cap = cap
        self.weights = {c: float(weights[c]) for c in COMPONENTS}
        self.context_only_weight = context_only_weight
        self.max_rounds = max_rounds
        self._features: dict[int, _Features] = {}
        self._pairs: dict[tuple[int, int], float] = {}
        self._matrices: dict[tuple[str, str], _Matrix] = {}
        self.max_cached = max_cached
        self._ic: np.ndarray | None = None
        self._idf: dict[str, float] | None = None
        self._stem_cache: dict[str, str] = {}

    # ------------------------------------------------------------------ features

    def _tables(self) -> None:
        """Information content per synset and IDF per word stem (once, on first use)."""
        idx = self.index
        n = len(idx)
        self._ic = 1.0 - np.log1p(idx.descendant_counts()) / math.log(n)
        df: dict[str, int] = {}
        for row in range(n):
            for w in self._words(row):
                df[w] = df.get(w, 0) + 1
        self._idf = {w: math.log(n / c) for w, c in df.items()}

    def _stem(self, word: str) -> str:
        got = self._stem_cache.get(word)
        if got is None:
            lemmas = self.index.lemmatize_noun(word)
            got = self._stem_cache[word] = _stemmer().stem(lemmas[-1] if lemmas else word)
        return got

    def _stems(self, text: str) -> set[str]:
        return {self._stem(w) for w in _WORD_RE.findall(text.lower())
                if len(w) > 1 and w not in _GLOSS_STOPWORDS}

    def _words(self, row: int) -> set[str]:
        """The word stems of a synset's definition, examples and lemmas."""
        return self._stems(self.index.gloss(row)) | self._lemma_stems(row)

    def _lemma_stems(self, row: int) -> set[str]:
        return {self._stem(w) for lemma in self.index.synset_lemmas(row)
                for w in _WORD_RE.findall(lemma.lower()) if w not in _GLOSS_STOPWORDS}

    def _head_nouns(self, row: int) -> frozenset[str]:
        # A multi-word lemma names its head: flower_petal is a petal, so a gloss that
        # says "flowers" does not mention it.
        return frozenset(words[-1] for lemma in self.index.synset_lemmas(row)
                         if (words := _WORD_RE.findall(lemma.lower())))

    def _gloss_nouns(self, row: int) -> frozenset[str]:
        # What a gloss names is its nouns: "capped" and "harmonious" name no cap and no
        # harmonica, though they share a stem with them.
        out = set()
        for w in _WORD_RE.findall(self.index.gloss(row).lower()):
            if w not in _GLOSS_STOPWORDS and (lemmas := self.index.lemmatize_noun(w)):
                out.add(lemmas[-1])
        return frozenset(out)

    def features(self, row: int) -> _Features:
        """The memoised per-synset features the components compare."""
        got = self._features.get(row)
        if got is not None:
            return got
        if self._ic is None:
            self._tables()
        idx, idf = self.index, self._idf
        near = self._up(row, 2)
        linked: set[int] = set()
        for r in near:
            for m in idx.related_rows(r, _PART_KINDS):
                linked |= self._up(m, 3)
        ancestry = idx.closure_rows(row) | {row}
        domains = frozenset(d for a in ancestry for d in idx.related_rows(a, _DOMAIN_KINDS))
        bag: dict[str, float] = {}

        def add(synset: int, weight: float) -> None:
            for w in self._words(synset):
                bag[w] = max(bag.get(w, 0.0), weight * idf.get(w, 0.0))

        add(row, 1.0)
        parents = idx.hypernym_rows(row)
        for h in parents:
            add(h, 0.5)
        for h in {g for p in parents for g in idx.hypernym_rows(p)}:
            add(h, 0.25)
        for m in idx.related_rows(row, _PART_KINDS + _DOMAIN_KINDS):
            add(m, 0.5)
        # The kinds below a sense say what it is for or holds: pen.n.02 ("an enclosure
        # for confining livestock") has sty.n.02, "a pen for swine", so a pen beside a
        # pig is the livestock pen. Together they count like one linked synset: each of
        # n hyponyms at 0.5 / sqrt(n), so a sense with dozens of kinds (computer.n.01)
        # does not fill its bag with their generic words.
        kinds = idx.hyponym_rows(row)
        for h in kinds:
            add(h, 0.5 / math.sqrt(len(kinds)))
        norm = math.sqrt(sum(v * v for v in bag.values())) or 1.0
        got = _Features(float(self._ic[row]), ancestry, near, frozenset(linked), domains,
                        {w: v / norm for w, v in bag.items()}, self._gloss_nouns(row),
                        self._head_nouns(row), int(idx.lexname_ids[row]))
        if len(self._features) > self.max_cached:
            self._features.clear()
        self._features[row] = got
        return got

    def _up(self, row: int, steps: int) -> frozenset[int]:
        out, frontier = {row}, [row]
        for _ in range(steps):
            frontier = [h for r in frontier for h in self.index.hypernym_rows(r)]
            out.update(frontier)
        return frozenset(out)

    # ------------------------------------------------------------------ relatedness

    def components(self, a: int, b: int) -> dict[str, float]:
        """The unweighted relatedness components of two synsets, each in 0..1."""
        fa, fb = self.features(a), self.features(b)
        common = fa.ancestry & fb.ancestry
        ic = self._ic
        lcs = max((float(ic[c]) for c in common), default=0.0)
        lin = 2.0 * lcs / (fa.ic + fb.ic) if fa.ic + fb.ic > 0 else 0.0
        floor = self.taxonomy_floor
        taxonomy = max(0.0, lin - floor) / (1.0 - floor)
        relations = float(a in fb.near or b in fa.near or b in fa.linked or a in fb.linked)
        domain = float(bool(fa.domains & (fb.domains | fb.ancestry))
                       or bool(fb.domains & fa.ancestry))
        small, large = (fa.bag, fb.bag) if len(fa.bag) <= len(fb.bag) else (fb.bag, fa.bag)
        gloss = sum(v * large[w] for w, v in small.items() if w in large)
        mention = float(not fa.own.isdisjoint(fb.names) or not fb.own.isdisjoint(fa.names))
        return {"taxonomy": taxonomy, "relations": relations, "gloss": gloss,
                "mention": mention, "domain": domain, "lexname": float(fa.lexname == fb.lexname)}

    def relatedness(self, a: int, b: int) -> float:
        """Weighted sum of the components (memoised; symmetric)."""
        key = (a, b) if a <= b else (b, a)
        got = self._pairs.get(key)
        if got is None:
            comp = dict.fromkeys(COMPONENTS, 1.0) if a == b else self.components(a, b)
            got = self._saturate(sum(self.weights[c] * comp[c] for c in COMPONENTS))
            if len(self._pairs) > self.max_cached:
                self._pairs.clear()
            self._pairs[key] = got
        return got

    def _saturate(self, x: float) -> float:
        return self.cap * (1.0 - math.exp(-x / self.cap)) if self.cap > 0 else x

    def _matrix(self, si: Slot, sj: Slot) -> _Matrix:
        """rel between each candidate of si and of sj, slot weights in (memoised)."""
        key = (si.key, sj.key)
        got = self._matrices.get(key)
        if got is None:
            w = (1.0 if si.label else self.context_only_weight) * (
                1.0 if sj.label else self.context_only_weight)
            rel = self.relatedness
            cols = tuple(tuple(w * rel(a, b) for a, _ in si.candidates) for b, _ in sj.candidates)
            got = _Matrix(cols, tuple(max(c) for c in zip(*cols)))
            if len(self._matrices) > self.max_cached:
                self._matrices.clear()
            self._matrices[key] = got
        return got

    # ------------------------------------------------------------------ joint choice

    def choose(self, slots: Sequence[Slot]) -> list[int]:
        """Index of the chosen candidate of each slot, at the fixed point."""
        n = len(slots)
        choice = [0] * n
        open_ = [i for i in range(n) if len(slots[i].candidates) > 1]
        if not open_ or n < 2:
            return choice
        known = self._matrices.get
        keys = [s.key for s in slots]
        partners: dict[int, list[tuple[int, _Matrix]]] = {}
        priors: dict[int, list[float]] = {}
        # Per slot: its best candidate given the best partner in every other slot, that
        # bound's value and the best bound among the other candidates. The bound is the
        # start of the search, and it lets a re-choice stop early: when the held
        # candidate scores at least every other one's bound, nothing can beat it.
        bounds: dict[int, tuple[int, float, float]] = {}
        for i in open_:
            pairs = []
            for j in range(n):
                if j != i:
                    m = known((keys[i], keys[j])) or self._matrix(slots[i], slots[j])
                    pairs.append((j, m))
            partners[i] = pairs
            prior = priors[i] = [p for _, p in slots[i].candidates]
            # (Sums element by element in partner order, as a running total would.)
            bound = list(map(sum, zip(prior, *[m.best for _, m in pairs])))
            top = max(bound)
            c = choice[i] = bound.index(top)
            bounds[i] = (c, top, max(bound[:c] + bound[c + 1:]))
        if len(open_) == 1:  # the others are fixed: the start is the optimum
            return choice
        # Iterated conditional modes; a slot is re-scored only when a partner changed
        # since its last look (otherwise its best is the sense it already holds).
        stale = set(open_)
        for _ in range(self.max_rounds):
            changed = False
            for i in open_:
                if i not in stale:
                    continue
                stale.discard(i)
                c, pairs = choice[i], partners[i]
                top_at, top, second = bounds[i]
                held = sum((priors[i][c], *[m.cols[choice[j]][c] for j, m in pairs]))
                if held >= (second if c == top_at else top):
                    continue
                score = list(map(sum, zip(priors[i], *[m.cols[choice[j]] for j, m in pairs])))
                best = score.index(max(score))
                if score[best] > score[c] + 1e-12:
                    choice[i], changed = best, True
                    stale.update(j for j in open_ if j != i)
            if not changed:
                break
        return choice

    def explain(self, slots: Sequence[Slot], choice: Sequence[int]) -> list[list[CandidateScore]]:
        """Each slot's candidates scored against the other slots' chosen senses."""
        out = []
        for i, s in enumerate(slots):
            rows = []
            wi = 1.0 if s.label else self.context_only_weight
            for row, prior in s.candidates:
                parts = dict.fromkeys(COMPONENTS, 0.0)
                context = 0.0
                for j, t in enumerate(slots):
                    if j == i:
                        continue
                    other = t.candidates[choice[j]][0]
                    w = wi * (1.0 if t.label else self.context_only_weight)
                    comp = (dict.fromkeys(COMPONENTS, 1.0) if other == row
                            else self.components(row, other))
                    for c in COMPONENTS:
                        parts[c] += w * self.weights[c] * comp[c]
                    context += w * self.relatedness(row, other)
                p = prior if s.label else 0.0
                rows.append(CandidateScore(row, round(p, 4),
                                           {c: round(v, 4) for c, v in parts.items()},
                                           round(context, 4), round(p + context, 4)))
            out.append(rows)
        return out
