"""Weights in and out: torchvision/timm/SWAG state dicts <-> weaksup runs, checked logit for logit in PyTorch."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import _torch_reference as ref
import transfer_data
from safetensors.numpy import save_file
from safetensors.torch import load_file

from weaksup import checkpoint as ckpt_lib
from weaksup import config as config_lib
from weaksup import models, sharding, train_lib
from weaksup.errors import UsageError
from weaksup.evaluators.cli import load_inits
from weaksup.predict import Predictor
from weaksup.weights import cli, files, names, transfer

NUM_CLASSES = 4
TOL = 1e-4


# ----------------------------------------------------------------------------------------
# Helpers: the torch reference of a weaksup model, inputs, logits on both sides.
# ----------------------------------------------------------------------------------------


def torch_reference(model_name: str, num_classes: int = NUM_CLASSES, image_size: int = 32) -> torch.nn.Module:
    """The torchvision-named torch network with the architecture of weaksup's `model_name`."""
    cfg = models.model_config(model_name)
    if isinstance(cfg, models.ResNetConfig):
        kernel, stride, pool = {"imagenet": (7, 2, True), "small": (3, 1, False), "small_pool": (3, 1, True)}[cfg.stem]
        return ref.ResNet(cfg.stage_sizes, num_classes, groups=cfg.groups, width_per_group=cfg.width_per_group,
                          planes=cfg.planes, stem_kernel=kernel, stem_stride=stride, stem_pool=pool,
                          stem_width=cfg.stem_width)
    if isinstance(cfg, models.RegNetConfig):
        stages = [(s.width, s.depth, s.group_width) for s in cfg.stages()]
        return ref.RegNet(stages, num_classes, stem_width=cfg.stem_width, stem_stride=2 if cfg.stem == "imagenet" else 1,
                          se_ratio=cfg.se_ratio)
    return ref.VisionTransformer(image_size, cfg.patch_size, cfg.num_layers, cfg.num_heads, cfg.width, cfg.mlp_dim,
                                 num_classes)


