"""Sense choice from the whole post (`weaksup.hashtags.context`) on the real WordNet.

The posts here are not in benchmarks/resolver_context_dev.tsv, the set the weights were
tuned on; the first five are the ones a user reported wrong.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from weaksup.hashtags.context import COMPONENTS
from weaksup.hashtags.resolver import Resolver, ResolverConfig
from weaksup.hashtags.senses import SensePolicy

REPO = Path(__file__).resolve().parent.parent
DEV_SET = REPO / "benchmarks" / "resolver_context_dev.tsv"


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


def synsets(r: Resolver, post: str) -> list[str | None]:
    return [x.synset if x else None for x in r.resolve_post(post.split())]


# Post -> the synset a person means for each tag (None: no label, only context).
# pen.n.02 is the livestock enclosure (WordNet's third sense of "pen" is playpen.n.01); its
# hyponym sty.n.02, "a pen for swine", is what ties it to the pig.
# Two reported posts still fail: WordNet has no path from a jug to a drink, nor from a pipe
# organ to a church (beside #music the electric organ wins), and gloss overlap finds none
# either. They stay here as strict expected failures (a fix makes them pass and this must
# change).
_NO_WORDNET_LINK = pytest.mark.xfail(strict=True, reason="WordNet relates no sense of the tag to the context")
REPORTED = [
    pytest.param("pitcher lemonade summer", {"pitcher": "pitcher.n.02"}, marks=_NO_WORDNET_LINK),
    ("cap bottle beer", {"cap": "cap.n.02"}),
    ("hood car engine", {"hood": "hood.n.09", "engine": "engine.n.01"}),
    pytest.param("organ church music", {"organ": "organ.n.05"}, marks=_NO_WORDNET_LINK),
    ("pen pig farm", {"pen": "pen.n.02"}),
]
OTHERS = [
    ("mouse keyboard laptop", {"mouse": "mouse.n.04"}),
    ("bass amplifier concert", {"bass": "bass.n.07"}),
    ("lamb mint roast", {"lamb": "lamb.n.05"}),
    ("trunk car suitcase", {"trunk": "trunk.n.02"}),
    ("bat ball baseball", {"bat": "bat.n.05"}),
    ("bow arrow archery", {"bow": "bow.n.04"}),
    ("turkey stuffing cranberry", {"turkey": "turkey.n.04"}),
    # Context that agrees with the single-tag sense keeps it.
    ("seal penguin iceberg", {"seal": "seal.n.09"}),
    ("palm coconut tropical", {"palm": "palm.n.03"}),
    ("cherry chocolate cake", {"cherry": "cherry.n.03"}),
]


def _post(case) -> str:
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize("post, want", REPORTED + OTHERS, ids=[_post(c) for c in REPORTED + OTHERS])
def test_post_picks_the_sense_a_person_means(resolver: Resolver, post: str, want: dict) -> None:
    got = dict(zip(post.split(), synsets(resolver, post)))
    assert {t: got[t] for t in want} == want


def test_test_posts_are_not_in_the_dev_set() -> None:
    dev = {line.split("\t")[0] for line in DEV_SET.read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")}
    assert not dev & {_post(c) for c in REPORTED + OTHERS}


def test_dev_set_is_well_formed(resolver: Resolver) -> None:
    posts = ambiguous = 0
    for line in DEV_SET.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        tags, golds = (f.split() for f in line.split("\t"))
        assert len(tags) == len(golds), line
        posts += 1
        for tag, gold in zip(tags, golds):
            res = resolver.resolve(tag)
            if gold == "-":
                assert res is None, (line, tag)
                continue
            assert res is not None, (line, tag)
            scored = resolver.senses.candidates(res.lemma, res.lemma)[1]
            assert resolver.index.row(gold) in {row for _, _, row in scored}, (line, tag, gold)
            ambiguous += len(scored) >= 2
    assert posts >= 150 and ambiguous >= 300


def test_resolve_with_context_is_the_post(resolver: Resolver) -> None:
    post = ["cap", "bottle", "beer"]
    together = resolver.resolve_post(post)
    assert resolver.resolve("cap", ["bottle", "beer"]) == together[0]
    assert resolver.resolve("beer", ["cap", "bottle"]) == together[2]
    assert resolver.resolve_post(post) == together  # memoised, same answers
    # A changed sense says so in its trace; an unchanged one is the single-tag answer.
    assert together[0].trace[-1] == "context:cap.n.02"
    assert together[1] == resolver.resolve("bottle")


def test_tags_without_a_label_are_context_but_stay_null(resolver: Resolver) -> None:
    # #music resolves to nothing on its own, yet says what the post is about.
    out = resolver.resolve_post(["bass", "music", "instagood"])
    assert out[1] is None and out[2] is None
    assert out[0].synset == "bass.n.07"
    assert resolver.resolve("bass").synset == "bass.n.08"


def test_duplicates_and_single_tags(resolver: Resolver) -> None:
    assert resolver.resolve_post([]) == []
    assert resolver.resolve_post(["seal"]) == [resolver.resolve("seal")]
    a, b = resolver.resolve_post(["mouse", "mice"])  # one lemma: one slot, no self-evidence
    assert a.synset == b.synset == resolver.resolve("mouse").synset


def test_explain_gives_the_parts_of_each_score(resolver: Resolver) -> None:
    post = ["pitcher", "lemonade", "summer"]
    chosen = resolver.resolve_post(post)
    explained = resolver.explain_post(post)
    assert len(explained) == 3
    for res, cands in zip(chosen, explained):
        if res is None:
            continue
        assert cands, res
        best = max(cands, key=lambda c: c.total)
        assert resolver.index.names[best.row] == res.synset
        for c in cands:
            assert set(c.components) == set(COMPONENTS)
            assert c.total == pytest.approx(c.prior + c.context, abs=1e-3)
        alone = resolver.index.row(resolver.resolve(res.hashtag).wnid)
        assert [c.prior for c in cands if c.row == alone] == [0.0]  # the single-tag choice


def test_policy_weights_change_the_choice_and_the_fingerprint(resolver: Resolver) -> None:
    none = {c: 0.0 for c in COMPONENTS}
    blind = Resolver(ResolverConfig(policy=SensePolicy(context_weights=none)),
                     index=resolver.index)
    assert blind.fingerprint() != resolver.fingerprint()
    # Without relatedness the post changes nothing: single-tag senses come back.
    assert synsets(blind, "hood car engine") == [
        blind.resolve(t).synset for t in ["hood", "car", "engine"]]


def test_cli_explain() -> None:
    proc = subprocess.run([sys.executable, "-m", "weaksup", "resolve", "--context", "--explain",
                           "cap", "bottle", "beer", "instagood"], capture_output=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(l) for l in proc.stdout.decode().splitlines()]
    assert [o["synset"] for o in out] == ["cap.n.02", "bottle.n.01", "beer.n.01", None]
    senses = out[0]["senses"]
    assert {"synset", "prior", "context", "score", *COMPONENTS} <= set(senses[0])
    assert max(senses, key=lambda s: s["score"])["synset"] == "cap.n.02"
    assert out[3]["senses"] == []


def test_index_has_glosses_and_links(resolver: Resolver) -> None:
    idx = resolver.index
    car, hood = idx.row("car.n.01"), idx.row("hood.n.09")
    assert idx.gloss(car).startswith("a motor vehicle with four wheels")
    assert hood in idx.related_rows(car, "%p") and car in idx.related_rows(hood, "#p")
    assert idx.row("music.n.01") in idx.related_rows(idx.row("electric_organ.n.01"), ";c")
    assert idx.hypernym_rows(car) == (idx.row("motor_vehicle.n.01"),)
    below = idx.descendant_counts()
    assert below[idx.row("entity.n.01")] == len(idx) - 1 and below[car] > 10
    assert idx.synset("car.n.01").gloss == idx.gloss(car)


def test_tiny_caches_still_give_the_same_post(resolver: Resolver) -> None:
    small = Resolver(ResolverConfig(cache_size=1), index=resolver.index)
    post = ["hood", "car", "engine", "instagood", "cap", "bottle", "beer"]
    assert small.resolve_post(post) == resolver.resolve_post(post)
