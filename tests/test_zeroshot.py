"""Zero-shot transfer: calibration towards a uniform prior, the WordNet mapping rules, an end-to-end run."""

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import tensorflow_datasets as tfds

from weaksup.config import ConfigError
from weaksup.evaluators import cli
from weaksup.evaluators.zeroshot import calibration_bias, class_rows, mapping_matrix
from weaksup.input_pipeline import EvalDataError
from weaksup.wordnet import load_index

VOCAB = ["dog.n.01", "poodle.n.01", "cat.n.01", "car.n.01"]


def test_calibration_makes_the_mean_prediction_uniform():
    rng = np.random.default_rng(0)
    prior = np.log(np.array([0.7, 0.2, 0.05, 0.04, 0.01]))
    logits = rng.normal(size=(400, 5)) + prior  # a head that learned Zipfian base rates
    b = calibration_bias(logits)
    z = logits + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(p.mean(0), 0.2, atol=1e-3)
    assert b[0] < b[-1]  # the popular label is pushed down, the rare one up
    assert abs(float(b.mean())) < 1e-5


def test_mapping_rules_through_wordnet():
    index = load_index()
    vocab = [index.synset(n).wnid for n in VOCAB]
    targets = class_rows(index, ["dog.n.01", "animal.n.01", "wolf.n.01", index.synset("car.n.01").wnid], "test")
    m, reached = mapping_matrix(index, vocab, targets)
    dog, animal, wolf, car = range(4)
    assert m[:, dog].tolist() == [1, 0, 0, 0]  # exact: the dog itself, not the poodle below it
    assert m[:, animal].tolist() == [1, 1, 1, 0]  # no "animal" label: every animal of the vocabulary
    assert m[:, car].tolist() == [0, 0, 0, 1]
    # No wolf in the vocabulary, nothing below it: the most similar synsets, weighted < 1; a dog more than a car.
    assert 0 < m[VOCAB.index("car.n.01"), wolf] < m[VOCAB.index("dog.n.01"), wolf] < 1
    assert reached == {"exact": 2, "hyponyms": 1, "similar": 1}
    no_exact, _ = mapping_matrix(index, vocab, targets, rules=("hyponyms",))
    assert no_exact[:, dog].tolist() == [0, 1, 0, 0]  # without the exact rule only what lies below dog counts
    exact_only, reached = mapping_matrix(index, vocab, targets, rules=("exact",))
    assert exact_only[:, dog].tolist() == [1, 0, 0, 0] and not exact_only[:, wolf].any()
    assert reached == {"exact": 2, "hyponyms": 0, "similar": 0}
    with pytest.raises(ConfigError, match="unknown rules"):
        mapping_matrix(index, vocab, targets, rules=("telepathy",))
    with pytest.raises(EvalDataError, match="not a WordNet 3.0 noun synset"):
        class_rows(index, ["not_a_synset"], "my_target")


def test_zeroshot_runs_from_a_checkpoint_with_calibration(demo_run, tmp_path):
    results = json.loads((demo_run / "results.json").read_text())
    data = results["data"]
    tfds_dir = demo_run.parent / "tfds"
    evals = {"zs": {"type": "zeroshot", "corpus_dir": data["corpus_dir"], "records": 64},
             "zs_exact": {"type": "zeroshot", "rules": ("exact",)}}
    argv = ["--config", f"configs/emojigram_transfer.py:pretrained={demo_run / 'pretrain'},dataset={data['target']},"
            f"data_dir={tfds_dir},batch=16", "--workdir", str(tmp_path / "eval"), f"--config.evals={evals!r}"]
    assert cli.main(argv) == 0
    out = json.loads((tmp_path / "eval" / "results.json").read_text())["results"]
    for init in ("pretrained", "random"):
        zs, exact = out[init]["zs"], out[init]["zs_exact"]
        assert 0.0 <= zs["top1"] <= zs["top5"] <= 1.0 and zs["calibrated"] == 1.0 and exact["calibrated"] == 0.0
        assert zs["classes_exact"] > 0 and zs["classes_exact"] + zs["classes_hyponyms"] + zs["classes_similar"] <= 1
        assert exact["classes_hyponyms"] == exact["classes_similar"] == 0


