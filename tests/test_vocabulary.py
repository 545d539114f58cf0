"""Vocabularies: every mode on a real corpus, coverage figures, pruning, files and the CLI."""

import json

import numpy as np
import pytest

from hashtag_corpus import write_corpus
from weaksup.corpus.shards import Corpus
from weaksup.hashtags import vocab_cli
from weaksup.corpus.record import RecordError, decode_hashtags, encode_post, make_post
from weaksup.hashtags.imagenet import imagenet1k_wnids
from weaksup.hashtags.vocabulary import Vocabulary, VocabularyError
from weaksup.labels import build_from_corpus, compute_post_labels, load_post_labels

# Posts in the style of EmojiGram / Instagram: synonyms, case and separators vary, some
# hashtags are not nouns at all, one post is hashtag-free.
POSTS = [
    ["Dog", "puppy", "love"],
    ["dog", "golden_retriever"],
    ["cat", "kitty", "instagood"],
    ["Cat", "animal"],
    ["pizza", "food", "yummy"],
    ["pizza"],
    ["banana", "fruit"],
    ["dog", "animal"],
    ["tbt", "love"],
    [],
    ["car", "sportscar"],
    ["strawberry"],
    ["automobile"],
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("vocab") / "corpus", POSTS)


def test_imagenet1k_wnids_come_from_tfds():
    wnids = imagenet1k_wnids()
    assert len(wnids) == 1000 and len(set(wnids)) == 1000
    assert wnids[0] == "n01440764"  # tench, class 0
    assert all(w[0] == "n" and w[1:].isdigit() and len(w) == 9 for w in wnids)


