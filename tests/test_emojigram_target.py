"""The held-out-artist EmojiGram target: label space, TFDS build, opening it by name."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from weaksup.corpus.emojigram import EmojiGramSource, assets, concepts
from weaksup.datasets import emojigram_target as target
from weaksup.hashtags.resolver import Resolver, ResolverConfig

SMALL = dict(image_size=32, train_per_class=3, validation_per_class=2, test_per_class=2, max_classes=12)


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


@pytest.fixture(scope="module")
def classes(resolver) -> list[target.TargetClass]:
    return target.target_classes(assets.DEFAULT_HELDOUT_ARTIST, resolver)


@pytest.fixture(scope="module")
def built(tmp_path_factory, resolver):
    data_dir = tmp_path_factory.mktemp("tfds")
    return data_dir, target.build_target(data_dir, resolver=resolver, **SMALL)


def test_label_space_is_noun_synsets_of_heldout_concepts(classes):
    assert len(classes) > 150  # hundreds of the ~1,100 concepts name a noun
    by_id = concepts.concepts_by_id()
    synsets = [c.synset for c in classes]
    assert len(set(synsets)) == len(synsets)
    assert [c.wnid for c in classes] == sorted(c.wnid for c in classes)
    members = [cid for c in classes for cid in c.concepts]
    assert len(members) == len(set(members))  # a concept belongs to one class
    for c in classes:
        assert ".n." in c.synset and c.wnid.startswith("n") and len(c.wnid) == 9
        assert all(assets.DEFAULT_HELDOUT_ARTIST in by_id[cid].artists for cid in c.concepts)
    by_synset = {c.synset: c for c in classes}
    assert "dog" in by_synset["dog.n.01"].concepts
    assert by_synset["dog.n.01"].wnid == "n02084071"
    assert any(len(c.concepts) > 1 for c in classes)  # synonyms merged


def test_builds_without_tensorflow_and_opens_as_data_source(built, classes):
    data_dir, builder = built
    assert builder.builder_config.name.startswith("emojione_32_")
    assert "tensorflow" not in sys.modules
    info = builder.info
    assert info.features["label"].names == [c.synset for c in classes[:12]]
    assert {s: info.splits[s].num_examples for s in target.SPLITS} == {
        "train": 36, "validation": 24, "test": 24,
    }
    ds = builder.as_data_source()
    labels = Counter()
    for ex in ds["train"]:
        assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
        cls = classes[int(ex["label"])]
        assert ex["wnid"].decode() == cls.wnid
        assert ex["concept"].decode() in cls.concepts
        assert ex["artist"].decode() == assets.DEFAULT_HELDOUT_ARTIST
        labels[int(ex["label"])] += 1
    assert labels == Counter({k: 3 for k in range(12)})
    # splits are different renderings
    train = {ex["image"].tobytes() for ex in ds["train"]}
    assert not train & {ex["image"].tobytes() for ex in ds["test"]}
    meta = info.metadata
    assert [c["synset"] for c in meta["classes"]] == [c.synset for c in classes[:12]]


def test_opens_by_name_in_a_fresh_process(built):
    data_dir, builder = built
    code = (
        "import json, sys, tensorflow_datasets as tfds\n"
        f"ds = tfds.data_source('emojigram_target/{builder.builder_config.name}', split='test', "
        f"data_dir={str(data_dir)!r})\n"
        "ex = ds[0]\n"
        "print(json.dumps({'n': len(ds), 'shape': list(ex['image'].shape), "
        "'tf': 'tensorflow' in sys.modules, 'weaksup': 'weaksup' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"n": 24, "shape": [32, 32, 3], "tf": False, "weaksup": False}


def test_build_is_deterministic_and_reused(tmp_path, built, resolver):
    _, first = built
    again = target.build_target(tmp_path, resolver=resolver, **SMALL)
    a, b = first.as_data_source()["validation"], again.as_data_source()["validation"]
    assert len(a) == len(b)
    for i in range(len(a)):
        assert np.array_equal(a[i]["image"], b[i]["image"]) and a[i]["label"] == b[i]["label"]
    reopened = target.build_target(tmp_path, resolver=resolver, **SMALL)  # already prepared
    assert reopened.info.splits["validation"].num_examples == 24
    other = target.config_for("emojione", 32, seed=1, **{k: v for k, v in SMALL.items() if k != "image_size"})
    assert other.name != again.builder_config.name


def test_build_with_other_resolver_settings_replaces_a_stale_build(tmp_path, resolver):
    small = dict(SMALL, max_classes=3, train_per_class=1, validation_per_class=1, test_per_class=1)
    first = target.build_target(tmp_path, resolver=resolver, **small)
    assert first.info.metadata["resolver"] == resolver.fingerprint()
    other = Resolver(ResolverConfig(segmentation=False))
    assert other.fingerprint() != resolver.fingerprint()
    second = target.build_target(tmp_path, resolver=other, **small)
    assert second.data_path == first.data_path
    assert second.info.metadata["resolver"] == other.fingerprint()
    reread = target.build_target(tmp_path, resolver=other, **small)
    assert reread.info.metadata["resolver"] == other.fingerprint()


def test_command_line_builds_the_target(tmp_path):
    cmd = [
        sys.executable, "-m", "weaksup.datasets.emojigram_target",
        "--data-dir", str(tmp_path), "--heldout-artist", "noto", "--image-size", "24",
        "--train-per-class", "2", "--validation-per-class", "1", "--test-per-class", "1",
        "--max-classes", "4",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["name"].startswith("emojigram_target/noto_24_")
    assert summary["classes"] == 4
    assert summary["splits"] == {"train": 8, "validation": 4, "test": 4}


def test_post_hashtags_mostly_resolve_to_the_concept_synset(classes, resolver):
    synset_of = {cid: c.synset for c in classes for cid in c.concepts}
    src = EmojiGramSource(
        num_posts=300, seed=11, max_emoji_per_post=1, tag_dropout=0.0, wrong_tag_rate=0.0,
        filler_rate=0.0, artists="noto,symbola,emojione", image_size=16,
    )
    hits = total = 0
    for post in src.read("0:300"):
        (cid,) = post.meta["concepts"]
        if cid not in synset_of:
            continue
        total += 1
        resolved = resolver.resolve_post(list(post.hashtags))
        hits += any(r is not None and r.synset == synset_of[cid] for r in resolved)
    assert total > 50
    assert hits / total > 0.6, (hits, total)
