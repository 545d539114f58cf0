"""The demo's ablation configs: each changes exactly its own setting, and one runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from weaksup import demo
from weaksup.config import config_to_json, load_config
from weaksup.corpus.shards import Corpus
from weaksup.hashtags.vocabulary import Vocabulary, VocabularyError
from weaksup.input_pipeline import make_pretrain_iterator
from weaksup.labels import build_from_corpus, load_post_labels

DEMO = REPO / "configs" / "emojigram_demo.py"


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[prefix + k] = v
    return out


def _changes(spec: str, base: str = f"{DEMO}:runlocal") -> dict:
    a, b = _flat(config_to_json(load_config(base, lock=False))), _flat(config_to_json(load_config(spec, lock=False)))
    assert a.keys() == b.keys()
    return {k: b[k] for k in a if a[k] != b[k]}


@pytest.mark.parametrize("name,expected", [
    ("ablation_vocab_raw.py:runlocal", {"data.vocab_mode": "raw"}),
    ("ablation_natural_resampling.py:runlocal", {"input.resampling": "natural"}),
    ("ablation_label_noise.py:runlocal", {"input.label_noise": 0.5}),
    ("ablation_corpus_size.py:size=small,runlocal", {"data.num_posts": 250, "data.vocab_num_posts": 2000}),
    ("ablation_corpus_size.py:size=medium,runlocal", {"data.num_posts": 660, "data.vocab_num_posts": 2000}),
    ("ablation_corpus_size.py:size=small,own_vocab,runlocal", {"data.num_posts": 250}),
    ("emojigram_demo.py:runlocal,aligned", {"data.vocab_within_target": True}),
    ("emojigram_demo.py:runlocal,clean", {"data.clean_labels": True}),
    ("emojigram_demo.py:runlocal,closed", {"data.corpus_within_target": True}),
    ("emojigram_demo.py:runlocal,seed=2", {"seed": 2}),
])
def test_each_ablation_changes_only_its_setting(name, expected):
    assert _changes(str(REPO / "configs" / name)) == expected


def test_ablation_args_pass_through_and_bad_sizes_are_named():
    full = _changes(str(REPO / "configs" / "ablation_corpus_size.py:size=small,examples=60000,protocols=linear"),
                    base=str(DEMO))
    assert full == {"data.num_posts": 12_500, "data.vocab_num_posts": 100_000, "total_examples": 60_000,
                    "transfer.protocols": ["linear"]}
    with pytest.raises(ValueError, match="size must be one of"):
        load_config(str(REPO / "configs" / "ablation_corpus_size.py:size=huge"), lock=False)


def test_raw_vocabulary_ablation_runs(demo_run):
    """The raw-hashtag ablation on the demo fixture's corpus and target: a new label space, one step."""
    root = demo_run.parent
    run = root / "ablation_raw"
    cmd = [sys.executable, "-m", "weaksup", "demo", "--config",
           "configs/ablation_vocab_raw.py:runlocal,protocols=linear", "--config.total_steps=1",
           "--workdir", str(run), "--data-root", str(root / "data"), "--tfds-dir", str(root / "tfds")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is complete; reusing it" in proc.stdout  # the demo's corpus, not a new one
    results = json.loads((run / "results.json").read_text())
    assert results["data"]["vocab_mode"] == "raw" and results["data"]["vocab_path"].endswith("vocab-raw-min3.json")
    vocab = json.loads(open(results["data"]["vocab_path"]).read())
    assert all(w.startswith("#") for w in vocab["wnids"])  # hashtags, not synsets
    assert results["pretraining"]["step"] == 1
    assert set(results["transfer"]["pretrained"]) == {"linear"}


def test_corpus_sizes_share_the_large_corpus_label_space(demo_run):
    """size=small is labelled by the demo corpus's vocabulary, which the input pipeline then
    accepts only because the mismatch is declared."""
    root = demo_run.parent
    config = load_config(str(REPO / "configs" / "ablation_corpus_size.py:size=small,runlocal"), lock=False)
    target = json.loads((demo_run / "results.json").read_text())["data"]["target"]
    own = demo.corpus_dir_for(config.data, root / "data")
    demo.build_corpus(config.data, own, target, root / "tfds")
    vocab_corpus = demo.vocab_corpus_for(config.data, own, root / "data", target, root / "tfds")
    assert vocab_corpus != own
    demo_vocab = json.loads((demo_run / "results.json").read_text())["data"]["vocab_path"]
    assert Path(demo_vocab).parent == vocab_corpus  # the fixture's 2,000-post corpus, reused
    small = Corpus(own)
    assert len(small) < len(Corpus(vocab_corpus))
    kwargs = dict(global_batch_size=8, image_size=32, resampling="sqrt", seed=0, holdout_records=16)
    with pytest.raises(VocabularyError, match="built from corpus"):
        make_pretrain_iterator(own, demo_vocab, **kwargs)
    batches = make_pretrain_iterator(own, demo_vocab, allow_corpus_mismatch=True, **kwargs)
    vocab = Vocabulary.load(demo_vocab)
    labels = load_post_labels(vocab, demo_vocab, small)
    assert labels.labels.size and labels.labels.max() < vocab.num_classes
    # The small corpus's own vocabulary would be a different, smaller label space.
    own_vocab = build_from_corpus(str(own), str(root / "own-vocab.json"), mode="nouns", min_count=3)
    assert own_vocab.num_classes < vocab.num_classes
    batch = next(batches)
    assert batch["labels"].shape[0] == 8
