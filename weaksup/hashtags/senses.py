"""Sense selection: which noun sense of a lemma a hashtag means, or none.

WordNet orders senses by how often they were tagged in running text, and its first sense
is often not the one a photo shows: tiger.n.01 and whale.n.01 are people, turtle.n.01 is
a sweater, cake.n.01 a block of soap. The policy, in order:

1. Depictable senses are those in a depictable lexicographer file (the keys of
   `lexname_weights`: animals, plants, food, artifacts, natural objects, phenomena,
   substances, places, body parts, people, groups); noun.Tops senses only when they lie
   below physical_entity.n.01 (food.n.01, plant.n.02, not abstraction.n.06), and
   groups only when they are not social groups (a forest, not a political party). Senses
   in abstract files (acts, events, feelings, times, attributes, communication,
   cognition, states, quantities ...) never win, even where WordNet's hypernyms reach a
   physical root (book.n.01 "a written work" is communication; book.n.02 is the object).
2. The word resolves to nothing when it is not used as a depictable noun: it has no
   depictable noun sense; its abstract senses carry far more sense-tag evidence than its
   depictable ones (#love, whose only concrete sense is "beloved"); or it is used far
   more as an adjective or verb than as a noun (#sweet, #red; any adjectival use wins
   over a noun that is only a proper name: #delicious).
3. Among depictable senses the score is
       lexname_weight[lexname] + count_weight * log(1 + tag count)
       + head_bonus (the word is the synset's head lemma) - rank_penalty * sense rank,
   with natural kinds and food above artifacts and places, and people lowest, so a
   sense-tagged person reading (baby.n.01) still beats an untagged animal one.
4. In a post, that score (times context_prior_scale) is the prior of each candidate
   sense, and the post's other hashtags add their relatedness (`context`): the senses
   within context_gap of the best are candidates, and all tags are decided jointly.
Everything is a field of `SensePolicy`, so the policy is explicit and can be swept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from weaksup.wordnet import WordNetIndex

DEFAULT_LEXNAME_WEIGHTS: dict[str, float] = {
    # The visual subjects of photos: natural kinds and food. noun.Tops holds the
    # depictable roots food.n.01, plant.n.02 (flora), animal.n.01.
    # Animals first (#octopus the animal, not the dish), then food before the plant it
    # comes from (#pineapple the fruit), then plants.
    "noun.animal": 3.4, "noun.food": 3.2, "noun.plant": 3.0, "noun.Tops": 3.0,
    # Made and natural things, places, materials, weather and light.
    "noun.artifact": 1.5, "noun.object": 1.5, "noun.phenomenon": 1.5,
    "noun.substance": 1.5, "noun.location": 1.5,
    "noun.body": 0.9,
    # People are depictable but most person senses of common words are figurative
    # (tiger.n.01 "a fierce person").
    "noun.person": 0.5,
    # Groups are abstractions in WordNet, but a forest or a flock can be photographed
    # (social groups cannot: see excluded_roots).
    "noun.group": 0.5,
}


@dataclass(frozen=True)
class SensePolicy:
    """How a lemma's noun senses are ranked; see the module docstring."""

    lexname_weights: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_LEXNAME_WEIGHTS))
    # Lexnames whose senses must also lie below depictable_root to count as depictable.
    root_checked: tuple[str, ...] = ("noun.Tops",)
    depictable_root: str = "physical_entity.n.01"
    # Senses below these are never depictable: #party is not a political party, #family
    # not a kin group, #wedding not the wedding party.
    excluded_roots: tuple[str, ...] = ("social_group.n.01",)
    count_weight: float = 1.2
    head_bonus: float = 1.0
    rank_penalty: float = 0.05
    # Sense choice in a post (`context`): weights of the relatedness components, where
    # the relatedness of two senses saturates (context_cap), the scale of the single-tag
    # score as a prior, which senses are candidates (those scoring within context_gap
    # of the best, at most context_candidates), and how much a tag that is no label
    # itself (#music, #summer) counts, through at most context_only_senses of its noun
    # senses. Tuned on benchmarks/resolver_context_dev.tsv.
    context_weights: Mapping[str, float] = field(default_factory=lambda: {
        "taxonomy": 2.0, "relations": 0.5, "gloss": 16.0, "mention": 2.0, "domain": 2.0,
        "lexname": 1.0})
    context_cap: float = 3.0
    context_taxonomy_floor: float = 0.2
    context_prior_scale: float = 0.5
    # The sense-tag-count part of the prior is scaled once more: running text's
    # frequencies say less about a post whose other tags disagree with them.
    context_count_scale: float = 0.75
    context_gap: float = 10.0
    context_candidates: int = 12
    context_only_weight: float = 1.0
    context_only_senses: int = 3
    # Null when the tag counts of its abstract senses exceed abstract_dominance * (tag
    # count of its depictable senses + 1): #love.
    abstract_dominance: float = 8.0
    # Null when abstract counts plus its counts as an adjective or adverb exceed
    # adjective_dominance * (tag count of its depictable common-noun senses + 1): #sweet,
    # #red (the Red River is a proper name), but not #husky or #orange.
    adjective_dominance: float = 4.0
    # Null when its tag count as a verb exceeds verb_dominance * (noun tag count + 1).
    # Hashtags name things far more often than running text does, hence the wide margin
    # (#bear, #watch are nouns).
    verb_dominance: float = 50.0
    # Null when its only depictable senses are proper names and its adjective count
    # exceeds proper_name_dominance * (noun tag count + 1): #delicious is praise, not the
    # apple variety Delicious.
    proper_name_dominance: float = 1.0

    def as_dict(self) -> dict:
        return {
            "lexname_weights": dict(sorted(self.lexname_weights.items())),
            "root_checked": list(self.root_checked),
            "depictable_root": self.depictable_root,
            "excluded_roots": list(self.excluded_roots),
            "count_weight": self.count_weight,
            "head_bonus": self.head_bonus,
            "rank_penalty": self.rank_penalty,
            "context_weights": dict(sorted(self.context_weights.items())),
            "context_cap": self.context_cap,
            "context_taxonomy_floor": self.context_taxonomy_floor,
            "context_prior_scale": self.context_prior_scale,
            "context_count_scale": self.context_count_scale,
            "context_gap": self.context_gap,
            "context_candidates": self.context_candidates,
            "context_only_weight": self.context_only_weight,
            "context_only_senses": self.context_only_senses,
            "abstract_dominance": self.abstract_dominance,
            "adjective_dominance": self.adjective_dominance,
            "verb_dominance": self.verb_dominance,
            "proper_name_dominance": self.proper_name_dominance,
        }


