"""EmojiGram: the concept table, the artwork, and the generated posts."""

from __future__ import annotations

import io
import pickle
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from weaksup.corpus.emojigram import EmojiGramSource, assets, concepts, render
from weaksup.corpus.record import decode_post, encode_post
from weaksup.corpus.sources.base import Skip, SourceError, get_source
from weaksup.hashtags.extract import extract_hashtags

TAG_RE = re.compile(r"^[A-Za-z0-9_]+$")


@pytest.fixture(scope="module")
def table() -> tuple[concepts.Concept, ...]:
    return concepts.load_concepts()


def test_concepts_are_single_emoji_drawn_by_two_artists(table):
    assert len(table) > 800  # ~1,100 with the Debian packages of this machine
    ids = [c.id for c in table]
    assert len(set(ids)) == len(ids)
    for c in table:
        cps = [ord(ch) for ch in c.emoji if ch != "\ufe0f"]
        assert len(cps) == 1, c
        assert not 0x1F3FB <= cps[0] <= 0x1F3FF, c  # no skin-tone modifiers
        assert len(c.artists) >= 2 and set(c.artists) <= set(assets.ARTISTS), c
        assert c.name and c.group != "Component"
    by_name = {c.name: c for c in table}
    assert "frankfurter" in by_name["hot dog"].keywords
    assert by_name["dog"].id == "dog"
    assert {"Food & Drink", "Animals & Nature", "Objects"} <= {c.group for c in table}


def test_every_artist_renders_a_sample_of_its_concepts(table):
    rng = np.random.default_rng(0)
    sample = [table[int(k)] for k in rng.choice(len(table), 40, replace=False)]
    for artist in assets.ARTISTS:
        for c in sample:
            if artist not in c.artists:
                with pytest.raises(assets.AssetError):
                    assets.glyph(artist, c.emoji)
                continue
            g = assets.glyph(artist, c.emoji)
            assert g.shape == (assets.GLYPH_PX, assets.GLYPH_PX, 4) and g.dtype == np.uint8
            ink = (g[..., 3] > 128).mean()
            assert ink > 0.02, (artist, c.id, ink)  # not an empty .notdef
            # a drawing, not a filled box (key-cap emoji are opaque squares, with detail)
            detail = g[..., 3].astype(float).std() + g[..., :3].astype(float).std(axis=(0, 1)).max()
            assert detail > 10, (artist, c.id)
    # The artists really draw differently: the same concept differs between artists.
    dog = {a: assets.glyph(a, "\U0001f415").astype(np.float32) for a in assets.ARTISTS}
    assert np.abs(dog["noto"] - dog["emojione"]).mean() > 10
    assert np.abs(dog["noto"] - dog["symbola"]).mean() > 10


def test_font_cmap_reader_matches_known_coverage():
    noto = assets.coverage("noto")
    symbola = assets.coverage("symbola")
    assert 0x1F415 in noto and 0x1F415 in symbola  # dog
    assert ord("A") in symbola and ord("A") not in noto
    assert 0x1FAE0 not in symbola  # melting face (Emoji 14) is newer than Symbola


def test_user_style_hashtag_surfaces():
    rng = np.random.default_rng(1)
    seen = Counter(concepts.surface(["hot", "dog"], rng) for _ in range(3000))
    assert seen["hotdog"] > 600
    for form in ("hotdogs", "HotDog", "hot_dog", "hotdogsofinstagram", "instahotdog", "hotdoglover"):
        assert seen[form] > 0, form
    assert all(TAG_RE.match(t) for t in seen)
    assert concepts.plural("box") == "boxes" and concepts.plural("berry") == "berries"
    assert concepts.plural("books") == "books"
    assert concepts.words("man’s shoe") == ["mans", "shoe"]
    assert concepts.words("piñata") == ["pinata"]


def _source(**kw) -> EmojiGramSource:
    base = dict(num_posts=60, seed=3, image_size=48, unit_size=16)
    base.update(kw)
    return EmojiGramSource(**base)


