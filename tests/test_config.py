"""Configs: file.py:arg loading, --config overrides, locking, durations."""

import textwrap

import pytest

from weaksup import config as config_lib
from weaksup.config import ConfigError


@pytest.fixture()
def cfg_file(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(textwrap.dedent('''
        from weaksup.config import parse_arg, pretrain_config

        def get_config(arg=None):
            arg = parse_arg(arg, runlocal=False, width=64)
            c = pretrain_config()
            c.width = arg.width
            c.batch = 8 if arg.runlocal else 256
            c.input.global_batch_size = c.batch
            c.optim.warmup_epochs = 1.0
            c.total_epochs = 2.0
            c.tags = (1, 2)
            return c
    '''))
    return path


def test_arg_and_overrides(cfg_file):
    c = config_lib.load_config(f"{cfg_file}:runlocal,width=32", ["--config.optim.base_lr=0.5", "--config.tags=(3,4,5)"])
    assert c.batch == 8 and c.width == 32
    assert c.optim.base_lr == 0.5 and tuple(c.tags) == (3, 4, 5)


def test_unknown_keys_are_errors(cfg_file):
    with pytest.raises(ConfigError, match="unknown config key 'optim.base_rl'"):
        config_lib.load_config(str(cfg_file), ["--config.optim.base_rl=0.5"])
    with pytest.raises(ConfigError, match="unknown config argument 'widht'"):
        config_lib.load_config(f"{cfg_file}:widht=3")
    c = config_lib.load_config(str(cfg_file))
    with pytest.raises(AttributeError):
        c.new_field = 1  # locked
    with pytest.raises(ConfigError, match="bad value for width"):
        config_lib.load_config(f"{cfg_file}:width=wide")
    with pytest.raises(ConfigError, match="config file not found"):
        config_lib.load_config(str(cfg_file.with_name("missing.py")))


def test_durations_resolved_in_one_place(cfg_file):
    c = config_lib.load_config(f"{cfg_file}:runlocal")
    assert config_lib.total_steps(c, num_examples=100) == 25  # ceil(2 * 100 / 8)
    assert config_lib.warmup_steps(c, num_examples=100) == 13
    assert config_lib.duration_steps(examples=17, global_batch_size=8) == 3
    with pytest.raises(ConfigError, match="exactly one"):
        config_lib.duration_steps(steps=3, epochs=1.0, global_batch_size=8)
    with pytest.raises(ConfigError, match="training set size is unknown"):
        config_lib.total_steps(c)


def test_defaults_live_in_the_base_config_and_a_config_without_them_is_named():
    import ml_collections

    base = config_lib.pretrain_config()
    assert base.optim.momentum == 0.9 and base.checkpoint.keep == 3 and base.input.resampling == "natural"
    tiny = config_lib.load_config("configs/tiny.py")
    assert tiny.optim.nesterov is True and tiny.input.crop_min_area == 0.08  # not restated there, inherited
    partial = ml_collections.ConfigDict(config_lib.config_to_json(tiny))
    del partial.optim["momentum"]
    del partial["nan_policy"]
    with pytest.raises(ConfigError, match=r"lacks nan_policy, optim\.momentum: start it from"):
        config_lib.check_config(partial)
    config_lib.check_config(tiny)


def test_json_round_trip(cfg_file):
    c = config_lib.load_config(str(cfg_file))
    back = config_lib.config_from_json(config_lib.config_to_json(c))
    assert back.optim.base_lr == c.optim.base_lr and list(back.tags) == [1, 2]
