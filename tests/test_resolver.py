"""The hashtag resolver: rules, sense policy, context, caching, fingerprint."""

from __future__ import annotations

import dataclasses

import pytest

from weaksup.hashtags.resolver import Resolution, Resolver, ResolverConfig
from weaksup.hashtags.senses import SensePolicy


@pytest.fixture(scope="session")
def resolver() -> Resolver:
    return Resolver()


def synset(r: Resolver, tag: str, context=()) -> str | None:
    res = r.resolve(tag, context)
    return None if res is None else res.synset


def test_resolution_fields(resolver: Resolver) -> None:
    res = resolver.resolve("#GoldenRetrievers")
    assert isinstance(res, Resolution)
    assert res.hashtag == "#GoldenRetrievers"
    assert (res.synset, res.wnid, res.lemma, res.lexname) == (
        "golden_retriever.n.01", "n02099601", "golden_retriever", "noun.animal")
    assert res.trace and all(isinstance(t, str) for t in res.trace)
    assert dataclasses.is_dataclass(res) and res.__dataclass_params__.frozen


@pytest.mark.parametrize("tag, expected, rule", [
    ("dogs", "dog.n.01", "lemma:dogs->dog"),
    ("geese", "goose.n.01", "lemma:geese->goose"),
    ("Café", "cafe.n.01", "accents"),
    ("Hot-Dog", "hotdog.n.02", "multiword"),
    ("hotairballoon", "hot-air_balloon.n.01", "letters:hot-air_balloon"),
    ("dogsofinstagram", "dog.n.01", "affix:-ofinstagram"),
    ("instadog", "dog.n.01", "affix:insta-"),
    ("catstagram", "cat.n.01", "affix:-stagram"),
    ("macandcheese", "macaroni_and_cheese.n.01", "segment:mac|and|cheese"),
    ("sunsetbeach", "beach.n.01", "segment:sunset|beach"),
    ("lovecats", "cat.n.01", "segment:love|cats"),
    ("beachday", "beach.n.01", "modifier"),
])
def test_rules_fire_and_are_traced(resolver: Resolver, tag: str, expected: str, rule: str) -> None:
    res = resolver.resolve(tag)
    assert res is not None and res.synset == expected
    assert rule in res.trace


def test_visual_sense_beats_first_sense(resolver: Resolver) -> None:
    idx = resolver.index
    for tag, visual in [("tiger", "tiger.n.02"), ("whale", "whale.n.02"), ("turtle", "turtle.n.02"),
                        ("cake", "cake.n.03"), ("burger", "hamburger.n.01")]:
        first = idx.names[idx.noun_senses(tag)[0][0]]
        assert first != visual  # WordNet's first sense is not the photo's
        assert synset(resolver, tag) == visual


def test_filler_and_non_nouns_resolve_to_nothing(resolver: Resolver) -> None:
    for tag in ["instagood", "tbt", "like4like", "happy", "love", "photooftheday", "nofilter",
                "2019", "summer", "beautiful"]:
        assert resolver.resolve(tag) is None, tag


@pytest.mark.parametrize("tag", [
    "", "#", "##", "!!!", "   ", "🐶", "❤️", "\ufffd\ufffd", "a" * 10_000, "#" * 5000,
    "dog" * 3000, "\x00dog", "\u200b", "١٢٣", "собака", "#dog\n#cat",
])
def test_never_crashes_on_bad_input(resolver: Resolver, tag: str) -> None:
    res = resolver.resolve(tag)
    assert res is None or isinstance(res, Resolution)


def test_huge_and_junk_tags_are_null(resolver: Resolver) -> None:
    assert resolver.resolve("a" * 10_000) is None
    assert resolver.resolve("dog" * 3000) is None
    assert resolver.resolve("#") is None


def test_synonyms_merge(resolver: Resolver) -> None:
    assert {synset(resolver, t) for t in ["burger", "hamburger", "beefburger", "burgers"]} == {
        "hamburger.n.01"}
    assert synset(resolver, "donut") == synset(resolver, "doughnut") == "doughnut.n.02"
    assert synset(resolver, "polarbear") == synset(resolver, "icebear") == "ice_bear.n.01"