def test_posts_are_deterministic_and_independent_of_units():
    a, b = _source(), _source(unit_size=7, num_posts=200)
    posts_a = [p for u in a.work_units() for p in a.read(u)]
    assert a.work_units() == ["0:16", "16:32", "32:48", "48:60"]
    posts_b = [p for p in b.read("0:60")]
    assert len(posts_a) == 60 and all(not isinstance(p, Skip) for p in posts_a)
    assert posts_a == posts_b  # frozen dataclasses: ids, image bytes, tags, meta
    assert [p.id for p in posts_a[:3]] == ["emojigram-0", "emojigram-1", "emojigram-2"]
    clone = pickle.loads(pickle.dumps(a))  # as a Beam or multiprocessing worker gets it
    assert list(clone.read("40:60")) == posts_a[40:]
    other = _source(seed=4)
    diff = sum(p.image != q.image for p, q in zip(posts_a, other.read("0:60")))
    assert diff == 60


def test_post_contents(table):
    src = _source(num_posts=80, image_size=40)
    ids = {c.id: c for c in table}
    artists = Counter()
    n_concepts = Counter()
    for p in src.read("0:80"):
        assert p.source == "emojigram"
        im = Image.open(io.BytesIO(p.image))
        assert im.format == "JPEG" and im.size == (40, 40) and im.mode == "RGB"
        assert all(TAG_RE.match(t) for t in p.hashtags)
        assert len({t.lower() for t in p.hashtags}) == len(p.hashtags)
        assert extract_hashtags(p.caption) == list(p.hashtags)
        assert p.meta["artist"] in assets.DEFAULT_PRETRAIN_ARTISTS
        for cid in p.meta["concepts"]:
            assert p.meta["artist"] in ids[cid].artists
        n_concepts[len(p.meta["concepts"])] += 1
        artists[p.meta["artist"]] += 1
        assert decode_post(encode_post(p)) == p
    assert set(n_concepts) <= {1, 2, 3} and n_concepts[1] > n_concepts[3] > 0
    assert set(artists) == set(assets.DEFAULT_PRETRAIN_ARTISTS)


def test_clean_tags_come_from_the_concepts_and_wrong_tags_do_not(table):
    ids = {c.id: c for c in table}

    def vocab(cid: str) -> set[str]:
        c = ids[cid]
        return {w for term in (c.name, *c.keywords, *c.emojione_keywords) for w in concepts.words(term)}

    clean = _source(tag_dropout=0.0, wrong_tag_rate=0.0, filler_rate=0.0, num_posts=40)
    for p in clean.read("0:40"):
        words = set().union(*(vocab(c) for c in p.meta["concepts"]))
        assert p.hashtags, p
        stems = {w[:-1] if w.endswith("y") else w for w in words}  # sunny -> #sunnies
        for tag in p.hashtags:
            assert any(w in tag.lower() for w in stems), (tag, p.meta)
    wrong = _source(tag_dropout=0.0, wrong_tag_rate=1.0, filler_rate=0.0, num_posts=40)
    hits = 0
    for p in wrong.read("0:40"):
        words = set().union(*(vocab(c) for c in p.meta["concepts"]))
        hits += sum(t.lower() in words for t in p.hashtags)
    total = sum(len(p.hashtags) for p in wrong.read("0:40"))
    assert hits < 0.1 * total
    filler = _source(tag_dropout=1.0, filler_rate=3.0, num_posts=40)
    tags = [t.lower() for p in filler.read("0:40") for t in p.hashtags]
    assert tags and set(tags) <= set(concepts.FILLER_TAGS)


