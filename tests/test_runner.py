"""The command runner's process set-up: XLA's deterministic GPU ops from `config.deterministic`,
for the command's run only."""

from __future__ import annotations

import os

import pytest

from weaksup import runner

FLAG = "--xla_gpu_deterministic_ops=true"


def _flags_seen_by_the_body(argv: list[str], tmp_path) -> str:
    seen = {}

    def body(config, args) -> int:
        seen["flags"] = os.environ.get("XLA_FLAGS", "")
        return 0

    assert runner.run_config_command("train", "test", ["--config", "tiny:runlocal", "--workdir",
                                                       str(tmp_path / "run"), *argv], body) == 0
    return seen["flags"]


@pytest.mark.parametrize("before", ["", "--xla_force_host_platform_device_count=8"])
def test_the_body_runs_with_deterministic_gpu_ops_added_to_the_flags(monkeypatch, tmp_path, before):
    monkeypatch.setenv("XLA_FLAGS", before)
    flags = _flags_seen_by_the_body([], tmp_path)
    assert flags.split() == before.split() + [FLAG]
    assert os.environ["XLA_FLAGS"] == before  # the caller's environment as it was


def test_deterministic_false_leaves_the_flags_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    assert _flags_seen_by_the_body(["--config.deterministic=False"], tmp_path) == "--xla_force_host_platform_device_count=8"


def test_a_users_own_setting_of_the_flag_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_deterministic_ops=false")
    assert _flags_seen_by_the_body([], tmp_path) == "--xla_gpu_deterministic_ops=false"


def test_an_unset_environment_gets_only_the_flag_and_is_unset_again(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with runner.deterministic_gpu_ops(True):
        assert os.environ["XLA_FLAGS"] == FLAG
    assert "XLA_FLAGS" not in os.environ
