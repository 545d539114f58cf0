"""SWAG's recipes around the trunks: AdamW, the weight EMA, sharding, the config, resolution changes."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from _train_data import REPO, tiny_inputs
from weaksup import checkpoint as ckpt_lib
from weaksup import losses, models, sharding, train
from weaksup import optimizer as optim_lib
from weaksup.config import check_config, load_config
from weaksup.evaluators.finetune import transfer_variables
from weaksup.train_lib import create_train_state, make_predict_fn, make_train_step

SWAG = "configs/swag_pretrain.py"
TRUNKS = ("vit_b16", "vit_l16", "vit_h14", "regnety_16gf", "regnety_32gf", "regnety_128gf")
# The CPU trunks at a third of their depth where a test exercises the recipe around the
# family's blocks, not their size: compiling the 6-block RegNetY takes 2.3x as long as the
# 2-block one (two stages of one block, still grouped, with squeeze-excitation and a
# projection). The fsdp test keeps the full RegNetY: the 2-block one has no kernel big
# enough to split.
SHALLOW = {"regnety_tiny": {"depth": 2}, "vit_tiny": {"num_layers": 2}}


@pytest.mark.parametrize("trunk", TRUNKS)
def test_swag_config_loads_and_validates_for_every_trunk(trunk):
    c = load_config(f"{SWAG}:model={trunk}")
    check_config(c)
    assert c.model.name == trunk and c.input.image_size == 224 and c.input.global_batch_size == 8192
    assert c.optim.name == ("adamw" if trunk.startswith("vit") else "sgd")
    assert c.total_examples == 5_000_000_000 and c.optim.ema_decay > 0 and c.loss == "softmax"
    model = models.get_model(c.model.name, 10, **dict(c.model.overrides))  # the overrides fit the family
    assert model.num_classes == 10
    local = load_config(f"{SWAG}:model={trunk},runlocal")
    assert local.model.name == ("vit_tiny" if trunk.startswith("vit") else "regnety_tiny")


def test_adamw_decays_kernels_only_and_decoupled():
    params = {"trunk": {"class_token": jnp.ones((1, 1, 4)), "pos_embedding": jnp.ones((1, 5, 4)),
                        "ln": {"scale": jnp.ones(4), "bias": jnp.ones(4)}, "dense": {"kernel": jnp.ones((4, 4))}}}
    tx = optim_lib.make_adamw(0.1, weight_decay=0.5)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    # Zero gradient: only the decoupled decay moves a weight, by lr * wd * w.
    np.testing.assert_allclose(new["trunk"]["dense"]["kernel"], 1 - 0.1 * 0.5, rtol=1e-6)
    for name in ("class_token", "pos_embedding"):
        np.testing.assert_array_equal(new["trunk"][name], params["trunk"][name])
    np.testing.assert_array_equal(new["trunk"]["ln"]["scale"], 1.0)


def test_weight_ema_tracks_the_parameters_after_each_update():
    params = {"w": jnp.array([1.0, 2.0])}
    tx = optim_lib.with_weight_ema(optax.sgd(1.0), 0.9)
    state = tx.init(params)
    np.testing.assert_array_equal(optim_lib.ema_params(state)["w"], params["w"])
    grads = {"w": jnp.array([1.0, -1.0])}
    updates, state = tx.update(grads, state, params)
    new = optax.apply_updates(params, updates)  # [0, 3]
    np.testing.assert_allclose(optim_lib.ema_params(state)["w"], 0.9 * params["w"] + 0.1 * new["w"], rtol=1e-6)
    assert optim_lib.ema_params(optax.sgd(1.0).init(params)) is None
    with pytest.raises(ValueError, match="ema_decay"):
        optim_lib.with_weight_ema(optax.sgd(1.0), 1.0)


def test_linear_schedule_warms_up_then_decays_to_its_floor():
    f = optim_lib.learning_rate_schedule(1.0, 110, 10, schedule="linear", final_lr_fraction=0.1)
    assert float(f(0)) == 0.0 and float(f(10)) == pytest.approx(1.0)
    assert float(f(60)) == pytest.approx(0.55) and float(f(110)) == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["vit_tiny", "regnety_tiny"])
def test_fsdp_sharded_trunk_equals_unsharded(name):
    """Parameters really split along fsdp; logits and one update equal the single-layout ones."""
    model = models.get_model(name, 64, **(SHALLOW[name] if name.startswith("vit") else {}))
    tx = optim_lib.make_adamw(1e-3) if name.startswith("vit") else optim_lib.make_optimizer(0.1)
    rng = np.random.default_rng(0)
    labels = np.full((8, 4), -1, np.int32)
    labels[:, 0] = rng.integers(0, 64, 8)
    batch = {"image": rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), "labels": labels}
    out = {}
    for layout in ({"data": 8, "fsdp": 1}, {"data": 2, "fsdp": 4}):
        mesh = sharding.make_mesh(layout)
        state, shardings = create_train_state(model, mesh, 32, tx=tx, rng=jax.random.PRNGKey(0))
        specs = [tuple(x.sharding.spec) for x in jax.tree.leaves(state["params"])]
        split = sum("fsdp" in s for s in specs)
        g = sharding.make_global_batch(batch, mesh)
        variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
        logits = make_predict_fn(model, mesh)(variables, g["image"])
        step = make_train_step(model, tx, losses.make_loss_fn("softmax"), mesh, shardings, donate=False)
        new_state, m = step(state, g)
        out[layout["fsdp"]] = (np.asarray(logits), float(m["loss"]), jax.device_get(new_state["params"]), split)
    assert out[1][3] == 0 and out[4][3] >= 4, f"fsdp=4 should split the big kernels, split {out[4][3]}"
    np.testing.assert_allclose(out[4][0], out[1][0], rtol=1e-4, atol=1e-5)
    assert out[4][1] == pytest.approx(out[1][1], rel=1e-5)
    for a, b in zip(jax.tree.leaves(out[4][2]), jax.tree.leaves(out[1][2])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_vit_fine_tunes_at_another_resolution():
    model = models.get_model("vit_tiny", 10)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    target_model, tv = transfer_variables(model, variables, 3, jax.random.PRNGKey(1), 48)
    assert tv["params"]["trunk"]["pos_embedding"].shape == (1, 1 + 12 * 12, 192)
    logits = target_model.apply(tv, jnp.zeros((2, 48, 48, 3)), train=False)
    assert logits.shape == (2, 3) and np.isfinite(np.asarray(logits)).all()


@pytest.mark.slow
@pytest.mark.parametrize("trunk", ["vit_b16", "regnety_16gf"])
def test_swag_runlocal_pretrains_and_keeps_the_weight_average(trunk, tmp_path, tmp_path_factory):
    corpus, vocab = tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")
    config = load_config(f"{SWAG}:model={trunk},runlocal,corpus={corpus},vocab_path={vocab}",
                         ["--config.checkpoint.async_save=False"])
    with config.unlocked():
        config.model.overrides.update(SHALLOW[config.model.name])
    result = train.train_and_evaluate(config, tmp_path / "run")
    assert result["step"] == 3 and np.isfinite(result["loss"])
    _, _, model, raw = ckpt_lib.load_pretrained(tmp_path / "run")
    _, _, _, ema = ckpt_lib.load_pretrained(tmp_path / "run", ema=True)
    assert model.num_classes > 1
    diffs = [float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(raw["params"]), jax.tree.leaves(ema["params"]))]
    assert max(diffs) > 0  # three updates moved the weights; the 0.9999 average barely did


@pytest.mark.slow
def test_loading_the_weight_average_of_a_run_without_one_says_so(tmp_path, tmp_path_factory):
    corpus, vocab = tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")
    config = load_config(f"configs/tiny.py:runlocal,corpus={corpus},vocab={vocab},steps=1",
                         ["--config.checkpoint.async_save=False", "--config.holdout_records=0"])
    train.train_and_evaluate(config, tmp_path / "plain")
    with pytest.raises(ckpt_lib.CheckpointError, match="no weight average"):
        ckpt_lib.load_pretrained(tmp_path / "plain", ema=True)


@pytest.mark.parametrize("model,protocols", [("vit_tiny", "linear+finetune"), ("regnety_tiny", "linear")])
def test_demo_runs_with_swags_cpu_trunks(demo_run, model, protocols):
    """The demo with `model=vit_tiny` / `model=regnety_tiny` on the demo fixture's corpus and target."""
    root = demo_run.parent
    run = root / f"demo_{model}"
    cmd = [sys.executable, "-m", "weaksup", "demo", "--config",
           # Fine-tuning exercises the ViT's trunk transfer (no batch statistics); the probe both.
           f"configs/emojigram_demo.py:runlocal,model={model},protocols={protocols}", "--config.total_steps=2",
           "--config.transfer.finetune_steps=2", "--workdir", str(run), "--data-root", str(root / "data"),
           "--tfds-dir", str(root / "tfds")]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert results["config"]["model"]["name"] == model and results["pretraining"]["step"] == 2
    for init in ("pretrained", "random"):
        assert set(results["transfer"][init]) == set(protocols.split("+"))
        for metrics in results["transfer"][init].values():
            assert 0.0 <= metrics["test_top1"] <= 1.0


def test_accelerator_benchmark_smoke_mode_reports_a_failing_trunk_and_runs_the_rest():
    proc = subprocess.run([sys.executable, "benchmarks/accelerator.py", "--smoke", "--steps", "1", "--rounds", "1",
                           "--skip-sklearn", "--trunks", "no_such_trunk,vit_tiny"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "failed trunks: no_such_trunk" in proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| trunk |")
    assert rows[1].startswith("| no_such_trunk | failed: ValueError: unknown model")
    assert rows[2].startswith("| vit_tiny | ") and "failed" not in rows[2] and len(rows) == 3
    assert "linear probe 2000 x 64" in proc.stdout