def test_demo_reports_zeroshot_calibrated_on_its_held_out_posts(demo_run):
    # The demo's default protocols include zero-shot: its row sits in results.json and the
    # summary beside the probe. (Runlocal's 30 steps over 500 concepts are too few to name
    # anything; the closed-world test below shows the gain.)
    results = json.loads((demo_run / "results.json").read_text())
    for init in ("pretrained", "random"):
        row = results["transfer"][init]["zeroshot"]
        assert row["calibrated"] == 1.0 and row["classes_exact"] > 0 and 0.0 <= row["top1"] <= row["top5"] <= 1.0
        assert results["summary"][f"zeroshot_top1_{init}"] == row["top1"]


def test_demo_offers_zeroshot_calibrated_on_its_held_out_posts(tmp_path):
    from weaksup import demo
    from weaksup.config import load_config

    config = load_config("configs/emojigram_demo.py:runlocal,protocols=linear+zeroshot", lock=False)
    config.corpus_dir = str(tmp_path / "corpus")
    ecfg = demo.transfer_config(config, tmp_path / "pretrain", "emojigram_target/emojione_32", tmp_path / "tfds")
    assert set(ecfg.evals) == {"linear", "zeroshot"}
    assert ecfg.evals.zeroshot.corpus_dir == str(tmp_path / "corpus")
    assert ecfg.evals.zeroshot.records == config.holdout_records > 0
    default = load_config("configs/emojigram_demo.py:runlocal", lock=False)
    default.corpus_dir = str(tmp_path / "corpus")
    assert set(demo.transfer_config(default, tmp_path, "t/c", tmp_path).evals) == {
        "linear", "fewshot", "finetune", "zeroshot"}


def test_class_scores_take_the_best_label_not_the_mass():
    # Labels: dog, poodle, cat; classes: dog (dog, poodle), animal (all three), wolf (similar: dog 0.5).
    m = np.array([[1, 1, 0.5], [1, 1, 0], [0, 1, 0]], np.float32)
    p = np.array([[0.5, 0.1, 0.4]])
    from weaksup.evaluators.zeroshot import class_scores

    np.testing.assert_allclose(class_scores(p, m), [[0.5, 0.5, 0.25]])
    # Summed mass would rank "animal" (1.0) first for every picture.


@pytest.mark.slow
def test_zeroshot_beats_random_init_and_the_label_prior(tmp_path):
    # A closed world (posts show only the target's first 10 concepts, Noto's drawings) and 300
    # steps: the hashtag head then names EmojiOne's drawings, which it never saw, with no
    # target training. Measured: 22.5% top-1 against 11.25% from random init, chance 10%.
    cmd = [sys.executable, "-m", "weaksup", "demo", "--config",
           "configs/emojigram_demo.py:runlocal,closed,classes=10,posts=4000,protocols=zeroshot",
           "--config.total_steps=300", "--config.data.artists=noto", "--config.data.target_per_class=(8,4,40)",
           "--workdir", str(tmp_path / "run"), "--data-root", str(tmp_path / "data"),
           "--tfds-dir", str(tmp_path / "tfds")]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["data"]["corpus_within_target"] and results["data"]["target_classes"] == 10
    test = tfds.data_source(results["data"]["target"], split="test", data_dir=str(tmp_path / "tfds"))
    labels = Counter(int(test[i]["label"]) for i in range(len(test)))
    assert len(test) == 400
    # The label prior predicts one class for every picture: at best the largest class's share.
    prior = max(labels.values()) / len(test)
    pretrained, random = (results["transfer"][init]["zeroshot"] for init in ("pretrained", "random"))
    # 0.05 is 20 more pictures of 400 named right, over 3 binomial standard deviations at chance.
    assert pretrained["top1"] >= random["top1"] + 0.05, (pretrained, random)
    assert pretrained["top1"] >= prior + 0.05, (pretrained, prior)
    assert pretrained["top5"] > random["top5"]
