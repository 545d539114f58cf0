"""Corpus sources on real-format inputs with bad items mixed in."""

from collections import Counter

import pytest

import corpus_inputs
from weaksup.corpus.record import Post
from weaksup.corpus.sources import SOURCES, Skip, SourceError, get_source
from weaksup.corpus.sources.base import DEFAULT_MAX_HASHTAGS


def read_all(source):
    posts, skips = {}, Counter()
    examples = {}
    for unit in source.work_units():
        for item in source.read(unit):
            if isinstance(item, Skip):
                skips[item.reason] += 1
                examples.setdefault(item.reason, []).append(item.item)
            else:
                assert isinstance(item, Post)
                posts.setdefault(item.id, []).append(item)
    return posts, skips, examples


def test_registry_errors_are_clear(tmp_path):
    assert set(SOURCES) >= {"instaloader", "webdataset", "jsonl", "csv", "yfcc", "emojigram"}
    with pytest.raises(SourceError, match="unknown source 'nope'"):
        get_source("nope")
    with pytest.raises(SourceError, match="no option.*colour"):
        get_source("jsonl", str(tmp_path), colour="red")
    with pytest.raises(SourceError, match="no such file"):
        get_source("webdataset", str(tmp_path / "missing"))


def test_instaloader(tmp_path):
    expect = corpus_inputs.instaloader_folder(tmp_path)
    posts, skips, examples = read_all(get_source("instaloader", str(tmp_path)))
    # BAAA111 appears in two download folders: the source yields both, the build dedupes
    assert set(posts) == expect["posts"] | {"natgeo/2019-06-07_13-00-00_UTC"}
    assert len(posts["BAAA111"]) == 2
    assert skips == {"missing_caption": 1, "missing_image": 1, "no_hashtags": 1}
    p = posts["BAAA111"][0]
    assert p.hashtags == ("sunset", "beach", "Travel") and p.meta["taken_at"] == 1559390400
    side = posts["BBBB222_2"][0]
    assert side.hashtags == ("dogs", "puppy") and side.meta["sidecar"] == {"index": 2, "count": 3}
    bad_utf8 = posts["natgeo/2019-06-05_11-00-00_UTC"][0]
    assert "invalid_utf8" in bad_utf8.meta["fixes"] and bad_utf8.hashtags == ("coffee", "morning")
    spam = posts["natgeo/2019-06-06_12-00-00_UTC"][0]
    assert len(spam.hashtags) == DEFAULT_MAX_HASHTAGS and "hashtags_capped" in spam.meta["fixes"]
    assert "caption_truncated" in spam.meta["fixes"] and len(spam.caption) == 20_000
    # the zero-byte image is read fine by the source; the pipeline's image check skips it
    assert "natgeo/2019-06-07_13-00-00_UTC" in posts
    assert examples["missing_image"] == ["natgeo/2019-06-04_10-00-00_UTC"]


def test_instaloader_group_per_post(tmp_path):
    corpus_inputs.instaloader_folder(tmp_path)
    posts, _, _ = read_all(get_source("instaloader", str(tmp_path), group="post", posts_per_unit=2))
    assert "BBBB222" in posts and not any(k.startswith("BBBB222_") for k in posts)


def test_webdataset_tar_and_parquet(tmp_path):
    expect = corpus_inputs.webdataset_shards(tmp_path)
    posts, skips, examples = read_all(get_source("webdataset", str(tmp_path)))
    assert set(posts) == expect["posts"] | {"000000012", "000000013"}  # image check is later
    assert posts["000000000"][0].hashtags == ("bike", "city0")
    assert posts["000000003"][0].hashtags == ("cat",)  # caption from the parquet
    assert "caption_from_parquet" in posts["000000003"][0].meta["fixes"]
    assert "invalid_utf8" in posts["000000005"][0].meta["fixes"]
    assert skips == {"unsafe_path": 4, "no_hashtags": 1, "missing_image": 1, "download_failed": 1,
                     "corrupt_archive": 1}
    assert any("/etc/evil.jpg" in x for x in examples["unsafe_path"])
    assert any("../../escape.txt" in x for x in examples["unsafe_path"])
    assert not (tmp_path.parent / "escape.txt").exists()


def test_webdataset_nouns_from_captions_without_hashtags(tmp_path):
    corpus_inputs.webdataset_shards(tmp_path)
    posts, skips, _ = read_all(get_source("webdataset", str(tmp_path), nouns=True))
    dog = posts["000000001"][0]
    assert "dog" in dog.hashtags and "park" in dog.hashtags and dog.meta["tags_from"] == "nouns"
    assert "no_hashtags" not in skips


def test_jsonl_manifest(tmp_path):
    expect = corpus_inputs.manifest_inputs(tmp_path)
    for chunk in (1 << 20, 40):  # one unit, and many byte-range units
        posts, skips, _ = read_all(get_source("jsonl", str(tmp_path / "posts.jsonl"), bytes_per_unit=chunk))
        assert set(posts) == expect["jsonl"] | {"j6"}
        assert len(posts["j0"]) == 2  # duplicate id: dropped by the build
        assert posts["j1"][0].hashtags == ("explicit", "tags")
        assert posts["j0"][0].hashtags == ("world", "Hello")
        assert skips == {"bad_line": 1, "missing_image": 1, "unsafe_path": 2, "no_hashtags": 1}


def test_csv_manifest(tmp_path):
    expect = corpus_inputs.manifest_inputs(tmp_path)
    posts, skips, _ = read_all(get_source("csv", str(tmp_path / "posts.csv")))
    assert set(posts) == expect["csv"]
    assert posts["c0"][0].hashtags == ("caption",) and "\n" in posts["c0"][0].caption
    assert posts["c1"][0].hashtags == ("a", "b", "c")
    assert posts["c4"][0].meta["fixes"] == ["invalid_utf8"]
    assert "fixes" not in posts["c0"][0].meta
    assert skips == {"missing_image": 1, "unsafe_path": 1}


def test_yfcc(tmp_path):
    expect = corpus_inputs.yfcc_dataset(tmp_path)
    for chunk in (1 << 20, 100):
        posts, skips, _ = read_all(get_source("yfcc", str(tmp_path / "yfcc100m_dataset"), bytes_per_unit=chunk))
        assert set(posts) == expect["posts"] | {"555"}  # 555's image is rejected by the pipeline
        gg = posts["6985418911"][0]
        assert gg.hashtags == ("golden gate bridge", "san francisco", "café", "fog")
        assert gg.caption == "Golden Gate\nA foggy morning & a bridge"
        assert posts["3457721234"][0].meta["file"].startswith("000/24a/")
        assert skips == {"video": 1, "missing_image": 1, "no_hashtags": 1, "bad_line": 1}
    with pytest.raises(SourceError, match="image folder"):
        get_source("yfcc", str(tmp_path / "yfcc100m_dataset"), images=str(tmp_path / "nope"))