def test_popularity_is_zipfian_and_configurable():
    zipf = _source(num_posts=400, image_size=16, max_emoji_per_post=1)
    flat = _source(num_posts=400, image_size=16, max_emoji_per_post=1, zipf_exponent=0.0)
    top = lambda s: Counter(p.meta["concepts"][0] for p in s.read("0:400")).most_common(1)[0][1]
    # rank-1 concept of ~1,100 under exponent 1 takes ~1/H(1100) ~ 13% of posts
    assert top(zipf) > 25
    assert top(flat) < 8
    ranks = np.argsort(np.argsort(-zipf.popularity))
    assert sorted(ranks.tolist()) == list(range(len(zipf.concepts)))
    assert not np.array_equal(zipf.popularity, _source(seed=9).popularity)


def test_image_size_and_format_options():
    small = next(iter(_source(image_size=24, image_format="png").read("0:1")))
    im = Image.open(io.BytesIO(small.image))
    assert im.format == "PNG" and im.size == (24, 24)
    big = next(iter(_source(image_size=96).read("0:1")))
    assert Image.open(io.BytesIO(big.image)).size == (96, 96)
    # A 64 px JPEG post stays a few kB: 100k posts fit comfortably on disk.
    sizes = [len(p.image) for p in _source(image_size=64).read("0:30")]
    assert 500 < np.mean(sizes) < 6000


def test_backgrounds_and_composition_vary():
    rng = np.random.default_rng(0)
    bgs = [render.background(rng, 32) for _ in range(40)]
    stds = [float(b.std(axis=(0, 1)).max()) for b in bgs]
    assert min(stds) < 1e-3 < max(stds)  # flat and non-flat backgrounds both occur
    img = render.render_glyphs("symbola", ["\U0001f415"], np.random.default_rng(5), 32)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8


def test_options_are_validated_and_built_by_name():
    with pytest.raises(SourceError, match="artist"):
        EmojiGramSource(artists="noto,picasso")
    with pytest.raises(SourceError, match="tag_dropout"):
        EmojiGramSource(tag_dropout=1.5)
    with pytest.raises(SourceError, match="input"):
        EmojiGramSource("/some/path")
    with pytest.raises(SourceError, match="work unit"):
        list(EmojiGramSource(num_posts=3).read("zero:3"))
    src = get_source("emojigram", None, num_posts="5", artists="emojione", seed="2")
    assert src.num_posts == 5 and src.artists == ("emojione",)
    assert {p.meta["artist"] for p in src.read("0:5")} == {"emojione"}


def test_concept_ids_close_the_world():
    ids = ("dog_face", "hot_dog", "rocket")
    src = EmojiGramSource(num_posts=200, concept_ids=",".join(ids), seed=3)
    shown = Counter(c for p in src.read("0:200") for c in p.meta["concepts"])
    assert set(shown) == set(ids)  # every one drawn, nothing else
    assert EmojiGramSource(concept_ids=list(ids)).concept_ids == tuple(sorted(ids))
    with pytest.raises(SourceError, match="unknown concept_ids not_an_emoji"):
        EmojiGramSource(concept_ids="dog_face,not_an_emoji")
    with pytest.raises(SourceError, match="concept_ids=7"):
        EmojiGramSource(concept_ids=7)
    # An artist who draws none of them is named.
    only = next(c for c in concepts.load_concepts() if "symbola" not in c.artists)
    with pytest.raises(SourceError, match="'symbola' draws no concept of concept_ids"):
        EmojiGramSource(num_posts=5, artists="symbola", concept_ids=only.id).post(0)


def test_clean_labels_are_the_concepts_shown_on_the_same_pictures():
    noisy = EmojiGramSource(num_posts=40, seed=5)
    clean = get_source("emojigram", None, num_posts="40", seed="5", clean_labels="true")
    for a, b in zip(noisy.read("0:40"), clean.read("0:40")):
        assert a.image == b.image and a.meta == b.meta
        assert list(b.hashtags) == a.meta["concepts"]  # exactly what the picture shows, no filler
    assert any(set(a.hashtags) != set(a.meta["concepts"]) for a in noisy.read("0:40"))
    with pytest.raises(SourceError, match="clean_labels='yes' is not true or false"):
        EmojiGramSource(clean_labels="yes")
