"""The picture cache: the same batches as decoding every crop, and used only where that holds."""

import re
import warnings

import numpy as np
import pytest

from hashtag_corpus import picture, write_corpus
from weaksup import augment, picture_cache
from weaksup import input_pipeline as ip
from weaksup.corpus.record import decode_post, encode_post, make_post
from weaksup.corpus.shards import Corpus
from weaksup.labels import build_from_corpus

TAGS = ["dog", "cat", "bird", "fish", "tree", "car", "boat", "cake"]
BROKEN = 7


@pytest.fixture(scope="module")
def small_pictures(tmp_path_factory):
    """40 posts of 32x32 pictures (JPEG and PNG), one of them undecodable."""
    root = tmp_path_factory.mktemp("cache")
    posts = [[TAGS[i % 8], TAGS[(i * 3) % 8]] for i in range(40)]
    corpus = write_corpus(root / "corpus", posts, bad_images=[BROKEN], image_size=(32, 32))
    build_from_corpus(corpus, root / "vocab.json", mode="raw")
    return corpus, root / "vocab.json"


def _run(small_pictures, batches, **kw):
    corpus, vocab = small_pictures
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        it = ip.make_pretrain_iterator(corpus, vocab, global_batch_size=8, image_size=24, seed=3,
                                       resampling="sqrt", label_noise=0.2, with_record_index=True,
                                       process_index=0, process_count=1, **kw)
        out = [next(it) for _ in range(batches)]
    return out, it.stats(), [str(w.message) for w in caught]


def test_cached_crops_are_the_decoded_crops(small_pictures, monkeypatch):
    # Three epochs of the 40 posts, so every post is cropped several times.
    decoded, decoded_stats, decoded_warnings = _run(small_pictures, 15, decoded_cache_mb=0)
    monkeypatch.setattr(augment, "train_crop", lambda *a, **k: pytest.fail("a crop decoded its JPEG"))
    cached, cached_stats, cached_warnings = _run(small_pictures, 15, decoded_cache_mb=64)
    for a, b in zip(decoded, cached):
        for key in ("image", "labels", "record"):
            np.testing.assert_array_equal(a[key], b[key])
    assert cached_stats == decoded_stats and cached_stats["skipped_unreadable"] >= 1
    # The same warnings (up to the addresses of Pillow's buffers in its messages).
    assert [re.sub("0x[0-9a-f]+", "", w) for w in cached_warnings] == \
        [re.sub("0x[0-9a-f]+", "", w) for w in decoded_warnings]
    assert any(f"record {BROKEN}: DecodeError" in w for w in cached_warnings)


def test_the_cache_holds_the_decoded_pictures_and_the_errors(small_pictures):
    corpus, _ = small_pictures
    source = Corpus(corpus).data_source()
    records = [r for r in range(40) if r != 3]
    cache = picture_cache.build(source, records, 40, budget_bytes=1 << 20)
    assert cache is not None and cache.pixels.shape == (38, 32, 32, 3)
    np.testing.assert_array_equal(cache[5], augment.decode(decode_post(source[5]).image))
    with pytest.raises(augment.DecodeError):
        cache[BROKEN]
    with pytest.raises(KeyError, match="record 3"):
        cache[3]


def _source(sizes, fmt="JPEG"):
    return [encode_post(make_post(f"p{i}", picture(i, size, fmt), ["dog"])) for i, size in enumerate(sizes)]


def test_the_cache_declines_pictures_of_several_sizes_or_over_the_budget():
    assert picture_cache.build(_source([(32, 32), (32, 32), (40, 32)]), range(3), 3, 1 << 20) is None
    # Four 32x32 pictures need 12 KiB.
    assert picture_cache.build(_source([(32, 32)] * 4), range(4), 4, 4 * 32 * 32 * 3) is not None
    assert picture_cache.build(_source([(32, 32)] * 4), range(4), 4, 4 * 32 * 32 * 3 - 1) is None


def test_crops_that_decode_at_a_reduced_scale_still_decode(tmp_path, monkeypatch):
    """64 px pictures cropped to 32 px (the demo's): a crop of the whole picture decodes at
    half scale, so it comes from the record; every other crop from the cache."""
    corpus = write_corpus(tmp_path / "c", [[TAGS[i % 8]] for i in range(24)], image_size=(64, 64))
    build_from_corpus(corpus, tmp_path / "v.json", mode="raw")
    decoded = []
    train_crop = augment.train_crop
    monkeypatch.setattr(augment, "train_crop", lambda *a, **k: decoded.append(1) or train_crop(*a, **k))
    # No threads, so that no prefetch of the first iterator counts in the second run.
    args = dict(global_batch_size=8, image_size=32, process_index=0, process_count=1, seed=5, crop_min_area=0.9,
                num_threads=0)
    want = [next(it) for it in [ip.make_pretrain_iterator(corpus, tmp_path / "v.json", decoded_cache_mb=0, **args)]
            for _ in range(20)]
    assert len(decoded) >= 160
    decoded.clear()
    got = [next(it) for it in [ip.make_pretrain_iterator(corpus, tmp_path / "v.json", decoded_cache_mb=64, **args)]
           for _ in range(20)]
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a["image"], b["image"])
    # Crops of the whole picture (common at a 90% minimum area) went to the decoder,
    # everything else came from the cache.
    assert 0 < len(decoded) < 80, len(decoded)
