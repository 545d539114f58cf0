"""Labels from captions (weaksup.hashtags.text), the CatLIP baseline, and caption-labelled corpora."""

import io
import json
import tarfile
from collections import Counter

import corpus_inputs
import pytest

from weaksup.corpus import cli
from weaksup.corpus.record import Post
from weaksup.corpus.shards import Corpus
from weaksup.corpus.sources import Skip, SourceError, get_source
from weaksup.hashtags.text import FUNCTION_WORDS, caption_words, get_labeller


@pytest.fixture(scope="module")
def weaksup_labeller():
    return get_labeller("weaksup")


def _synsets(labeller, caption):
    return [label.synset for label in labeller.labels(caption)]


def test_multiword_lemmas_longest_match_first(weaksup_labeller):
    cands = weaksup_labeller.candidates(
        "Kids eating ice cream cones and hot dogs at the farmers market")
    assert [c[0] for c in cands] == ["kids", "ice-cream_cone", "hot_dogs", "farmer's_market"]
    assert [c[1] for c in cands] == ["Kids", "ice cream cones", "hot dogs", "farmers market"]
    got = _synsets(weaksup_labeller, "My golden retriever next to a hot air balloon")
    assert got == ["golden_retriever.n.01", "hot-air_balloon.n.01"]
    # a closed compound written open is one label, not two; a clause is not a compound
    got = _synsets(weaksup_labeller, "a pine apple under the lamp post")
    assert [s.split(".")[0] for s in got] == ["pineapple", "lamppost"]
    assert "sunset.n.01" not in _synsets(weaksup_labeller, "the sun sets")


def _lemmas(labeller, caption):
    return [labeller.resolver.resolve(key).lemma for key, _ in labeller.candidates(caption)]


def test_plurals_and_possessives(weaksup_labeller):
    assert _lemmas(weaksup_labeller, "the children's toys") == ["child", "toy"]
    assert _lemmas(weaksup_labeller, "The dogs' bowls") == ["dog", "bowl"]
    assert _synsets(weaksup_labeller, "two geese and three puppies") == ["goose.n.01", "puppy.n.01"]
    # a lemma WordNet spells with a possessive is one phrase (and a time, so no label)
    assert _lemmas(weaksup_labeller, "farmer's market on New Year's Eve") == ["farmer's_market"]
    words = caption_words("The dogs' bowls and Mary's cat, don't they?")
    assert [(w.form, w.possessive) for w in words] == [
        ("the", False), ("dogs", True), ("bowls", False), ("and", False), ("mary", True),
        ("cat", False), ("they", False)]


def test_no_labels_from_stop_words_or_abstract_nouns(weaksup_labeller):
    assert weaksup_labeller.labels("I will be there at one o'clock, can you come?") == []
    assert weaksup_labeller.labels("So much love and happiness today!") == []
    # "in front of" locates; it names nothing
    assert _lemmas(weaksup_labeller, "a bicycle in front of the house") == ["bicycle", "house"]
    assert _lemmas(weaksup_labeller, "a cake with strawberries on top") == ["cake", "strawberry"]
    captions = [
        "A man and his dog are walking up the hill in the morning",
        "This is what it looks like when you have a lot of time on your hands",
        "Here are some of the things that we did on our trip to the lake",
    ]
    for c in captions:
        for label in weaksup_labeller.labels(c):
            assert not set(label.phrase.casefold().split()) & FUNCTION_WORDS, (c, label)


def test_words_used_as_verbs_are_not_labels_unless_marked_as_nouns(weaksup_labeller):
    got = _synsets(weaksup_labeller, "The sun sets behind the mountains while the kids play")
    assert "sun.n.01" in got and "mountain.n.01" in got
    assert not any(s.startswith(("set.", "play.")) for s in got)
    assert weaksup_labeller.candidates("a watch on the table")[0] == ("watch", "watch")


