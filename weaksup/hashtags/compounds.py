"""Compounds written as one word: multiword lemmas, and segmentation into known words.

Users write multiword names without spaces (#goldenretriever, #hotairballoon). WordNet
spells them with underscores and hyphens (golden_retriever, hot-air_balloon), so every
lemma is also indexed by its letters alone. What is not a lemma is segmented into
WordNet words with a frequency-based cost (fewest pieces, then the most sense-tagged
ones), and the compound's head - its longest final span that is a lemma - is kept:
#sunsetbeach -> beach, #macandcheese -> macaroni_and_cheese (a clipped first word, "mac",
may stand for a unique lemma word it begins: macaroni).
"""

from __future__ import annotations

import math
import re
from typing import Iterable

from weaksup.hashtags.idioms import JOINERS, STOPWORDS
from weaksup.wordnet import NOUN_SUFFIX_RULES, WordNetIndex

_SQUASH_RE = re.compile(r"[_\-.'/ ]")
# Segments longer than this are rare and only slow the search down.
MAX_WORD = 24
# Strings longer than this are not segmented (nobody writes 6-word hashtags to be read).
MAX_SEGMENT_INPUT = 40


def squash(lemma: str) -> str:
    """A lemma's letters alone: 'hot-air_balloon' -> 'hotairballoon'."""
    return _SQUASH_RE.sub("", lemma)


class CompoundIndex:
    """Multiword-lemma lookup and word segmentation over a WordNet index."""

    def __init__(self, index: WordNetIndex):
        self.index = index
        self.by_letters: dict[str, list[str] | tuple[str, ...]] = {}
        self._by_tail: dict[str, list[str] | tuple[str, ...]] = {}
        for lemma in index.noun_lemmas():
            key = squash(lemma)
            if key != lemma:
                self.by_letters.setdefault(key, []).append(lemma)
            if "_" in lemma:
                first, tail = lemma.split("_", 1)
                self._by_tail.setdefault(tail, []).append(first)
        # Segmentation vocabulary: alphabetic lemmas of any part of speech with a cost.
        # A word costs 1 (fewest pieces wins) minus a small reward for sense-tag evidence;
        # short untagged words ("ar", "te") are WordNet abbreviations, not words users write.
        counts: dict[str, int] = {}
        for pos in ("noun", "verb", "adj", "adv"):
            for lemma in index.lemmas_of(pos):
                if lemma.isalpha() and lemma.isascii():
                    counts[lemma] = counts.get(lemma, 0) + (index.pos_count(lemma, pos) or 0)
        self.word_cost: dict[str, float] = {}
        for w, c in counts.items():
            if w in STOPWORDS and w not in JOINERS:
                continue
            if len(w) < 3 and c < 5:
                continue
            if len(w) == 3 and c == 0 and not index.is_noun(w):
                continue
            self.word_cost[w] = (1.0 - 0.1 * min(math.log1p(c), 5.0) / 5.0
                                 + (0.3 if c == 0 else 0.0)
                                 + (0.3 if c == 0 and len(w) <= 3 else 0.0))
        for j in JOINERS:
            self.word_cost[j] = 0.9
        # Freeze the lists into tuples (of strings): untracked by the garbage collector.
        self.by_letters = {k: tuple(v) for k, v in self.by_letters.items()}
        self._by_tail = {k: tuple(v) for k, v in self._by_tail.items()}

    def lemmas_for_letters(self, letters: str) -> list[str]:
        """Multiword lemmas spelt by `letters` (inflected forms too: 'goldenretrievers')."""
        got = self.by_letters.get(letters)
        if got:
            return list(got)
        out: list[str] = []
        for old, new in NOUN_SUFFIX_RULES:
            if letters.endswith(old) and len(letters) > len(old) + 2:
                for lemma in self.by_letters.get(letters[: -len(old)] + new, ()):
                    if lemma not in out:
                        out.append(lemma)
        return out

    def segment(self, text: str) -> list[str] | None:
        """Cheapest split of `text` into vocabulary words (>= 2 pieces), or None."""
        n = len(text)
        if n < 5 or n > MAX_SEGMENT_INPUT:
            return None
        cost = self.word_cost
        best = [math.inf] * (n + 1)
        back = [0] * (n + 1)
        best[0] = 0.0
        lemmatize = self.index.lemmatize_noun
        for j in range(1, n + 1):
            for i in range(max(0, j - MAX_WORD), j):
                if best[i] == math.inf:
                    continue
                piece = text[i:j]
                c = cost.get(piece)
                if c is None and j == n and len(piece) > 3 and lemmatize(piece):
                    c = 1.0  # the head may be inflected: #lovecats
                if c is not None and best[i] + c < best[j]:
                    best[j] = best[i] + c
                    back[j] = i
        if best[n] == math.inf:
            return None
        words: list[str] = []
        j = n
        while j > 0:
            words.append(text[back[j]:j])
            j = back[j]
        words.reverse()
        return words if len(words) >= 2 else None

    def head_lemmas(self, words: list[str]) -> Iterable[tuple[str, int]]:
        """Noun lemmas for the final spans of a segmented compound, longest span first.

        Yields (lemma, number of words it covers).
        """
        idx = self.index
        for k in range(len(words)):
            span = words[k:]
            if len(span) == 1 and span[0] in JOINERS:
                return
            joined = "_".join(span)
            found = idx.lemmatize_noun(joined) or self.lemmas_for_letters("".join(span))
            if not found and len(span) >= 2 and len(span[0]) >= 3:
                found = self._clipped(span)
            for lemma in found:
                yield lemma, len(span)

    def _clipped(self, span: list[str]) -> list[str]:
        """'mac and cheese' -> macaroni_and_cheese: a unique lemma whose first word the
        first piece begins, the rest spelt out."""
        tail = "_".join(span[1:])
        for t in (tail, *self.index.lemmatize_noun(tail)):
            firsts = [f for f in self._by_tail.get(t, ()) if f.startswith(span[0]) and f != span[0]]
            if len(firsts) == 1:
                return [f"{firsts[0]}_{t}"]
        return []