def pictures(n: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def normalised(images: np.ndarray) -> np.ndarray:
    return np.asarray(train_lib.normalize_images(jnp.asarray(images)))


def torch_out(net: torch.nn.Module, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, pooled features) of the torch network on normalised NCHW pictures."""
    x = torch.from_numpy(normalised(images).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        return net(x).numpy(), net.features(x).numpy()


def weaksup_out(model, variables, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, pooled features) of the weaksup model: its own trunk and head, one compiled program."""

    def both(m, x):
        features = m.trunk(x, False)
        return m.head(features), features

    logits, features = jax.jit(lambda v, x: model.apply(v, x, method=both))(variables, jnp.asarray(normalised(images)))
    return np.asarray(logits), np.asarray(features)


def assert_close(ours: tuple[np.ndarray, ...], theirs: tuple[np.ndarray, ...]) -> None:
    """Logits and features agree within TOL (and are not trivially small)."""
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        assert np.std(b) > 1e-2
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.json"
    transfer_data.vocabulary(NUM_CLASSES).save(path)
    return path


def round_trip(tmp_path, vocab_file, model_name: str, state_file, net, scheme: str = "torchvision"):
    """Import `state_file` as `model_name`, compare logits with `net`, export, reload in torch, compare again."""
    report = transfer.import_weights(model_name, state_file, tmp_path / "run", vocab_path=str(vocab_file))
    assert report.unused == [] and report.head == "from the file" and report.scheme == scheme
    _, vocab, model, variables = ckpt_lib.load_pretrained(tmp_path / "run")
    assert vocab.num_classes == NUM_CLASSES
    images = pictures()
    expected = torch_out(net, images)
    assert_close(weaksup_out(model, variables, images), expected)

    out = transfer.export_weights(tmp_path / "run", tmp_path / "export")
    fresh = torch_reference(model_name).eval()
    fresh.load_state_dict(load_file(str(tmp_path / "export" / "model.safetensors")), strict=True)
    assert_close(torch_out(fresh, images), expected)
    return report, out


# ----------------------------------------------------------------------------------------
# Round trips: torchvision layout -> weaksup -> the same logits -> export -> PyTorch.
# ----------------------------------------------------------------------------------------


def test_resnext_tiny_from_a_pth_file_and_back(tmp_path, vocab_file):
    net = ref.randomize(torch_reference("resnext_tiny"), seed=1)
    torch.save(net.state_dict(), tmp_path / "resnext.pth")
    report, out = round_trip(tmp_path, vocab_file, "resnext_tiny", tmp_path / "resnext.pth", net)
    assert report.image_size == 32 and report.parameters == sum(p.numel() for p in net.parameters())
    # The exported file holds every tensor of the torchvision module, running statistics included.
    exported = load_file(str(tmp_path / "export" / "model.safetensors"))
    assert set(exported) == set(net.state_dict())
    assert out.tensors == len(net.state_dict())
    card = json.loads((tmp_path / "export" / "model_card.json").read_text())
    imported = card["training"]["imported_from"]
    assert imported["scheme"] == "torchvision" and imported["source"] == str(tmp_path / "resnext.pth")
    assert len(imported["sha256"]) == 64 and "loss" not in card["training"]


def test_regnety_tiny_from_a_safetensors_file_and_back(tmp_path, vocab_file):
    net = ref.randomize(torch_reference("regnety_tiny"), seed=2)
    save_file({k: v.numpy() for k, v in net.state_dict().items()}, tmp_path / "regnet.safetensors")
    round_trip(tmp_path, vocab_file, "regnety_tiny", tmp_path / "regnet.safetensors", net)


def test_vit_tiny_from_torchvision_names_and_back(tmp_path, vocab_file):
    net = ref.randomize(torch_reference("vit_tiny"), seed=3)
    torch.save(net.state_dict(), tmp_path / "vit.pth")
    report, _ = round_trip(tmp_path, vocab_file, "vit_tiny", tmp_path / "vit.pth", net)
    assert report.image_size == 32  # read from the 8x8 + 1 position embedding


def test_vit_from_swag_own_names(tmp_path, vocab_file):
    """SWAG's released ViT files: layer_i, mlp.linear_1/2, a (S, 1, D) position embedding, head.layers.head."""
    net = ref.randomize(torch_reference("vit_tiny"), seed=4)
    swag = {}
    for k, v in net.state_dict().items():
        k = (k.replace("encoder.layers.encoder_layer_", "encoder.layers.layer_").replace(".mlp.0.", ".mlp.linear_1.")
             .replace(".mlp.3.", ".mlp.linear_2.").replace("heads.head.", "head.layers.head."))
        swag[k] = v.permute(1, 0, 2).contiguous() if k == "encoder.pos_embedding" else v
    torch.save(swag, tmp_path / "vit_b16_like.torch")
    report = transfer.import_weights("vit_tiny", tmp_path / "vit_b16_like.torch", tmp_path / "run",
                                     vocab_path=str(vocab_file))
    assert report.scheme == "swag" and report.unused == []
    _, _, model, variables = ckpt_lib.load_pretrained(tmp_path / "run")
    images = pictures()
    assert_close(weaksup_out(model, variables, images), torch_out(net, images))


def test_regnet_from_swag_own_names(tmp_path, vocab_file):
    """SWAG's RegNetY files (ClassyVision names): stem.stem.0, f.se.excitation.0/2, f.c, f.final_bn, proj, bn."""
    net = ref.randomize(torch_reference("regnety_tiny"), seed=13)
    renames = [("stem.0.", "stem.stem.0."), ("stem.1.", "stem.stem.1."), (".f.se.fc1.", ".f.se.excitation.0."),
               (".f.se.fc2.", ".f.se.excitation.2."), (".f.c.0.", ".f.c."), (".f.c.1.", ".f.final_bn."),
               (".proj.0.", ".proj."), (".proj.1.", ".bn.")]
    swag = {}
    for k, v in net.state_dict().items():
        for old, new in renames:
            k = new + k[len(old):] if k.startswith(old) else k.replace(old, new)
        swag["head." + k if k.startswith("fc.") else k] = v
    assert "trunk_output.block1.block1-0.f.final_bn.running_var" in swag and "head.fc.weight" in swag
    torch.save(swag, tmp_path / "regnety_like.torch")
    report = transfer.import_weights("regnety_tiny", tmp_path / "regnety_like.torch", tmp_path / "run",
                                     vocab_path=str(vocab_file))
    assert report.scheme == "swag" and report.unused == []
    _, _, model, variables = ckpt_lib.load_pretrained(tmp_path / "run")
    images = pictures()
    assert_close(weaksup_out(model, variables, images), torch_out(net, images))


def test_timm_names_export_and_import_back(tmp_path, vocab_file):
    net = ref.randomize(torch_reference("regnety_tiny"), seed=5)
    torch.save(net.state_dict(), tmp_path / "regnet.pth")
    transfer.import_weights("regnety_tiny", tmp_path / "regnet.pth", tmp_path / "run", vocab_path=str(vocab_file))
    transfer.export_weights(tmp_path / "run", tmp_path / "timm", scheme="timm")
    exported = load_file(str(tmp_path / "timm" / "model.safetensors"))
    # timm's RegNet names (timm/models/regnet.py: stem ConvNormAct, s1.b1 Bottleneck, SEModule, ClassifierHead).
    assert {"stem.conv.weight", "stem.bn.running_var", "s1.b1.conv1.conv.weight", "s1.b1.conv2.bn.weight",
            "s1.b1.se.fc1.weight", "s1.b1.se.fc2.bias", "s1.b1.conv3.conv.weight", "s1.b1.downsample.conv.weight",
            "s1.b1.downsample.bn.num_batches_tracked", "head.fc.weight"} <= set(exported)
    report = transfer.import_weights("regnety_tiny", tmp_path / "timm" / "model.safetensors", tmp_path / "again",
                                     vocab_path=str(vocab_file))
    assert report.scheme == "timm" and report.unused == []
    _, _, model, variables = ckpt_lib.load_pretrained(tmp_path / "again")
    images = pictures()
    assert_close(weaksup_out(model, variables, images), torch_out(net, images))


def test_vit_timm_names():
    model = models.get_model("vit_tiny", 10)
    shapes = transfer._shapes(model, 32)
    keys = {e.key: e for e in names.entries(model.config, shapes, "timm")}
    # timm/models/vision_transformer.py: PatchEmbed.proj, cls_token, pos_embed, Block (norm1, attn.qkv,
    # attn.proj, norm2, mlp.fc1/fc2), final norm, head.
    assert {"patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed", "blocks.0.norm1.weight",
            "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.5.attn.proj.bias", "blocks.0.norm2.bias",
            "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight", "norm.bias", "head.weight"} <= set(keys)
    assert names.torch_shape(shapes["params"]["trunk"]["encoder_layer_0"]["self_attention"]["in_proj"]["kernel"].shape,
                             keys["blocks.0.attn.qkv.weight"].layout) == (576, 192)


@pytest.mark.parametrize("model_name, count", [
    # torchvision's published num_params: resnext101_32x8d, regnet_y_16gf, vit_b_16.
    ("resnext101_32x8d", 88_791_336), ("regnety_16gf", 83_590_140), ("vit_b16", 86_567_656),
])
def test_full_size_models_have_torchvision_names_and_shapes(model_name, count):
    with torch.device("meta"):
        net = torch_reference(model_name, num_classes=1000, image_size=224)
    assert sum(p.numel() for p in net.parameters()) == count  # the reference is torchvision's architecture
    model = models.get_model(model_name, 1000)
    shapes = transfer._shapes(model, 224)
    ours = {e.key: names.torch_shape(transfer._get(shapes[e.collection], e.path).shape, e.layout)
            for e in names.entries(model.config, shapes, "torchvision")}
    theirs = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert ours == theirs


# ----------------------------------------------------------------------------------------
# A run trained by weaksup -> export -> PyTorch; the model card.
# ----------------------------------------------------------------------------------------


def test_a_weaksup_run_exports_to_pytorch_with_its_model_card(tmp_path):
    run = transfer_data.write_pretraining_checkpoint(tmp_path / "run", "resnext_tiny", step=5, seed=3)
    config, vocab, model, variables = ckpt_lib.load_pretrained(run)
    size = transfer_data.IMAGE_SIZE
    out = transfer.export_weights(run, tmp_path / "export")
    net = torch_reference("resnext_tiny", num_classes=vocab.num_classes).eval()
    net.load_state_dict(load_file(str(tmp_path / "export" / "model.safetensors")), strict=True)
    images = pictures(size=size)
    (ours, ours_features), (theirs, theirs_features) = weaksup_out(model, variables, images), torch_out(net, images)
    assert np.std(theirs_features) > 1e-2
    np.testing.assert_allclose(ours_features, theirs_features, rtol=0, atol=TOL)
    # A fresh head is normal(0.01): logits are small, so they are held to a tighter bound.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    assert int(net.bn1.num_batches_tracked) == 5

    card = json.loads((tmp_path / "export" / "model_card.json").read_text())
    assert card["step"] == out.step == 5
    assert card["architecture"]["model"] == "resnext_tiny"
    assert card["architecture"]["parameters"] == sum(p.numel() for p in net.parameters())
    assert card["preprocessing"]["resolution"] == size
    assert card["preprocessing"]["mean"] == list(train_lib.MEAN_RGB)
    assert card["preprocessing"]["std"] == list(train_lib.STDDEV_RGB)
    assert card["vocabulary"]["num_classes"] == vocab.num_classes and card["vocabulary"]["hash"] == vocab.hash
    assert json.loads((tmp_path / "export" / "vocab.json").read_text())["wnids"] == vocab.wnids
    assert card["training"]["loss"] == config.loss
    assert "resnext_tiny" in (tmp_path / "export" / "MODEL_CARD.md").read_text()
    assert not list((tmp_path / "export").glob(".tmp-*"))


# ----------------------------------------------------------------------------------------
# An imported run is a run: evaluate's and predict's loading accept it.
# ----------------------------------------------------------------------------------------


def test_an_imported_run_feeds_evaluate_and_predict(tmp_path, vocab_file):
    net = ref.randomize(torch_reference("vit_tiny"), seed=6)
    torch.save(net.state_dict(), tmp_path / "vit.pth")
    transfer.import_weights("vit_tiny", tmp_path / "vit.pth", tmp_path / "run", vocab_path=str(vocab_file))
    images = pictures(n=5)

    config = config_lib.evaluate_config()
    config.pretrained.workdir = str(tmp_path / "run")
    config.random_baseline = False
    mesh = sharding.make_mesh({"data": -1})
    (init,) = load_inits(config, mesh)
    assert (init.name, init.arch, init.image_size, init.step) == ("pretrained", "vit_tiny", 32, 0)
    features = train_lib.predict_on_host(train_lib.make_feature_fn(init.model, mesh), init.variables, images, mesh)
    logits, expected_features = torch_out(net, images)
    np.testing.assert_allclose(features, expected_features, rtol=0, atol=TOL)

    predictor = Predictor(tmp_path / "run")
    probabilities = predictor.probabilities(images)
    expected = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=TOL)
    assert [lab.wnid for lab in predictor.top_k(probabilities, 1)[0]] == [
        transfer_data.vocabulary(NUM_CLASSES).wnids[int(np.argmax(expected[0]))]]