def test_terms_are_lemmas_that_resolve_to_the_chosen_sense(weaksup_labeller):
    resolver = weaksup_labeller.resolver
    for caption in ("A tiger resting under a tree", "hot dogs with mustard", "the children's toys",
                    "A crane standing in the water near a heron"):
        for label in weaksup_labeller.labels(caption):
            assert resolver.resolve(label.term).synset == label.synset
    assert [l.term for l in weaksup_labeller.labels("two geese and three puppies")] == ["goose", "puppy"]


def test_catlip_labeller_takes_first_senses_without_compounds():
    catlip = get_labeller("catlip")
    # First senses, whatever the caption means: tiger.n.01 is a fierce person, crane.n.01
    # the poet Hart Crane; no context, no depictability, no multiword lemmas.
    assert _synsets(catlip, "A tiger and a crane near the golden retriever") == [
        "tiger.n.01", "crane.n.01", "retriever.n.01"]
    # Kept only when the lemma's first synset is lemma.n.01: kid's is child.n.01, it's
    # information_technology.n.01.
    assert _synsets(catlip, "it is kids and dogs") == ["dog.n.01"]
    assert [l.term for l in catlip.labels("two geese")] == ["two", "goose"]
    assert [l.term for l in catlip.labels("Hot dogs")] == ["dog"]  # no compounds: hot is no noun


