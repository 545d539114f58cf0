"""Labels from caption text: noun phrases -> WordNet noun synsets, and the CatLIP baseline.

Image-text corpora (CC12M, DataComp, LAION alt-text; YFCC titles and descriptions) carry
captions, not hashtags. Two labellers turn a caption into labels:

  weaksup  Candidates are multiword WordNet noun lemmas matched longest first ("ice cream
           cones" -> ice_cream_cone, "golden retriever", "hot dogs") and single nouns,
           reduced by WordNet's own morphology (plurals, `noun.exc`) after possessives are
           cut ("dogs'", "the children's toys" -> child, toy). Stop words and function
           words are never candidates, nor are words used mostly as another part of speech
           in WordNet's sense-tagged corpus ("running", "sets") unless a determiner marks
           them as nouns ("a watch"). A multiword lemma that means nothing depictable gives
           way to its words ("cup of tea" -> cup, tea). Each candidate is then resolved by
           the hashtag resolver with the caption's other candidates as context
           (`Resolver.resolve_post`), and non-depictable senses are dropped.
  catlip   CatLIP's rule (apple/corenet `wordnet_tagged_classification.py`,
           `_convert_caption_to_labels`): every token is lemmatised as a noun (NLTK's
           `WordNetLemmatizer`: the shortest morphy lemma) and kept when its first noun
           synset is named `lemma.n.01`; that first sense is the label. No compounds, no
           context, no depictability. corenet computes POS tags there but never reads them,
           so no tagger is needed to reproduce it.

No POS tagger is used (NLTK's tagger models are not installed); WordNet's lemma index and
sense-tag counts (`weaksup.wordnet`) stand in for it.

A label is stored in the corpus like a hashtag, as a *term*: a WordNet lemma that the
resolver maps, without context, to the synset chosen here. That is the caption's own lemma
when it resolves there, else another lemma of the same synset (the vocabulary build
resolves each distinct term once, without context, and synonyms merge anyway). For the
catlip labeller the term is the lemma itself, which names its synset `lemma.n.01`
one-to-one (build the vocabulary in `raw` mode to keep CatLIP's first senses).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from weaksup.hashtags.extract import HASHTAG_RE, mostly_noun
from weaksup.hashtags.idioms import STOPWORDS
from weaksup.hashtags.normalize import prepare_text
from weaksup.hashtags.resolver import Resolver
from weaksup.wordnet import WordNetIndex, load_index

LABEL_SOURCES = ("hashtags", "caption", "both")
LABELLERS = ("weaksup", "catlip")

# Longest multiword lemma tried, in words ("hot air balloon", "bird of paradise flower").
MAX_PHRASE_WORDS = 4

# Function words beyond the hashtag resolver's STOPWORDS: in running text they are frequent,
# and WordNet lists many as nouns through abbreviations or rare senses ("will", "may",
# "can", "one", "us", "up").
FUNCTION_WORDS: frozenset[str] = STOPWORDS | frozenset(
    """
    about above across after against along among around before behind below beneath beside
    besides between beyond down during except inside into near off onto out outside over
    past per since than through throughout till toward towards under underneath until unto
    up upon via within without
    if then else because while whereas although though unless whether nor either neither
    can could may might must shall should will would ought need has have had having
    being were get gets got getting make makes made let lets
    all any both each every few many more most much other others some such own same
    only just also very too quite rather really still even again ever never always often
    now soon later today tonight tomorrow yesterday
    what which who whom whose when where why how whatever whichever whoever
    one two three four five six seven eight nine ten eleven twelve hundred thousand million
    first second third last next another
    myself yourself himself herself itself ourselves themselves hers ours yours theirs
    something anything nothing everything someone anyone everyone nobody somebody anybody
    thing things stuff way lot lots kind sort type bit
    mr mrs ms dr st etc ie eg vs
    """.split()
)

# Nouns that, followed by "of" or after "on"/"in"/"at", locate or count the real subject
# rather than name one: complex prepositions ("in front of", "on top"), partitives ("a pair
# of shoes", "a group of friends"). Containers and portions ("a cup of") name things, stay.
RELATIONAL_NOUNS: frozenset[str] = frozenset(
    """
    front top middle side back bottom edge center centre end corner rest part
    pair couple group number bunch pile stack row set variety
    """.split()
)

# Words after which a noun reading is likely ("a watch", "the bear", "my glasses").
DETERMINERS: frozenset[str] = frozenset(
    """
    a an the this that these those my your his her its our their some any no every each
    two three four five six seven eight nine ten several many few
    """.split()
)

# Clause and sentence punctuation: a noun phrase never spans it ("ice. Cream ...").
_CLAUSE_RE = re.compile(r"[.,;:!?()\[\]{}\"“”|/\\\n\t…•·]+")
# A word: letters with at most one inner apostrophe ("children's", "don't"), or a trailing
# possessive apostrophe ("dogs'").
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?['’]?")
# Where WordNet's multiword lemmas split into words.
_WORD_SPLIT_RE = re.compile(r"[_-]")


@dataclass(frozen=True, slots=True)
class CaptionLabel:
    """One label a caption gives."""

    term: str  # what the post stores (a WordNet lemma, e.g. "golden_retriever")
    synset: str  # the sense chosen, e.g. "golden_retriever.n.01"
    phrase: str  # the caption words it came from, e.g. "golden retrievers"


@dataclass(frozen=True, slots=True)
class CaptionWord:
    """One word of a caption, as the labellers see it."""

    form: str  # lowercase, possessive cut
    text: str  # as written
    written: str  # lowercase, possessive kept ("year's": WordNet has new_year's_eve)
    possessive: bool
    clause: int  # index of the clause it lies in


def caption_words(caption: str) -> list[CaptionWord]:
    """The caption's words, lowercase, possessives cut, hashtags and contractions left out."""
    text = HASHTAG_RE.sub(" ", prepare_text(caption or "")).replace("’", "'")
    out: list[CaptionWord] = []
    for clause, part in enumerate(_CLAUSE_RE.split(text)):
        for m in _TOKEN_RE.finditer(part):
            raw = m.group(0)
            w = written = raw.casefold()
            possessive = False
            if w.endswith("'s"):
                w, possessive = w[:-2], True
            elif w.endswith("'"):
                w, possessive = w[:-1], True
            if "'" in w:  # contractions ("don't", "we're") are function words
                continue
            out.append(CaptionWord(w, raw.rstrip("'"), written, possessive, clause))
    return out