def test_context_picks_the_sense(resolver: Resolver) -> None:
    assert synset(resolver, "crane", ["bird"]) == "crane.n.05"
    assert synset(resolver, "crane", ["building", "truck"]) == "crane.n.04"
    assert synset(resolver, "mouse") == "mouse.n.01"
    assert synset(resolver, "mouse", ["computer"]) == "mouse.n.04"
    # Unrelated or empty context leaves the choice alone.
    assert synset(resolver, "dog", ["beach", "sunset"]) == "dog.n.01"
    assert synset(resolver, "crane", ["instagood"]) == synset(resolver, "crane")
    post = resolver.resolve_post(["crane", "bird", "instagood"])
    assert [r.synset if r else None for r in post] == ["crane.n.05", "bird.n.01", None]


def test_policy_is_configurable(resolver: Resolver) -> None:
    # Without a preference for animals and food, the first WordNet sense comes back.
    flat = SensePolicy(lexname_weights={k: 1.0 for k in resolver.config.policy.lexname_weights},
                       head_bonus=0.0)
    other = Resolver(ResolverConfig(policy=flat), index=resolver.index)
    assert synset(other, "turtle") == "turtleneck.n.01"
    assert synset(resolver, "turtle") == "turtle.n.02"
    assert other.fingerprint() != resolver.fingerprint()
    no_affix = Resolver(ResolverConfig(suffixes=(), prefixes=(), segmentation=False),
                        index=resolver.index)
    assert no_affix.resolve("dogsofinstagram") is None


def test_fingerprint_is_stable(resolver: Resolver) -> None:
    again = Resolver(index=resolver.index)
    assert again.fingerprint() == resolver.fingerprint()
    assert len(resolver.fingerprint()) == 16


def test_cache_returns_same_answers(resolver: Resolver) -> None:
    first = [resolver.resolve(t) for t in ["dogs", "instagood", "cake"]]
    second = [resolver.resolve(t) for t in ["dogs", "instagood", "cake"]]
    assert first == second
    small = Resolver(ResolverConfig(cache_size=2), index=resolver.index)
    got = [synset(small, t) for t in ["dog", "cat", "cake", "dog", "tiger", "cat"]]
    assert got == ["dog.n.01", "cat.n.01", "cake.n.03", "dog.n.01", "tiger.n.02", "cat.n.01"]
    assert len(small._cache) <= 2


def test_social_groups_are_not_depictable(resolver: Resolver) -> None:
    # party.n.01 is a political party, family.n.01 a kin group: not what photos show.
    assert resolver.resolve("party") is None
    assert resolver.resolve("family") is None
    assert synset(resolver, "forest") == "forest.n.01"  # a group of trees is


def test_explain_gives_the_reason_for_nothing(resolver: Resolver) -> None:
    assert resolver.explain("instagood") == ("filler",)
    assert resolver.explain("love")[-1] == "mostly-abstract"
    assert resolver.explain("summer")[-1] == "abstract"
    assert resolver.explain("🐶") == ("no-letters",)
    assert resolver.explain("happy") == ("not-a-wordnet-noun",)
    assert resolver.explain("dogs") == resolver.resolve("dogs").trace


def test_affix_around_an_abstract_word_is_nothing(resolver: Resolver) -> None:
    # Not a segmentation into odd pieces ("ins|tat|ravel"): the idiom around "travel".
    assert resolver.resolve("instatravel") is None
    assert resolver.explain("instatravel")[:2] == ("affix:insta-", "lemma:travel")
    assert resolver.resolve("summervibes") is None


def test_undecodable_input_is_null(resolver: Resolver) -> None:
    # Bytes that were not UTF-8 arrive as lone surrogates (surrogateescape).
    assert resolver.resolve(b"\xff\xfedog".decode("utf-8", "surrogateescape")) is None
    assert resolver.explain("dog\udcff") == ("invalid-unicode",)


def test_adjectives_and_colours_are_nothing_but_nouns_survive(resolver: Resolver) -> None:
    for tag in ["sweet", "red", "blue", "white", "delicious", "dark"]:
        assert resolver.resolve(tag) is None, tag
    # Also adjectives in WordNet, but mostly things on a photo.
    assert synset(resolver, "husky") == "eskimo_dog.n.01"
    assert synset(resolver, "orange") == "orange.n.01"
    assert synset(resolver, "bear") == "bear.n.01"  # a verb far more often in text
