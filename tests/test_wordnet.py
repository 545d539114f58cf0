"""The compiled WordNet 3.0 index: agrees with NLTK's reader, loads fast, is version-checked."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from weaksup import wordnet
from weaksup.wordnet import WordNetError, WordNetIndex, load_index


@pytest.fixture(scope="session")
def index() -> WordNetIndex:
    return load_index()


@pytest.fixture(scope="session")
def nltk_wn():
    """NLTK's own reader over the same database (slow to build; once per session)."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    src = wordnet.locate()
    assert src is not None, "WordNet 3.0 not installed; run `make setup`"
    wordnet.register_nltk_path()
    import nltk.data

    if str(src.parent.parent) not in nltk.data.path:
        nltk.data.path.append(str(src.parent.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WordNetCorpusReader(str(src), None)


def test_imagenet_wnids(index: WordNetIndex) -> None:
    assert index.version == "3.0"
    assert index.synset("dog.n.01").wnid == "n02084071"
    assert index.synset("n02084071").name == "dog.n.01"
    # A few ImageNet-1k classes by wnid.
    assert index.synset("n02123045").name == "tabby.n.01"
    assert index.synset("n01440764").name == "tench.n.01"
    assert index.synset("tiger.n.02").lexname == "noun.animal"
    with pytest.raises(KeyError):
        index.synset("nosuchthing.n.01")


def test_agrees_with_nltk_on_random_synsets(index: WordNetIndex, nltk_wn) -> None:
    rng = random.Random(0)
    rows = rng.sample(range(len(index)), 300)
    assert len(index) == 82115  # WordNet 3.0 noun synsets
    for r in rows:
        ours = index.synset(r)
        theirs = nltk_wn.synset_from_pos_and_offset("n", ours.offset)
        assert ours.name == theirs.name()
        assert ours.lexname == theirs.lexname()
        assert list(ours.lemmas) == theirs.lemma_names()
        assert ours.depth == theirs.min_depth()
        closure = {s.name() for s in theirs.closure(lambda s: s.hypernyms() + s.instance_hypernyms())}
        assert set(ours.hypernyms) == closure
        below = {s.name() for s in theirs.hyponyms() + theirs.instance_hyponyms()}
        assert sorted(index.names[h] for h in index.hyponym_rows(r)) == sorted(below)


def test_sense_order_and_counts_match_nltk(index: WordNetIndex, nltk_wn) -> None:
    for lemma in ["dog", "cake", "crane", "bass", "golden_retriever", "mouse", "pool"]:
        ours = [(index.names[r], c) for r, c in index.noun_senses(lemma)]
        theirs = [
            (s.name(), next(l.count() for l in s.lemmas() if l.name().lower() == lemma))
            for s in nltk_wn.synsets(lemma, "n")
        ]
        assert ours == theirs


def test_lemmatize_noun(index: WordNetIndex, nltk_wn) -> None:
    assert index.lemmatize_noun("geese") == ["goose"]
    assert index.lemmatize_noun("mice") == ["mouse"]
    assert index.lemmatize_noun("puppies") == ["puppy"]
    assert index.lemmatize_noun("knives") == ["knife"]
    assert index.lemmatize_noun("churches") == ["church"]
    assert index.lemmatize_noun("glasses")[:2] == ["glasses", "glass"]
    assert index.lemmatize_noun("xqzzy") == []
    for form in ["dogs", "leaves", "boxes", "women", "berries", "geese", "mice", "buses"]:
        assert index.lemmatize_noun(form)[0] == nltk_wn.morphy(form, "n")


def test_hyponymy(index: WordNetIndex) -> None:
    assert index.is_hyponym("golden_retriever.n.01", "dog.n.01")
    assert index.is_hyponym("dog.n.01", "dog.n.01")
    assert index.is_hyponym("crane.n.05", "bird.n.01")
    assert not index.is_hyponym("crane.n.04", "bird.n.01")
    assert not index.is_hyponym("dog.n.01", "golden_retriever.n.01")
    # Instance hypernyms count too: Paris is an instance of a national capital.
    assert index.is_hyponym("paris.n.01", "city.n.01")
    kinds = [index.names[h] for h in index.hyponym_rows(index.row("pen.n.02"))]
    assert "sty.n.02" in kinds and "fold.n.06" in kinds and len(kinds) == 9
    assert index.row("paris.n.01") in index.hyponym_rows(index.row("national_capital.n.01"))


def test_other_parts_of_speech(index: WordNetIndex) -> None:
    assert index.pos_count("happy", "adj") is not None and index.pos_count("happy", "adj") > 0
    assert index.pos_count("happy", "noun") is None
    assert index.pos_count("run", "verb") > index.pos_count("run", "noun")


def test_index_loads_from_its_compiled_file_alone(index: WordNetIndex, tmp_path: Path,
                                                  monkeypatch) -> None:
    """Loading reads the one compiled file, never WordNet's text database (its load time,
    <= 1 s, is measured by benchmarks/resolver.py)."""
    def no_text_database():
        raise AssertionError("loading the compiled index looked for WordNet's text files")

    monkeypatch.setattr(wordnet, "locate", no_text_database)
    copy = tmp_path / "index.npz"
    copy.write_bytes(index.path.read_bytes())
    loaded = WordNetIndex(copy)
    assert loaded.synset("dog.n.01").wnid == "n02084071"
    assert loaded.names == index.names


def test_rejects_other_wordnet_versions(tmp_path: Path) -> None:
    src = wordnet.locate()
    for f in wordnet.DATABASE_FILES:
        (tmp_path / f).symlink_to(src / f)
    (tmp_path / "index.noun").unlink()
    # WordNet 2.1 had dog.n.01 at a different offset.
    lines = (src / "index.noun").read_text().splitlines(keepends=True)
    (tmp_path / "index.noun").write_text(
        "".join(l.replace("02084071", "02001223") if l.startswith("dog ") else l for l in lines)
    )
    with pytest.raises(WordNetError, match="not WordNet 3.0"):
        wordnet.build_index(tmp_path, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_install_is_idempotent() -> None:
    """`make setup` has installed once; running it again changes nothing and is quick."""
    target = wordnet.install(verbose=False)
    lexnames = (target / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45 and lexnames[18].split("\t")[:2] == ["18", "noun.person"]
    built = wordnet.index_path().stat().st_mtime_ns
    wordnet.install(verbose=False)
    assert wordnet.index_path().stat().st_mtime_ns == built
    idx = WordNetIndex(wordnet.index_path())
    assert idx.synset("dog.n.01").wnid == "n02084071"
    assert np.all(idx.depths >= 0)


def test_install_fails_fast_without_wordnet(tmp_path: Path, monkeypatch) -> None:
    """No Debian files, no NLTK copy: nltk.download is tried; offline it is a clear
    error naming what to install, not a hang."""
    import nltk.data

    monkeypatch.setenv("WEAKSUP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv(wordnet.ENV_VAR, raising=False)
    monkeypatch.setattr(wordnet, "DEBIAN_DIR", tmp_path / "no-debian-wordnet")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "no-nltk-data")])
    try:
        target = wordnet.install(verbose=False)
    except WordNetError as e:
        assert "apt-get install wordnet-base wordnet-sense-index" in str(e)
        assert not wordnet.index_path().exists()
    else:  # the network allowed nltk.download('wordnet'): it must then be 3.0
        assert WordNetIndex(wordnet.index_path()).synset("dog.n.01").wnid == "n02084071"
        assert target == wordnet.nltk_wordnet_dir()
    finally:
        wordnet.load_index.cache_clear()


def test_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WEAKSUP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(wordnet.ENV_VAR, str(wordnet.locate()))
    wordnet.index_path().parent.mkdir(parents=True)
    wordnet.index_path().write_bytes(b"not an npz file")
    with pytest.raises(WordNetError, match="unreadable"):
        WordNetIndex(wordnet.index_path())
    wordnet.load_index.cache_clear()
    try:
        assert wordnet.load_index().synset("dog.n.01").wnid == "n02084071"
    finally:
        wordnet.load_index.cache_clear()