class CaptionLabeller:
    """Caption -> depictable WordNet noun synsets, resolved in the caption's context."""

    name = "weaksup"

    def __init__(self, resolver: Resolver | None = None):
        self.resolver = resolver or Resolver()
        self.index: WordNetIndex = self.resolver.index
        self._term_of: dict[str, str] = {}
        # First words of multiword lemmas ("golden", "ice", "farmer's"): most caption words
        # start none, and only those that do are looked up as phrases of 3+ words.
        self._phrase_starts = frozenset(
            _WORD_SPLIT_RE.split(l, maxsplit=1)[0] for l in self.index.noun_lemmas()
            if _WORD_SPLIT_RE.search(l))

    def candidates(self, caption: str) -> list[tuple[str, str]]:
        """(resolver input, caption words) for each noun phrase, longest match first."""
        words = caption_words(caption)
        out: list[tuple[str, str]] = []
        i = 0
        while i < len(words):
            span, key = self._phrase_at(words, i)
            if span:
                if key:
                    out.append((key, " ".join(w.text for w in words[i:i + span])))
                i += span
                continue
            w = words[i]
            prev = words[i - 1].form if i > 0 and words[i - 1].clause == w.clause else ""
            nxt = words[i + 1].form if i + 1 < len(words) and words[i + 1].clause == w.clause else ""
            relational = w.form in RELATIONAL_NOUNS and (nxt == "of" or prev in ("on", "in", "at"))
            if not relational and self._is_noun(w.form, prev):
                out.append((w.form, w.text))
            i += 1
        return out

    def _phrase_at(self, words: Sequence[CaptionWord], i: int) -> tuple[int, str]:
        """(words, resolver input) of the longest depictable multiword lemma at word i, or (0, "").

        A lemma spelt with a possessive is taken whole even when it depicts nothing, so
        that its words are not labels ("New Year's Eve" -> (3, "")).

        A span matches as written ("golden retrievers" -> golden_retriever) or by its
        letters, which finds lemmas WordNet spells with a hyphen or an apostrophe ("ice
        cream cones" -> ice-cream_cone, "farmers market"), and two-word spellings of
        one-word lemmas whose second word reads as a noun ("lamp post", "tooth brush").
        """
        first = words[i]
        if first.form in FUNCTION_WORDS:
            return 0, ""
        idx = self.index
        longest = MAX_PHRASE_WORDS if first.form in self._phrase_starts or first.written in self._phrase_starts else 2
        for n in range(min(longest, len(words) - i), 1, -1):
            span = words[i:i + n]
            last = span[-1]
            if last.clause != first.clause or last.form in FUNCTION_WORDS:
                continue
            if any(w.possessive for w in span[:-1]):
                # A possessive ends a phrase unless WordNet spells the lemma with it.
                form = "_".join(w.written for w in span)
                if idx.lemmatize_noun(form):
                    return n, form if self.resolver.resolve(form) is not None else ""
                continue
            form = "_".join(w.form for w in span)
            letters = "".join(w.form for w in span)
            if idx.lemmatize_noun(form):
                key = form
            elif spelt := self.resolver.compounds.lemmas_for_letters(letters):
                key = spelt[0]
            elif (n == 2 and min(len(w.form) for w in span) >= 3 and idx.lemmatize_noun(letters)
                  and self._is_noun(last.form, "")):
                # A closed compound written open ("lamp post"), but not a clause ("sun sets").
                key = letters
            else:
                continue
            if self.resolver.resolve(key) is not None:
                return n, key
        return 0, ""

    def _is_noun(self, form: str, prev: str) -> bool:
        if len(form) < 2 or form in FUNCTION_WORDS:
            return False
        lemmas = self.index.lemmatize_noun(form)
        if not lemmas:
            return False
        if prev in DETERMINERS:
            return True
        return any(mostly_noun(self.index, form, lemma) for lemma in lemmas)

    def labels(self, caption: str) -> list[CaptionLabel]:
        """The caption's labels in order of appearance, one per synset."""
        cands = self.candidates(caption)
        if not cands:
            return []
        resolved = self.resolver.resolve_post([c[0] for c in cands])
        out: list[CaptionLabel] = []
        seen: set[str] = set()
        for (form, phrase), res in zip(cands, resolved):
            if res is None or res.synset in seen:
                continue
            if not self.resolver.senses.depictable(self.index.row(res.synset)):
                continue
            seen.add(res.synset)
            out.append(CaptionLabel(self._term(res.lemma, res.synset), res.synset, phrase))
        return out

    def _term(self, lemma: str, synset: str) -> str:
        """A lemma the resolver maps to `synset` without context (see the module docstring)."""
        key = f"{lemma} {synset}"
        term = self._term_of.get(key)
        if term is None:
            term = lemma
            plain = self.resolver.resolve(lemma)
            if plain is None or plain.synset != synset:
                for other in self.index.synset_lemmas(self.index.row(synset)):
                    other = other.casefold()
                    r = self.resolver.resolve(other)
                    if r is not None and r.synset == synset:
                        term = other
                        break
            self._term_of[key] = term
        return term


