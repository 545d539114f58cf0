"""ArrayRecord shards, manifest and the Corpus reader: atomic, complete, corruption named."""

import json
import os

import pytest

from weaksup.corpus import cli
from weaksup.corpus.record import encode_post, make_post
from weaksup.corpus.shards import (
    MANIFEST,
    Corpus,
    CorpusError,
    remove_incomplete,
    shard_name,
    write_manifest,
    write_shard,
)


def _corpus(tmp_path, n=(30, 20)):
    infos, k = [], 0
    counts = {}
    for s, m in enumerate(n):
        posts = []
        for _ in range(m):
            tags = ["dog", f"t{k % 3}"]
            for t in tags:
                counts[t] = counts.get(t, 0) + 1
            posts.append(encode_post(make_post(f"p{k:03d}", os.urandom(500), tags, source="test")))
            k += 1
        infos.append(write_shard(tmp_path / shard_name(s, len(n)), posts))
    write_manifest(tmp_path, infos, skipped={"corrupt_image": 2}, hashtag_counts=counts)
    return tmp_path


def test_roundtrip_and_grain_source(tmp_path):
    c = Corpus(_corpus(tmp_path))
    assert len(c) == 50 and [p.name for p in c.shard_paths] == [shard_name(0, 2), shard_name(1, 2)]
    assert c[0].id == "p000" and c[35].id == "p035" and c[-1].id == "p049"
    assert [p.id for p in c] == [f"p{i:03d}" for i in range(50)]
    assert c.hashtag_counts()["dog"] == 50
    assert c.verify()["ok"]
    ds = c.data_source()
    assert len(ds) == 50
    from weaksup.corpus.record import decode_post

    assert decode_post(ds[31]).id == "p031"
    with pytest.raises(IndexError):
        c[50]
    assert not list(tmp_path.glob(".tmp-*"))  # no temp files left behind


def test_directory_without_manifest_refused(tmp_path):
    _corpus(tmp_path)
    (tmp_path / MANIFEST).unlink()
    with pytest.raises(CorpusError, match="no manifest.json.*incomplete"):
        Corpus(tmp_path)
    assert remove_incomplete(tmp_path) == 3  # two shards + hashtag counts
    assert not list(tmp_path.iterdir())


def test_truncated_shard_named(tmp_path):
    _corpus(tmp_path)
    p = tmp_path / shard_name(1, 2)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=f"shard .*{shard_name(1, 2)}.*truncated"):
        Corpus(tmp_path)


def test_corrupt_shard_named(tmp_path):
    _corpus(tmp_path)
    p = tmp_path / shard_name(0, 2)
    data = bytearray(p.read_bytes())
    data[3000] ^= 0xFF  # same size, one flipped byte inside a record
    p.write_bytes(bytes(data))
    c = Corpus(tmp_path)
    with pytest.raises(CorpusError, match=f"shard .*{shard_name(0, 2)}.*checksum"):
        c.verify()
    with pytest.raises(CorpusError, match=shard_name(0, 2)):
        [c[i] for i in range(30)]
    # the intact shard still reads
    assert c[40].id == "p040"


def test_stats_cli_json(tmp_path, capsys):
    _corpus(tmp_path)
    assert cli.main(["stats", str(tmp_path), "--json", "--verify"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 50 and out["shards"] == 2 and out["skipped"] == {"corrupt_image": 2}
    assert out["top_hashtags"][0] == ["dog", 50] and out["verified"]
    (tmp_path / MANIFEST).unlink()
    assert cli.main(["stats", str(tmp_path), "--json"]) == 1
    assert "incomplete" in capsys.readouterr().err
