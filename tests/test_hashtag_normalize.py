"""Hashtag surface forms and extraction from captions."""

from __future__ import annotations

from weaksup.hashtags.extract import extract_hashtags, extract_nouns
from weaksup.hashtags.normalize import hashtag_words, normalize_hashtag, strip_accents


def test_normalize_hashtag() -> None:
    assert normalize_hashtag("#ＤＯＧ") == "dog"
    assert normalize_hashtag("Hot-Dog") == "hotdog"
    assert normalize_hashtag("ice_cream") == "icecream"
    assert normalize_hashtag("#GoldenRetriever") == "goldenretriever"
    assert normalize_hashtag("Café") == "café"
    assert normalize_hashtag("dog\u200d") == "dog"
    assert normalize_hashtag("#") == ""
    assert normalize_hashtag("Straße") == "strasse"


def test_hashtag_words_keep_boundaries() -> None:
    assert hashtag_words("#hotDog") == ["hot", "dog"]
    assert hashtag_words("Hot-Dog") == ["hot", "dog"]
    assert hashtag_words("GoldenRetriever") == ["golden", "retriever"]
    assert hashtag_words("NYCSkyline") == ["nyc", "skyline"]
    assert hashtag_words("sea.turtle") == ["sea", "turtle"]
    assert hashtag_words("dogs") == ["dogs"]
    assert hashtag_words("like4like") == ["like", "4", "like"]
    assert hashtag_words("🍕pizza") == ["pizza"]
    assert hashtag_words("🐶") == []
    assert hashtag_words("") == []


def test_strip_accents() -> None:
    assert strip_accents("café") == "cafe"
    assert strip_accents("crèmebrûlée") == "cremebrulee"
    assert strip_accents("dog") == "dog"


def test_letters_without_an_accent_to_drop_are_kept() -> None:
    # ß is not respelt as ss on the way to the resolver (#ß is not the plural of s),
    # like the other letters with no accent to drop; accented letters still fold.
    for tag, words in [("#ß", ["ß"]), ("#ẞ", ["ß"]), ("#Straße", ["straße"]),
                       ("#Ærø", ["ærø"]), ("#łódź", ["łódź"]), ("#þorn", ["þorn"]), ("#Đak", ["đak"])]:
        assert hashtag_words(tag) == words, tag
    for letter in "ßæøłþđœŋ":
        assert strip_accents(letter) == letter
    assert strip_accents("łódź") == "łodz" and strip_accents("ǰ") == "j"
    assert hashtag_words("#CAFÉ") == ["café"] and hashtag_words("#İstanbul") == ["i̇stanbul"]


def test_extract_hashtags() -> None:
    caption = "Sunday walk #DogsOfInstagram #golden_retriever,#café! a#b &#39; #2019 ＃ＤＯＧ #собака"
    assert extract_hashtags(caption) == [
        "DogsOfInstagram", "golden_retriever", "café", "ＤＯＧ", "собака"]
    assert extract_hashtags("") == []
    assert extract_hashtags("no tags here # ## #!") == []
    assert extract_hashtags("#a#b") == ["a"]


def test_extract_nouns() -> None:
    got = extract_nouns("My golden retriever running on the beach with two puppies and geese!")
    assert got == ["golden_retriever", "beach", "puppy", "goose"]
    assert extract_nouns("A happy dog is playing with a red ball in the park #ignored") == [
        "dog", "ball", "park"]
    assert extract_nouns("") == []
