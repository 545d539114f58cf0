"""`python -m weaksup evaluate`: end to end from an Orbax pretraining checkpoint, and bad input."""

import json
import shutil
from pathlib import Path

import pytest

import tiny_tfds
from transfer_data import IMAGE_SIZE, target_dir, write_pretraining_checkpoint
from weaksup.errors import EXIT_USAGE
from weaksup.evaluators import cli, get_evaluator

CONFIG = "configs/emojigram_transfer.py"


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return write_pretraining_checkpoint(tmp_path_factory.mktemp("pretrain"), "resnet_tiny", step=5)


def _argv(workdir, pretrained, *extra, arg=""):
    spec = (f"{CONFIG}:runlocal,pretrained={pretrained},dataset={tiny_tfds.NAME},data_dir={target_dir()},"
            f"size={IMAGE_SIZE},batch=8,ft_steps=3{arg}")
    return ["--config", spec, "--workdir", str(workdir), "--config.dataset.val_split=", *extra]


def test_end_to_end_pretrained_and_random(tmp_path, pretrained, capsys):
    work = tmp_path / "eval"
    assert cli.main(_argv(work, pretrained)) == 0
    payload = json.loads((work / "results.json").read_text())
    assert payload["meta"]["complete"] is True
    assert payload["meta"]["step"] == 5 and payload["meta"]["model"] == "resnet_tiny"
    results = payload["results"]
    assert set(results) == {"pretrained", "random"}
    for init in results.values():
        assert set(init) == {"linear", "fewshot", "finetune"}
        assert 0.0 <= init["linear"]["test_top1"] <= 1.0
        assert init["linear"]["l2"] in (1e-2, 1e-3, 1e-4)
        assert {"1shot_top1", "5shot_top1"} <= set(init["fewshot"])
        assert {"test_top1", "test_top5", "train_loss"} <= set(init["finetune"])
    md = (work / "results.md").read_text()
    assert "| linear | test_top1 |" in md and "pretrained | random" in md
    # one cache entry per (init, split): train and test for both inits
    assert len(list((work / "feature_cache").glob("*.npz"))) == 4
    assert (work / "evaluators" / "finetune-pretrained" / "checkpoints" / "3").is_dir()
    assert "evaluate: pretrained linear" in capsys.readouterr().out


def test_random_only_needs_a_model_name(tmp_path, capsys):
    argv = _argv(tmp_path / "e", "", "--config.evals={'linear': {'type': 'linear_probe', 'l2_grid': (1e-3,)}}")
    assert cli.main(argv) == EXIT_USAGE
    assert "nothing to evaluate" in capsys.readouterr().err
    argv = _argv(tmp_path / "e", "", "--config.evals={'linear': {'type': 'linear_probe', 'l2_grid': (1e-3,)}}",
                 arg=",model=resnet_tiny")
    assert cli.main(argv) == 0
    results = json.loads((tmp_path / "e" / "results.json").read_text())["results"]
    assert list(results) == ["random"] and "test_top1" in results["random"]["linear"]


def test_checkpoint_of_another_architecture(tmp_path, pretrained, capsys):
    assert cli.main(_argv(tmp_path / "e", pretrained, arg=",model=resnext_tiny")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "holds a resnet_tiny" in err and "resnext_tiny" in err and str(pretrained) in err


def test_corrupt_checkpoint(tmp_path, pretrained, capsys):
    run = tmp_path / "run"
    shutil.copytree(pretrained, run)
    state = run / "checkpoints" / "5" / "state"
    for f in state.rglob("*"):
        if f.is_file():
            f.write_bytes(b"\0garbage")
    assert cli.main(_argv(tmp_path / "e", run)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "evaluate: error:" in err and str(run / "checkpoints" / "5") in err
    assert not (tmp_path / "e" / "results.json").exists()


@pytest.mark.parametrize(
    "extra,arg,expect",
    [
        ((), ",dataset=no_such_dataset_xyz", "no_such_dataset_xyz"),
        (("--config.dataset.label_key=fine_label",), "", "'fine_label'"),
        (("--config.dataset.image_key=picture",), "", "'picture'"),
        (("--config.dataset.test_split=holdout",), "", "'holdout'"),
        (("--config.evals={'x': {'type': 'nonsense'}}",), "", "unknown evaluator type 'nonsense'"),
    ],
)
def test_bad_dataset_keys_and_types_fail_before_any_compute(tmp_path, pretrained, capsys, extra, arg, expect):
    assert cli.main(_argv(tmp_path / "e", pretrained, *extra, arg=arg)) == EXIT_USAGE
    assert expect in capsys.readouterr().err
    assert not Path(tmp_path / "e" / "results.json").exists()


def test_registry():
    assert get_evaluator("linear_probe").__module__ == "weaksup.evaluators.linear_probe"
    with pytest.raises(ValueError, match="cannot import"):
        get_evaluator("weaksup.no_such_module")