def test_raw_mode_counts_and_coverage(corpus, tmp_path, capsys):
    out = tmp_path / "raw.json"
    assert vocab_cli.main(["build", "--corpus", str(corpus), "--mode", "raw", "--min-count", "2", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    vocab = Vocabulary.load(out)
    # Normalised hashtags seen at least twice: dog x3 (Dog, dog, dog), cat x2, animal x2,
    # pizza x2, love x2.
    assert sorted(vocab.names) == ["animal", "cat", "dog", "love", "pizza"]
    assert vocab.names[0] == "dog" and vocab.frequencies[0] == 3
    assert vocab.wnids[0] == "#dog"
    assert vocab.label_of("DOG") == 0 and vocab.label_of("banana") is None
    c = vocab.coverage
    # Posts with a label: 0,1,2,3,4,5,7,8 -> 8 of 13.
    assert c["posts"] == 13 and c["posts_with_label"] == 8
    assert c["post_share"] == pytest.approx(8 / 13)
    total = sum(len(p) for p in POSTS)
    assert c["hashtag_occurrences"] == total and c["occurrences_mapped"] == 11
    assert c["occurrence_share"] == pytest.approx(11 / total)
    assert "posts with >= 1 label: 8/13 = 61.54%" in printed
    assert f"hashtag occurrences mapped: 11/{total}" in printed
    assert vocab.build["corpus"]["manifest_sha256"]


def test_topk_on_raw_keeps_the_most_frequent(corpus, tmp_path):
    vocab = build_from_corpus(corpus, tmp_path / "v.json", mode="raw", top_k=3)
    assert vocab.num_classes == 3 and vocab.names[0] == "dog"
    assert vocab.frequencies == sorted(vocab.frequencies, reverse=True)


def test_json_round_trip_and_tamper_detection(corpus, tmp_path):
    path = tmp_path / "v.json"
    vocab = build_from_corpus(corpus, path, mode="raw")
    again = Vocabulary.load(path)
    assert again.wnids == vocab.wnids and again.hashtags == vocab.hashtags
    assert again.hash == vocab.hash and again.coverage == vocab.coverage
    obj = json.loads(path.read_text())
    obj["wnids"][0], obj["wnids"][1] = obj["wnids"][1], obj["wnids"][0]
    path.write_text(json.dumps(obj))
    with pytest.raises(VocabularyError, match="does not match its recorded hash"):
        Vocabulary.load(path)
    path.write_text("{not json")
    with pytest.raises(VocabularyError, match=str(path)):
        Vocabulary.load(path)
    with pytest.raises(VocabularyError, match="not found"):
        Vocabulary.load(tmp_path / "nope.json")


def test_post_labels_are_cached_and_keyed(corpus, tmp_path):
    path = tmp_path / "v.json"
    vocab = build_from_corpus(corpus, path, mode="raw")
    caches = list(tmp_path.glob("v.postlabels-*.npz"))
    assert len(caches) == 1
    mtime = caches[0].stat().st_mtime_ns
    labels = load_post_labels(vocab, path, Corpus(corpus))
    assert caches[0].stat().st_mtime_ns == mtime  # served from the cache
    assert labels.of(0).tolist() == [vocab.label_of("dog"), vocab.label_of("puppy"), vocab.label_of("love")]
    assert labels.of(9).size == 0
    # A different label space gets a different cache entry.
    other = build_from_corpus(corpus, tmp_path / "v.json", mode="raw", min_count=2)
    assert other.hash != vocab.hash
    assert len(list(tmp_path.glob("v.postlabels-*.npz"))) == 2


def test_unreadable_record_counts_as_unlabelled_with_a_warning():
    rec = encode_post(make_post("a", b"img", ["dog"]))
    assert decode_hashtags(rec) == ["dog"]
    vocab = Vocabulary(["#dog"], ["dog"], [1], [{"dog": 1}], [[]])
    with pytest.warns(UserWarning, match="record 1: unreadable hashtags"):
        labels = compute_post_labels(vocab, [rec, b"\xc1garbage"])
    assert labels.bad.tolist() == [1]
    assert labels.of(0).tolist() == [0] and labels.of(1).size == 0


def test_decode_hashtags_checks_the_record_version_and_field_types():
    import msgpack

    assert decode_hashtags(msgpack.packb({"v": 1, "id": "a", "image": b"x", "hashtags": ["a", "b"]})) == ["a", "b"]
    with pytest.raises(RecordError, match="version"):
        decode_hashtags(msgpack.packb({"v": 2, "id": "a", "image": b"x", "hashtags": ["a"]}))
    with pytest.raises(RecordError, match="hashtags"):
        decode_hashtags(msgpack.packb({"v": 1, "id": "a", "image": b"x", "hashtags": [1]}))
    with pytest.raises(RecordError, match="hashtags"):
        decode_hashtags(msgpack.packb({"v": 1, "id": "a", "image": b"x"}))
    with pytest.raises(RecordError, match="msgpack"):
        decode_hashtags(b"\xc1garbage")


def test_prefer_specific_drops_hypernyms_present_in_the_post():
    # dog (0) lies below animal (1); cat (2) too.
    vocab = Vocabulary(
        ["n02084071", "n00015388", "n02121620"], ["dog.n.01", "animal.n.01", "cat.n.01"],
        [3, 2, 2], [{"dog": 3}, {"animal": 2}, {"cat": 2}], [[1], [], [1]],
        build={"prefer_specific": True},
    )
    assert vocab.labels_of_post(["animal", "dog"]) == [0]
    assert vocab.labels_of_post(["animal"]) == [1]
    assert vocab.labels_of_post(["dog", "cat", "animal", "dog"]) == [0, 2]
    general = Vocabulary(vocab.wnids, vocab.names, vocab.frequencies, vocab.hashtags, vocab.hypernyms)
    assert general.labels_of_post(["animal", "dog"]) == [1, 0]
    assert general.hash != vocab.hash


def test_bad_settings_are_clear_errors(corpus, tmp_path):
    with pytest.raises(VocabularyError, match="needs top_k"):
        build_from_corpus(corpus, tmp_path / "v.json", mode="topk")
    with pytest.raises(VocabularyError, match="unknown vocabulary mode"):
        build_from_corpus(corpus, tmp_path / "v.json", mode="verbs")
    with pytest.raises(VocabularyError, match="empty vocabulary"):
        build_from_corpus(corpus, tmp_path / "v.json", mode="raw", min_count=100)
    assert vocab_cli.main(["build", "--corpus", str(tmp_path / "none"), "--mode", "raw", "--output", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


# --- WordNet modes (real resolver and WordNet 3.0) ---------------------------------------


@pytest.fixture(scope="module")
def wordnet_vocabs(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("wn")
    out = {}
    for mode, kw in [
        ("nouns", {}),
        ("imagenet1k", {}),
        ("topk", {"top_k": 3}),
        ("min_count", {"min_count": 2}),
        ("nouns-specific", {"prefer_specific": True}),
        ("nouns-food", {"under": ["food.n.01"]}),
        ("nouns-within", {"within": ["dog.n.01", "n07873807"]}),  # pizza by wnid
    ]:
        mode_name = mode.split("-")[0]
        out[mode] = build_from_corpus(corpus, root / f"{mode}.json", mode=mode_name, **kw)
    return out


def test_nouns_merge_synonyms_into_one_synset(wordnet_vocabs):
    v = wordnet_vocabs["nouns"]
    dog = v.label_of("dog")
    assert dog is not None and v.names[dog] == "dog.n.01" and v.wnids[dog] == "n02084071"
    assert v.label_of("Dog") == dog
    # #car and #automobile are lemmas of one synset: one label, both hashtags merged.
    car = v.label_of("car")
    assert car is not None and v.label_of("automobile") == car
    assert v.hashtags[car] == {"automobile": 1, "car": 1} and v.frequencies[car] == 2
    assert v.label_of("tbt") is None and v.label_of("instagood") is None
    assert v.build["resolver_fingerprint"]
    assert 0 < v.coverage["post_share"] <= 12 / 13


def test_imagenet1k_mode_keeps_only_imagenet_wnids(wordnet_vocabs):
    v = wordnet_vocabs["imagenet1k"]
    wnids = set(imagenet1k_wnids())
    assert v.num_classes >= 2 and all(w in wnids for w in v.wnids)
    assert v.label_of("pizza") is not None and v.label_of("strawberry") is not None
    assert v.label_of("animal") is None  # animal.n.01 is not an ImageNet-1k class


def test_within_keeps_only_the_given_synsets(wordnet_vocabs, corpus, tmp_path):
    v = wordnet_vocabs["nouns-within"]
    assert sorted(v.names) == ["dog.n.01", "pizza.n.01"]
    assert v.label_of("puppy") is None and v.label_of("cat") is None
    assert v.frequencies[v.label_of("dog")] == wordnet_vocabs["nouns"].frequencies[wordnet_vocabs["nouns"].label_of("dog")]
    with pytest.raises(VocabularyError, match="--within 'no_such.n.01'"):
        build_from_corpus(corpus, tmp_path / "v.json", mode="nouns", within=["no_such.n.01"])
    with pytest.raises(VocabularyError, match="--within"):
        build_from_corpus(corpus, tmp_path / "v.json", mode="raw", within=["dog.n.01"])
    (tmp_path / "within.txt").write_text("dog.n.01\n\nn07873807\n")
    assert vocab_cli.main(["build", "--corpus", str(corpus), "--mode", "nouns", "--within-file",
                           str(tmp_path / "within.txt"), "--output", str(tmp_path / "w.json")]) == 0
    assert Vocabulary.load(tmp_path / "w.json").wnids == v.wnids
    assert vocab_cli.main(["build", "--corpus", str(corpus), "--mode", "nouns", "--within-file",
                           str(tmp_path / "missing.txt"), "--output", str(tmp_path / "m.json")]) == 1


def test_topk_and_min_count_filter_nouns(wordnet_vocabs):
    nouns = wordnet_vocabs["nouns"]
    assert wordnet_vocabs["topk"].wnids == nouns.wnids[:3]
    mc = wordnet_vocabs["min_count"]
    assert mc.wnids == [w for w, f in zip(nouns.wnids, nouns.frequencies) if f >= 2]


def test_prefer_specific_and_subtree_from_wordnet(wordnet_vocabs):
    v = wordnet_vocabs["nouns-specific"]
    dog, animal = v.label_of("dog"), v.label_of("animal")
    assert animal in v.hypernyms[dog]
    assert v.labels_of_post(["dog", "animal"]) == [dog]
    food = wordnet_vocabs["nouns-food"]
    assert food.label_of("pizza") is not None and food.label_of("dog") is None
    assert np.all(np.asarray(food.frequencies) > 0)
