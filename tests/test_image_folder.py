"""Your own pictures as a target: the ImageFolder layout, with or without split folders."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from weaksup.errors import EXIT_USAGE
from weaksup.evaluators import cli
from weaksup.input_pipeline import EvalDataError, ImageFolder, Target, make_eval_iterator

GREYS = {"dark": 40, "mid": 120, "light": 200}


def _picture(grey: int, i: int, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((30 + i, 36, 3), grey, np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _pool(root, per_class=10):
    for name, grey in GREYS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ext, fmt = ("png", "PNG") if i % 2 else ("jpg", "JPEG")
            (root / name / f"{i:02d}.{ext}").write_bytes(_picture(grey, i, fmt))
    (root / "mid" / "readme.txt").write_text("not a picture")  # skipped by suffix
    return root


def test_pool_is_split_by_a_stated_seed(tmp_path):
    folder = ImageFolder(_pool(tmp_path / "pics"), seed=3)
    assert folder.classes == ["dark", "light", "mid"]
    sizes = {k: len(v) for k, v in folder.splits.items()}
    assert sizes == {"train": 21, "validation": 3, "test": 6}  # 7 / 1 / 2 of each class's 10
    every = sorted(str(p) for v in folder.splits.values() for p, _ in v)
    assert len(every) == 30 == len(set(every)) and not any(p.endswith(".txt") for p in every)
    again = ImageFolder(tmp_path / "pics", seed=3)
    assert again.splits == folder.splits
    assert ImageFolder(tmp_path / "pics", seed=4).splits["test"] != folder.splits["test"]
    for path, label in folder.splits["test"]:
        assert folder.classes[label] == path.parent.name


def test_split_folders_and_eval_batches(tmp_path):
    root = tmp_path / "pics"
    _pool(root / "train", 4)
    _pool(root / "val", 2)
    target = Target(dataset=f"folder:{root}", val_split="validation", test_split=None, image_size=16, batch_size=4)
    target.check()
    assert target.num_classes() == 3
    batches = list(make_eval_iterator(target, "validation", process_index=0, process_count=1))
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(EvalDataError, match=r"no split 'test'.*\['train', 'validation'\]"):
        Target(dataset=f"folder:{root}").check()


def test_bad_folders_are_named(tmp_path):
    with pytest.raises(EvalDataError, match="no such folder"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(EvalDataError, match="no class folders with pictures"):
        ImageFolder(tmp_path / "empty")
    _pool(tmp_path / "mixed" / "train", 2)
    (tmp_path / "mixed" / "cats").mkdir()
    with pytest.raises(EvalDataError, match="mixes split folders"):
        ImageFolder(tmp_path / "mixed")


def test_evaluate_on_an_image_folder(tmp_path, capsys):
    root = _pool(tmp_path / "pics", 12)
    (root / "light" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    argv = ["--config", f"configs/emojigram_transfer.py:pretrained=,model=resnet_tiny,dataset=folder:{root},size=16,"
            "batch=8", "--workdir", str(tmp_path / "eval"),
            "--config.evals={'linear': {'type': 'linear_probe', 'l2_grid': (1e-3,)}}"]
    with pytest.warns(UserWarning, match="broken.jpg|unreadable"):
        assert cli.main(argv) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["meta"]["complete"] and results["meta"]["dataset"] == f"folder:{root}"
    linear = results["results"]["random"]["linear"]
    assert 0.0 <= linear["test_top1"] <= 1.0 and linear["test_top5"] == 1.0
    bad = ["--config", f"configs/emojigram_transfer.py:pretrained=,model=resnet_tiny,dataset=folder:{tmp_path / 'nope'}",
           "--workdir", str(tmp_path / "eval2")]
    assert cli.main(bad) == EXIT_USAGE
    assert "no such folder" in capsys.readouterr().err
