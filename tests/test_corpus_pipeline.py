"""The corpus build end to end: both runners, skip accounting, duplicates, dedup, re-runs."""

import json

import pytest

import corpus_inputs
from weaksup.corpus import cli, pipeline
from weaksup.corpus.shards import MANIFEST, Corpus, CorpusError, shard_name


def _shards(path):
    m = json.loads((path / MANIFEST).read_text())
    return [(s["name"], s["records"], s["sha256"]) for s in m["shards"]]


@pytest.fixture(scope="module")
def instaloader_input(tmp_path_factory):
    root = tmp_path_factory.mktemp("insta")
    corpus_inputs.instaloader_folder(root)
    return root


def test_local_build_counts_everything(instaloader_input, tmp_path):
    out = tmp_path / "corpus"
    config = pipeline.BuildConfig("instaloader", str(instaloader_input), {"posts_per_unit": 3}, num_shards=3)
    m = pipeline.build(config, str(out), runner="local", workers=2, progress=False)
    c = Corpus(out)
    ids = sorted(p.id for p in c)
    assert ids == sorted({"BAAA111", "BBBB222_1", "BBBB222_2", "BBBB222_3",
                          "natgeo/2019-06-05_11-00-00_UTC", "natgeo/2019-06-06_12-00-00_UTC"})
    assert m["skipped"] == {"duplicate_id": 1, "empty_image": 1, "missing_caption": 1,
                            "missing_image": 1, "no_hashtags": 1}
    assert m["normalised"] == {"caption_truncated": 1, "hashtags_capped": 1, "invalid_utf8": 1,
                               "reencoded_image": 1}
    cmyk = next(p for p in c if p.id.endswith("05_11-00-00_UTC"))
    assert cmyk.meta["reencoded"] and cmyk.meta["original_mode"] == "CMYK"
    # the duplicate kept is the first in input order ("#beach" folder sorts before "natgeo")
    assert next(p for p in c if p.id == "BAAA111").meta["path"].startswith("#beach/")
    counts = c.hashtag_counts()
    assert counts["sunset"] == 1 and counts["puppy"] == 3 and sum(counts.values()) == m["hashtags"]["total"]
    for k, s in enumerate(c.shards):  # posts sorted by id within each shard
        got = [p.id for p in c.iter_shard(k)]
        assert got == sorted(got)
    assert c.verify()["ok"] and not (out / ".build").exists()


def test_beam_and_local_runners_agree(tmp_path):
    src = tmp_path / "wds"
    corpus_inputs.webdataset_shards(src)
    config = pipeline.BuildConfig("webdataset", str(src), num_shards=2)
    m1 = pipeline.build(config, str(tmp_path / "a"), runner="local", workers=2, progress=False)
    m2 = pipeline.build(config, str(tmp_path / "b"), runner="direct", progress=False)
    assert _shards(tmp_path / "a") == _shards(tmp_path / "b")  # byte-identical shards
    assert m1["skipped"] == m2["skipped"] == {
        "corrupt_archive": 1, "download_failed": 1, "missing_image": 1, "no_hashtags": 1,
        "not_an_image": 1, "too_many_pixels": 1, "unsafe_path": 4}
    assert m1["records"] == 5 and m2["build"]["runner"] == "DirectRunner"
    assert json.loads((tmp_path / "a" / "hashtag_counts.json").read_text()) == \
        json.loads((tmp_path / "b" / "hashtag_counts.json").read_text())
    assert len(m2["skipped_examples"]["unsafe_path"]) == 4


def test_near_duplicates_removed(tmp_path):
    from PIL import Image, ImageEnhance

    from weaksup.corpus.dedup import reference_hashes

    evals = tmp_path / "eval"
    evals.mkdir()
    img = tmp_path / "img"
    img.mkdir()
    rows = []
    for i in range(6):
        pic = corpus_inputs.picture(700 + i, (120, 90))
        if i < 3:  # evaluation images; the training set holds edited copies of them
            pic.save(evals / f"e{i}.png")
            pic = [lambda p: p.resize((60, 45)),
                   lambda p: ImageEnhance.Color(p).enhance(0.4),
                   lambda p: p.crop((4, 3, 116, 87))][i](pic)
        pic.convert("RGB").save(img / f"t{i}.jpg", quality=80)
        rows.append(json.dumps({"id": f"t{i}", "image": f"img/t{i}.jpg", "tags": ["x"]}))
    (tmp_path / "m.jsonl").write_text("\n".join(rows))
    config = pipeline.BuildConfig("jsonl", str(tmp_path / "m.jsonl"), num_shards=1,
                                  dedup_hashes=reference_hashes(str(evals)), dedup_specs=(str(evals),))
    m = pipeline.build(config, str(tmp_path / "out"), runner="local", workers=1, progress=False)
    assert m["skipped"] == {"near_duplicate": 3}
    assert sorted(p.id for p in Corpus(tmp_path / "out")) == ["t3", "t4", "t5"]
    assert m["build"]["dedup"]["reference_hashes"] == 3 * 16 and m["build"]["dedup"]["fine_threshold"] == 56