class CatlipLabeller:
    """CatLIP's caption labels: each token's first noun sense when it is `token.n.01`."""

    name = "catlip"

    def __init__(self, index: WordNetIndex | None = None):
        self.index = index or load_index()

    def labels(self, caption: str) -> list[CaptionLabel]:
        """The caption's labels in order of appearance, one per synset."""
        idx = self.index
        out: list[CaptionLabel] = []
        seen: set[str] = set()
        for w in caption_words(caption):
            lemmas = idx.lemmatize_noun(w.form)
            # NLTK's WordNetLemmatizer returns the shortest morphy lemma.
            lemma = min(lemmas, key=len) if lemmas else w.form
            senses = idx.noun_senses(lemma)
            if not senses:
                continue
            name = idx.names[senses[0][0]]
            if name != f"{lemma}.n.01" or name in seen:
                continue
            seen.add(name)
            out.append(CaptionLabel(lemma, name, w.text))
        return out


@functools.cache
def get_labeller(name: str = "weaksup") -> CaptionLabeller | CatlipLabeller:
    """The process's labeller by name ("weaksup" or "catlip"); built once, then shared."""
    if name == "weaksup":
        return CaptionLabeller()
    if name == "catlip":
        return CatlipLabeller()
    raise ValueError(f"unknown caption labeller {name!r}; expected one of {', '.join(LABELLERS)}")