def _captioned_shard(root):
    """An img2dataset shard of alt-text captions (no hashtags) with real JPEGs."""
    root.mkdir(parents=True, exist_ok=True)
    captions = ["A golden retriever playing with a ball in the park",
                "Kids eating ice cream cones at the fair",
                "Fresh strawberries in a white bowl",
                "So much love today",  # nothing depictable: skipped as no_hashtags
                "Sunset over the lake with a sailboat #sailing"]
    with tarfile.open(root / "00000.tar", "w") as tar:
        for i, caption in enumerate(captions):
            key = f"{i:09d}"
            for name, data in ((f"{key}.jpg", corpus_inputs.jpeg(700 + i)), (f"{key}.txt", caption.encode()),
                               (f"{key}.json", json.dumps({"key": key, "caption": caption}).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return captions


def test_webdataset_captions_become_a_labelled_corpus(tmp_path, capsys):
    _captioned_shard(tmp_path / "shards")
    base = ["build", "--source", "webdataset", "--input", str(tmp_path / "shards"),
            "--num-shards", "1", "--workers", "1", "--no-progress"]
    assert cli.main(base + ["--output", str(tmp_path / "tags")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] == 1 and summary["skipped"]["no_hashtags"] == 4  # hashtags only: today's default

    assert cli.main(base + ["--output", str(tmp_path / "caps"), "--labels", "caption"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] == 4 and summary["skipped"] == {"no_hashtags": 1}
    with Corpus(tmp_path / "caps") as corpus:
        posts = {p.id: p for p in corpus}
    dog = posts["000000000"]
    assert dog.hashtags[:2] == ("golden_retriever", "ball")
    assert dog.meta["tags_from"] == "caption" and dog.meta["caption_synsets"][0] == "golden_retriever.n.01"
    assert "ice-cream_cone" in posts["000000001"].hashtags
    assert "sailing" not in posts["000000004"].hashtags  # caption labels only

    assert cli.main(base + ["--output", str(tmp_path / "both"), "--labels", "both"]) == 0
    capsys.readouterr()
    with Corpus(tmp_path / "both") as corpus:
        sail = next(p for p in corpus if p.id == "000000004")
    assert sail.hashtags[0] == "sailing" and "sailboat" in sail.hashtags

    assert cli.main(base + ["--output", str(tmp_path / "catlip"), "--labels", "caption",
                            "--labeller", "catlip"]) == 0
    capsys.readouterr()
    with Corpus(tmp_path / "catlip") as corpus:
        dog = next(p for p in corpus if p.id == "000000000")
    assert "retriever" in dog.hashtags and "golden_retriever" not in dog.hashtags


def test_bad_label_options_are_usage_errors(tmp_path, capsys):
    _captioned_shard(tmp_path / "shards")
    with pytest.raises(SourceError, match="labels='nouns'"):
        get_source("webdataset", str(tmp_path / "shards"), labels="nouns")
    assert cli.main(["build", "--source", "webdataset", "--input", str(tmp_path / "shards"),
                     "--output", str(tmp_path / "o"), "--option", "labeller=clip"]) == 2
    assert "labeller='clip'" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_manifest_captions_become_labelled_posts(tmp_path, fmt):
    """JSONL and CSV manifests of alt-text captions take the same label options."""
    rows = [("a", "Two tabby cats asleep on a wooden bench", ""),
            ("b", "My friend's sailboat at the harbour", "sailing"),
            ("c", "Feeling grateful", "")]
    for pid, _, _ in rows:
        (tmp_path / f"{pid}.jpg").write_bytes(corpus_inputs.jpeg(900 + ord(pid)))
    manifest = tmp_path / f"posts.{fmt}"
    if fmt == "jsonl":
        manifest.write_text("".join(json.dumps({"id": p, "image": f"{p}.jpg", "caption": c, "tags": t}) + "\n"
                                    for p, c, t in rows))
    else:
        manifest.write_text("id,image,caption,tags\n" + "".join(f'{p},{p}.jpg,"{c}",{t}\n' for p, c, t in rows))

    posts, skips = _read(get_source(fmt, str(manifest)))
    assert set(posts) == {"b"} and skips == {"no_hashtags": 2}  # tags only: the default
    posts, skips = _read(get_source(fmt, str(manifest), labels="caption"))
    assert set(posts) == {"a", "b"} and skips == {"no_hashtags": 1}
    assert posts["a"].hashtags[:2] == ("tabby_cat", "bench")  # the two-word lemma, singular and posts["a"].meta["tags_from"] == "caption"
    assert "sailboat" in posts["b"].hashtags and "sailing" not in posts["b"].hashtags
    posts, _ = _read(get_source(fmt, str(manifest), labels="both"))
    assert posts["b"].hashtags[0] == "sailing" and "sailboat" in posts["b"].hashtags
    with pytest.raises(SourceError, match="labeller='clip'"):
        get_source(fmt, str(manifest), labeller="clip")


def _read(source):
    posts, skips = {}, Counter()
    for unit in source.work_units():
        for item in source.read(unit):
            if isinstance(item, Skip):
                skips[item.reason] += 1
            else:
                assert isinstance(item, Post)
                posts[item.id] = item
    return posts, skips


def test_yfcc_tags_machine_tags_and_title(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "1001.jpg").write_bytes(corpus_inputs.jpeg(800))
    (images / "1002.jpg").write_bytes(corpus_inputs.jpeg(801))
    lines = [
        corpus_inputs.yfcc_line(line="0", id="1001", title="Golden+retriever+at+the+beach",
                                description="our+dog%27s+first+swim", user_tags="vacation,2019",
                                machine_tags="taxonomy%3Acommon%3Dred+fox,geo%3Alat%3D37.77", marker="0"),
        corpus_inputs.yfcc_line(line="1", id="1002", title="IMG_0042", user_tags="", marker="0"),
    ]
    meta = tmp_path / "yfcc100m_dataset"
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")

    posts, skips = _read(get_source("yfcc", str(meta)))
    assert posts["1001"].hashtags == ("vacation", "2019", "red fox")  # user tags, then machine tag values
    assert skips == {"no_hashtags": 1}

    posts, _ = _read(get_source("yfcc", str(meta), labels="caption"))
    assert posts["1001"].hashtags == ("golden_retriever", "beach", "dog")
    assert posts["1001"].caption == "Golden retriever at the beach\nour dog's first swim"

    posts, skips = _read(get_source("yfcc", str(meta), labels="both"))
    assert posts["1001"].hashtags == ("vacation", "2019", "red fox", "golden_retriever", "beach", "dog")
    assert skips == {"no_hashtags": 1}  # a camera file name names nothing
