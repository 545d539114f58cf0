"""`python -m weaksup predict`: a run's top-k labels for files and folders, bad files skipped."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from weaksup.corpus.shards import Corpus
from weaksup.predict import Predictor, image_files, label_names


@pytest.fixture(scope="module")
def pictures(demo_run, tmp_path_factory):
    """Six real EmojiGram pictures in a nested folder, a corrupt JPEG and a text file among them."""
    corpus_dir = json.loads((demo_run / "results.json").read_text())["data"]["corpus_dir"]
    corpus = Corpus(corpus_dir)
    root = tmp_path_factory.mktemp("pictures")
    (root / "nested" / "deeper").mkdir(parents=True)
    for i in range(6):
        folder = root if i < 2 else root / "nested" if i < 4 else root / "nested" / "deeper"
        (folder / f"post{i}.png").write_bytes(corpus[i].image)
    (root / "nested" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "notes.txt").write_text("not a picture")
    return root


def _predict(*args):
    return subprocess.run([sys.executable, "-m", "weaksup", "predict", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_predict_files_and_folders_as_json_with_bad_files_skipped(demo_run, pictures):
    proc = _predict("--workdir", demo_run / "pretrain", "--json", "--top-k", "3", pictures / "post0.png",
                    pictures / "nested")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["post0.png", "post4.png", "post5.png", "post2.png",
                                                              "post3.png"]
    for r in rows:
        assert [x["rank"] for x in r["labels"]] == [1, 2, 3]
        p = [x["probability"] for x in r["labels"]]
        assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1 + 1e-6
        assert all(x["wnid"].startswith("n") and x["hashtag"].startswith("#") and x["synset"].count(".") == 2
                   for x in r["labels"])
    assert "broken.jpg" in proc.stderr and "5 picture(s) labelled, 1 unreadable file(s) skipped" in proc.stderr


def test_predict_table_and_errors(demo_run, pictures, tmp_path):
    proc = _predict("--workdir", demo_run / "pretrain", pictures)
    assert proc.returncode == 0 and "6 picture(s) labelled, 2 unreadable" in proc.stderr
    assert proc.stdout.count(" 1. ") == 6 and "post5.png" in proc.stdout
    missing = _predict("--workdir", demo_run / "pretrain", tmp_path / "nothing_here")
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "junk.png").write_bytes(b"junk")
    unreadable = _predict("--workdir", demo_run / "pretrain", tmp_path / "junk.png")
    assert unreadable.returncode == 2 and "no picture could be read" in unreadable.stderr
    norun = _predict("--workdir", tmp_path, pictures / "post0.png")
    assert norun.returncode == 2 and "no checkpoints directory" in norun.stderr


def test_prior_correction_ranks_as_if_labels_were_equally_common(demo_run, pictures):
    plain = Predictor(demo_run / "pretrain")
    corrected = Predictor(demo_run / "pretrain", prior_correction=True)
    images = np.stack([plain.crop(p.read_bytes()) for p in image_files([pictures]) if p.suffix == ".png"])
    p, q = plain.probabilities(images), corrected.probabilities(images)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    freq = np.asarray(plain.vocab.frequencies, np.float64)
    expected = p / (freq / freq.sum())
    np.testing.assert_allclose(q, expected / expected.sum(1, keepdims=True), rtol=1e-4)
    names = label_names(plain.vocab)
    assert len(names) == plain.vocab.num_classes and all(h.startswith("#") for _, _, _, h in names)