@dataclass(frozen=True, slots=True)
class SenseChoice:
    """The outcome for one lemma: a synset row, or None with the rule that said so."""

    row: int | None
    rule: str


_SQUASH = str.maketrans("", "", "_-.'")


def _squash(s: str) -> str:
    return s.lower().translate(_SQUASH)


class SenseSelector:
    """Applies a SensePolicy to lemmas of one WordNet index."""

    def __init__(self, index: WordNetIndex, policy: SensePolicy):
        self.index = index
        self.policy = policy
        self._root = index.row(policy.depictable_root)
        weights = [policy.lexname_weights.get(name) for name in index.lexnames]
        checked = {index.lexnames.index(n) for n in policy.root_checked}
        # Per-synset lexname weight, None where the sense is not depictable: computed
        # once so scoring a lemma is a few list lookups.
        lex = index.lexname_ids.tolist()
        base: list[float | None] = [weights[l] for l in lex]
        excluded = {index.row(n) for n in policy.excluded_roots}
        group_like = {index.lexnames.index("noun.group")}
        for row, l in enumerate(lex):
            if base[row] is None:
                continue
            if l in checked and self._root not in index.closure_rows(row):
                base[row] = None
            elif excluded and (l in group_like or l in checked) and (
                    row in excluded or not excluded.isdisjoint(index.closure_rows(row))):
                base[row] = None
        # A tuple of atoms: the garbage collector stops scanning it.
        self._base: tuple[float | None, ...] = tuple(base)
        self._head: dict[int, str] = {}
        # word -> (adjective + adverb tag count, verb tag count), for the words that have
        # any: one lookup decides whether the part-of-speech rules apply at all.
        other: dict[str, tuple[int, int]] = {}
        for pos in ("adj", "adv", "verb"):
            for word, count in index.pos_table(pos).items():
                if count:
                    a, v = other.get(word, (0, 0))
                    other[word] = (a, v + count) if pos == "verb" else (a + count, v)
        self._other = other
        self._cache: dict[tuple[str, str], tuple[SenseChoice, tuple]] = {}

    def depictable(self, row: int) -> bool:
        """Whether a synset is a depictable sense under this policy."""
        return self._base[row] is not None

    def _proper_only(self, lemma: str, senses) -> bool:
        """Whether every depictable sense is a proper name (WordNet capitalises it)."""
        found = False
        for row, _ in senses:
            if self._base[row] is None:
                continue
            for word in self.index.synset_lemmas(row):
                if word.lower() == lemma:
                    if word[:1].islower():
                        return False
                    found = True
        return found

    def _common_count(self, lemma: str, senses) -> int:
        """Tag count of the depictable senses where the lemma is a common noun."""
        total = 0
        for row, count in senses:
            if count and self._base[row] is not None and any(
                    w.lower() == lemma and w[:1].islower() for w in self.index.synset_lemmas(row)):
                total += count
        return total

    def _head_key(self, row: int) -> str:
        got = self._head.get(row)
        if got is None:
            got = _squash(self.index.names[row].rsplit(".", 2)[0])
            self._head[row] = got
        return got

    def candidates(self, lemma: str, form: str) -> tuple[SenseChoice, tuple]:
        """The no-context choice for `lemma` written as `form`, plus the scored depictable
        candidates as (score, rank, row), best first (memoised)."""
        key = (lemma, form)
        got = self._cache.get(key)
        if got is not None:
            return got
        pol = self.policy
        senses = self.index.noun_senses(lemma)
        result: tuple[SenseChoice, tuple] | None = None
        adj, verb = self._other.get(form, (0, 0))
        if form != lemma and lemma in self._other:
            adj2, verb2 = self._other[lemma]
            adj, verb = max(adj, adj2), max(verb, verb2)
        if verb or adj:
            noun_total = sum(c for _, c in senses)
            if verb > pol.verb_dominance * (noun_total + 1):
                result = (SenseChoice(None, "mostly-verb"), ())
            elif adj > pol.proper_name_dominance * (noun_total + 1) and self._proper_only(
                    lemma, senses):
                result = (SenseChoice(None, "mostly-adj"), ())
        if result is None and len(senses) == 1:  # most lemmas: nothing to rank
            row, count = senses[0]
            w = self._base[row]
            if w is None:
                result = (SenseChoice(None, "abstract"), ())
            elif adj > pol.adjective_dominance * (self._common_count(lemma, senses) + 1):
                result = (SenseChoice(None, "mostly-adj"), ())
            else:
                result = (SenseChoice(row, "sense-policy"), ((w, 0, row),))
        if result is None:
            base, cw, rp, hb = self._base, pol.count_weight, pol.rank_penalty, pol.head_bonus
            head = _squash(lemma)
            scored = []
            abstract = depicted = 0
            for rank, (row, count) in enumerate(senses):
                w = base[row]
                if w is None:
                    abstract += count
                    continue
                depicted += count
                score = w - rp * rank
                if count:
                    score += cw * math.log1p(count)
                if self._head_key(row) == head:
                    score += hb
                scored.append((score, rank, row))
            if not scored:
                result = (SenseChoice(None, "abstract" if senses else "not-a-noun"), ())
            elif abstract > pol.abstract_dominance * (depicted + 1):
                result = (SenseChoice(None, "mostly-abstract"), ())
            elif adj and abstract + adj > pol.adjective_dominance * (
                    self._common_count(lemma, senses) + 1):
                result = (SenseChoice(None, "mostly-adj"), ())
            else:
                if len(scored) > 1:
                    scored.sort(key=lambda t: (-t[0], t[1]))
                result = (SenseChoice(scored[0][2], "sense-policy"), tuple(scored))
        self._cache[key] = result
        return result

    def choose(self, lemma: str, form: str | None = None) -> SenseChoice:
        """The sense of `lemma` (written as `form`) on its own, without a post."""
        return self.candidates(lemma, form or lemma)[0]

    def context_candidates(self, lemma: str, form: str | None = None
                           ) -> tuple[tuple[int, float], ...]:
        """(row, prior) of the senses a post may choose for the lemma, best first.

        The prior is the single-tag score relative to the best's (the single-tag choice
        has 0), its sense-tag-count part scaled by context_count_scale, all times
        context_prior_scale; senses scoring more than context_gap below the best are
        left out. () when the lemma resolves to nothing.
        """
        choice, scored = self.candidates(lemma, form or lemma)
        if choice.row is None:
            return ()
        pol = self.policy
        counts = dict(self.index.noun_senses(lemma))
        top, top_row = scored[0][0], scored[0][2]
        shift = pol.context_count_scale - 1.0

        def count_part(row: int) -> float:
            return pol.count_weight * math.log1p(counts.get(row, 0))

        return tuple(
            (row, pol.context_prior_scale * (
                score - top + shift * (count_part(row) - count_part(top_row))))
            for score, _, row in scored[:pol.context_candidates]
            if score >= top - pol.context_gap)