def test_rerun_rebuilds_incomplete_and_protects_complete(tmp_path, capsys):
    src = tmp_path / "m"
    corpus_inputs.manifest_inputs(src)
    out = tmp_path / "out"
    args = ["build", "--source", "jsonl", "--input", str(src / "posts.jsonl"), "--output", str(out),
            "--num-shards", "2", "--workers", "1", "--no-progress"]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] == 3 and summary["skipped"]["duplicate_id"] == 1
    good = _shards(out)
    # an interrupted build: manifest gone, one shard half-written, a stray temp file
    (out / MANIFEST).unlink()
    (out / good[0][0]).write_bytes(b"partial")
    (out / ".tmp-123-posts.array_record").write_bytes(b"x")
    with pytest.raises(CorpusError):
        Corpus(out)
    assert cli.main(args) == 0
    assert _shards(out) == good and not list(out.glob(".tmp-*"))
    # a complete corpus is not overwritten by accident
    assert cli.main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(args + ["--overwrite"]) == 0


def test_cli_reports_bad_source_options(tmp_path, capsys):
    assert cli.main(["build", "--source", "csv", "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                     "--option", "nope=1"]) == 2
    assert "no option(s) nope" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert cli.parse_option("num_posts=10") == ("num_posts", 10)
    assert cli.parse_option("artists=[\"noto\"]") == ("artists", ["noto"])
    assert cli.parse_option("images=/x/y") == ("images", "/x/y")


def test_emojigram_source_builds(tmp_path):
    m = pipeline.build(pipeline.BuildConfig("emojigram", None, {"num_posts": 40, "unit_size": 16}, num_shards=2),
                       str(tmp_path), runner="local", workers=2, progress=False)
    c = Corpus(tmp_path)
    assert len(c) == 40 and m["skipped"] == {}
    post = c[0]
    assert post.source == "emojigram" and post.meta["concepts"] and post.hashtags
    assert shard_name(0, 2) in [p.name for p in c.shard_paths]


def test_dedup_against_tfds_target(tmp_path, capsys):
    """--dedup-against tfds:NAME opens the EmojiGram target by name and drops its copies."""
    import io

    import tensorflow_datasets as tfds
    from PIL import Image

    from weaksup.datasets.emojigram_target import build_target

    builder = build_target(tmp_path / "tfds", train_per_class=1, validation_per_class=1,
                           test_per_class=1, max_classes=4)
    name = f"emojigram_target/{builder.builder_config.name}"
    test = tfds.data_source(name, split="test", data_dir=str(tmp_path / "tfds"))
    img = tmp_path / "img"
    img.mkdir()
    rows = []
    for i in range(2):  # re-encoded, downscaled copies of two test images
        Image.fromarray(test[i]["image"]).resize((48, 48)).save(img / f"copy{i}.jpg", quality=70)
        rows.append({"id": f"copy{i}", "image": f"img/copy{i}.jpg", "tags": ["emoji"]})
    for i in range(3):
        corpus_inputs.picture(800 + i).save(img / f"own{i}.jpg")
        rows.append({"id": f"own{i}", "image": f"img/own{i}.jpg", "tags": ["mine"]})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "out"
    assert cli.main(["build", "--source", "jsonl", "--input", str(tmp_path / "m.jsonl"), "--output", str(out),
                     "--dedup-against", f"tfds:{name}", "--dedup-data-dir", str(tmp_path / "tfds"),
                     "--workers", "1", "--no-progress"]) == 0
    m = json.loads((out / MANIFEST).read_text())
    assert m["skipped"] == {"near_duplicate": 2}
    assert sorted(p.id for p in Corpus(out)) == ["own0", "own1", "own2"]
    assert m["build"]["dedup"]["reference_hashes"] == 16 * sum(len(builder.as_data_source()[s]) for s in ("train", "validation", "test"))


def test_read_progress_counts_posts(instaloader_input, capsys, monkeypatch):
    monkeypatch.setattr(pipeline.console, "progress_enabled", lambda: True)  # as in a command's normal output
    # A generated corpus knows its size: the bar's total is its posts.
    known = pipeline.ReadProgress(pipeline.BuildConfig("emojigram", None, {"num_posts": 40, "unit_size": 16}), 3, True)
    assert known.total == 40 and not known.estimated
    known.unit_done(15, 1)
    assert known.read == known.bar.n == 16 and known.bar.total == 40
    known.close()
    assert "0/40 [" in capsys.readouterr().err
    # A folder does not: the total is estimated from the units read so far (ETA from the first one).
    config = pipeline.BuildConfig("instaloader", str(instaloader_input), {"posts_per_unit": 3})
    estimated = pipeline.ReadProgress(config, 4, True)
    assert estimated.total is None
    estimated.unit_done(2, 1)
    assert estimated.read == 3 and estimated.total == estimated.bar.total == 12
    estimated.unit_done(1, 0)
    assert estimated.read == 4 and estimated.total == 8 and estimated.skipped == 1
    estimated.close()
    assert "post" in capsys.readouterr().err
