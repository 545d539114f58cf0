"""Configs: file.py:arg loading, --config overrides, locking, durations."""

import textwrap

import pytest

from weaksup import config as config_lib
from weaksup.config import ConfigError


@pytest.fixture()
def cfg_file(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(textwrap.dedent('''
        import ml_collections
        from weaksup.config import parse_arg

        def get_config(arg=None):
            arg = parse_arg(arg, runlocal=False, width=64)
            c = ml_collections.ConfigDict()
            c.width = arg.width
            c.batch = 8 if arg.runlocal else 256
            c.input = ml_collections.ConfigDict(dict(global_batch_size=c.batch))
            c.optim = ml_collections.ConfigDict(dict(base_lr=0.1, warmup_steps=None, warmup_epochs=1.0))
            c.total_steps = None
            c.total_epochs = 2.0
            c.total_examples = None
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


def test_json_round_trip(cfg_file):
    c = config_lib.load_config(str(cfg_file))
    back = config_lib.config_from_json(config_lib.config_to_json(c))
    assert back.optim.base_lr == c.optim.base_lr and list(back.tags) == [1, 2]