def test_a_thousand_class_head_without_a_vocabulary_is_imagenet(tmp_path):
    net = ref.randomize(torch_reference("resnet_tiny", num_classes=1000), seed=7)
    torch.save(net.state_dict(), tmp_path / "in1k.pth")
    report = transfer.import_weights("resnet_tiny", tmp_path / "in1k.pth", tmp_path / "run")
    assert report.num_classes == 1000 and report.vocabulary.startswith("ImageNet-1k")
    _, vocab, _, _ = ckpt_lib.load_pretrained(tmp_path / "run")
    # torchvision's class order: sorted wnids, tench first.
    assert vocab.wnids[0] == "n01440764" and vocab.wnids == sorted(vocab.wnids)
    assert vocab.names[0] == "tench.n.01"


def test_a_trunk_without_head_needs_a_vocabulary_and_gets_a_fresh_head(tmp_path, vocab_file):
    net = ref.randomize(torch_reference("vit_tiny"), seed=8)
    trunk = {k: v for k, v in net.state_dict().items() if not k.startswith("heads.")}
    torch.save(trunk, tmp_path / "trunk.pth")
    with pytest.raises(UsageError, match="no classifier head"):
        transfer.import_weights("vit_tiny", tmp_path / "trunk.pth", tmp_path / "run")
    report = transfer.import_weights("vit_tiny", tmp_path / "trunk.pth", tmp_path / "run", vocab_path=str(vocab_file))
    assert report.head == "initialised"
    _, _, model, variables = ckpt_lib.load_pretrained(tmp_path / "run")
    images = pictures()
    np.testing.assert_allclose(weaksup_out(model, variables, images)[1], torch_out(net, images)[1], rtol=0, atol=TOL)


