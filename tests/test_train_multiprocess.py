"""Two trainer processes (jax.distributed, gloo) follow the same loss curve as one process."""

import json
import socket
import subprocess

import numpy as np
import pytest

from _train_data import tiny_inputs, train_argv, train_env

pytestmark = pytest.mark.slow

STEPS = 6


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")


def _losses(workdir):
    rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_two_processes_match_one(inputs, tmp_path, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "jax_cache"
    overrides = ("--config.log_every_steps=1", "--config.checkpoint.every_steps=3")
    one = tmp_path / "one"
    r = subprocess.run(train_argv(inputs, one, f"steps={STEPS}", overrides), env=train_env(2, cache),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    two = tmp_path / "two"
    procs = [
        subprocess.Popen(
            train_argv(inputs, two, f"steps={STEPS}", overrides)
            + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)],
            env=train_env(1, cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=300)[0])
        finally:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    assert "2 process(es)" in outs[0]

    a, b = _losses(one), _losses(two)
    assert sorted(a) == sorted(b) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([b[s] for s in sorted(b)], [a[s] for s in sorted(a)], rtol=1e-5)
    assert len(set(a.values())) > 1  # the curve moves, so agreement is not trivial
    assert sorted(int(p.name) for p in (two / "checkpoints").iterdir() if p.name.isdigit()) == [3, 6]