def test_a_vit_imported_at_another_resolution_resamples_its_position_embedding(tmp_path, vocab_file):
    net = ref.randomize(torch_reference("vit_tiny"), seed=9)
    torch.save(net.state_dict(), tmp_path / "vit.pth")
    report = transfer.import_weights("vit_tiny", tmp_path / "vit.pth", tmp_path / "run", vocab_path=str(vocab_file),
                                     image_size=48)
    assert report.image_size == 48
    config, _, _, variables = ckpt_lib.load_pretrained(tmp_path / "run")
    assert config.input.image_size == 48
    pos = np.asarray(variables["params"]["trunk"]["pos_embedding"])
    assert pos.shape == (1, 12 * 12 + 1, 192)
    source = net.encoder.pos_embedding.detach().numpy()
    np.testing.assert_array_equal(pos[:, 0], source[:, 0])  # the class-token slot is kept
    # align_corners=True keeps the grid's corners.
    np.testing.assert_allclose(pos[0, 1], source[0, 1], atol=1e-6)
    np.testing.assert_allclose(pos[0, -1], source[0, -1], atol=1e-6)


# ----------------------------------------------------------------------------------------
# Errors: one line naming the file, the key and both shapes.
# ----------------------------------------------------------------------------------------


def test_a_state_dict_of_another_shape_names_the_key_and_both_shapes(tmp_path, vocab_file):
    net = ref.randomize(torch_reference("resnext_tiny"), seed=10)
    torch.save(net.state_dict(), tmp_path / "resnext.pth")
    with pytest.raises(UsageError) as err:  # resnet_tiny's bottlenecks are 4x narrower and not grouped
        transfer.import_weights("resnet_tiny", tmp_path / "resnext.pth", tmp_path / "run", vocab_path=str(vocab_file))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'resnext.pth'}: 66 tensor(s) do not fit resnet_tiny (torchvision names): "
                              "layer1.0.conv1.weight: file (64, 32, 1, 1), resnet_tiny expects (16, 32, 1, 1); "
                              "layer1.0.bn1.weight: file (64,), resnet_tiny expects (16,);")
    assert "\n" not in message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_and_unused_keys_are_listed(tmp_path, vocab_file):
    state = ref.randomize(torch_reference("resnet_tiny"), seed=11).state_dict()
    running_var = state.pop("layer2.1.bn3.running_var")
    state["aux.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(UsageError, match=r"1 tensor\(s\) of resnet_tiny missing.*layer2\.1\.bn3\.running_var.*"
                                         r"unused keys in the file: aux\.weight"):
        transfer.import_weights("resnet_tiny", tmp_path / "partial.pth", tmp_path / "run", vocab_path=str(vocab_file))
    state["layer2.1.bn3.running_var"] = running_var
    torch.save(state, tmp_path / "extra.pth")
    report = transfer.import_weights("resnet_tiny", tmp_path / "extra.pth", tmp_path / "run",
                                     vocab_path=str(vocab_file))
    assert report.unused == ["aux.weight"]
    assert json.loads((tmp_path / "run" / transfer.IMPORT_RECORD).read_text())["unused"] == ["aux.weight"]


def test_a_head_that_does_not_fit_the_vocabulary(tmp_path, vocab_file):
    torch.save(ref.randomize(torch_reference("resnet_tiny", num_classes=7)).state_dict(), tmp_path / "h7.pth")
    with pytest.raises(UsageError, match=r"fc\.weight has 7 classes \(7, 256\), but vocabulary .* has 4"):
        transfer.import_weights("resnet_tiny", tmp_path / "h7.pth", tmp_path / "run", vocab_path=str(vocab_file))
    with pytest.raises(UsageError, match="pass --vocab FILE with 7 labels"):
        transfer.import_weights("resnet_tiny", tmp_path / "h7.pth", tmp_path / "run")


def test_the_command_line(tmp_path, vocab_file, capsys):
    net = ref.randomize(torch_reference("resnet_tiny"), seed=12)
    save_file({k: v.numpy() for k, v in net.state_dict().items()}, tmp_path / "r.safetensors")
    assert cli.main(["import", "--model", "resnext_tiny", "--from", str(tmp_path / "r.safetensors"),
                     "--workdir", str(tmp_path / "bad"), "--vocab", str(vocab_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("weights: error: ") and "file (16,), resnext_tiny expects (64,)" in err
    assert "\n" not in err
    assert cli.main(["import", "--model", "resnet_tiny", "--from", str(tmp_path / "nothing.pth"),
                     "--workdir", str(tmp_path / "bad")]) == 2
    assert "nothing.pth: no such file" in capsys.readouterr().err

    argv = ["import", "--model", "resnet_tiny", "--from", str(tmp_path / "r.safetensors"), "--workdir",
            str(tmp_path / "run"), "--vocab", str(vocab_file)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.startswith("weights: imported ")
    assert cli.main(argv) == 2  # the folder holds a checkpoint now
    assert "already holds checkpoints" in capsys.readouterr().err
    assert cli.main(["export", "--workdir", str(tmp_path / "run"), "--output", str(tmp_path / "out"),
                     "--names", "timm"]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    assert set(load_file(str(tmp_path / "out" / "model.safetensors"))) == set(net.state_dict())


def test_unreadable_files_are_usage_errors(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    (tmp_path / "junk.pth").write_bytes(b"not a zip archive")
    torch.save({"model": {"w": torch.zeros(2)}, "optimizer": {"lr": 0.1}}, tmp_path / "wrapped.pth")
    torch.save({"step": 3}, tmp_path / "nothing.pth")
    (tmp_path / "w.h5").write_bytes(b"")
    for name, message in [("junk.safetensors", "not a readable safetensors file"),
                          ("junk.pth", "not a readable PyTorch weights file"),
                          ("nothing.pth", "holds no state dict"), ("w.h5", "unknown weights format '.h5'")]:
        with pytest.raises(files.WeightsFileError, match=message):
            files.read_state_dict(tmp_path / name)
    assert set(files.read_state_dict(tmp_path / "wrapped.pth")) == {"w"}  # {"model": state dict} unwrapped


def test_safetensors_files_need_no_torch(tmp_path):
    save_file({"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}, tmp_path / "w.safetensors")
    code = ("import sys; sys.modules['torch'] = None\n"
            "from weaksup.weights import files\n"
            f"print(files.read_state_dict({str(tmp_path / 'w.safetensors')!r})['a.weight'].sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "15.0"


def test_layouts_invert():
    rng = np.random.default_rng(0)
    for layout, shape in [("conv", (3, 3, 2, 8)), ("linear", (5, 7)), ("linear_1x1", (5, 7)),
                          ("seq_first", (1, 9, 4)), ("same", (6,))]:
        x = rng.normal(size=shape)
        assert names.torch_shape(shape, layout) == names.to_torch(x, layout).shape
        np.testing.assert_array_equal(names.from_torch(names.to_torch(x, layout), layout), x)
    assert math.prod(names.torch_shape((3, 3, 2, 8), "conv")) == 144
    with pytest.raises(ValueError, match="1x1"):
        names.from_torch(np.zeros((5, 7, 3, 3)), "linear_1x1")
