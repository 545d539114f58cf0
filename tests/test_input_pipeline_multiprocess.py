"""Two real JAX processes (jax.distributed, gloo on localhost) split one epoch exactly."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from hashtag_corpus import write_corpus
from weaksup.labels import build_from_corpus

WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding, PartitionSpec as P

    port, pid, corpus, vocab, out = sys.argv[1:]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=int(pid))
    from weaksup import input_pipeline as ip

    # process_index / process_count come from jax.
    it = ip.make_pretrain_iterator(corpus, vocab, global_batch_size=8, image_size=16, seed=4,
                                   num_epochs=1, drop_remainder=False, with_record_index=True)
    batches = list(it)
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    first = batches[0]
    glob = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), first["record"].astype(np.int32))
    gathered = multihost_utils.process_allgather(glob, tiled=True)
    json.dump({
        "records": [int(r) for b in batches for r in b["record"]],
        "first": first["record"].tolist(),
        "global_shape": list(glob.shape),
        "gathered": np.asarray(gathered).tolist(),
        "process_index": jax.process_index(),
    }, open(out, "w"))
    jax.distributed.shutdown()
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_partition_an_epoch_without_overlap_or_gaps(tmp_path):
    posts = [[["dog", "cat", "bird", "fish"][i % 4]] for i in range(33)] + [["lonely"], []]
    corpus = write_corpus(tmp_path / "corpus", posts, num_shards=3, image_size=(24, 24))
    vocab = tmp_path / "vocab.json"
    build_from_corpus(corpus, vocab, mode="raw", min_count=2)
    port = _free_port()
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    tests_dir = str(Path(__file__).parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests_dir, env.get("PYTHONPATH")]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(port), str(p), str(corpus), str(vocab), str(tmp_path / f"p{p}.json")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for p in range(2)
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    out = [json.loads((tmp_path / f"p{p}.json").read_text()) for p in range(2)]
    assert [o["process_index"] for o in out] == [0, 1]
    a, b = (set(o["records"]) for o in out)
    assert len(a) == len(out[0]["records"]) and len(b) == len(out[1]["records"])
    assert not a & b
    assert a | b == set(range(33))  # every labelled post, the two unlabelled ones never
    # Batches are global arrays: 4 rows from each process make the global batch of 8.
    assert out[0]["global_shape"] == [8]
    assert out[0]["gathered"] == out[0]["first"] + out[1]["first"]
    assert out[1]["gathered"] == out[0]["gathered"]
    # One process reading the whole epoch sees the same global stream.
    from weaksup import input_pipeline as ip

    single = ip.make_pretrain_iterator(corpus, vocab, global_batch_size=8, image_size=16, seed=4,
                                       num_epochs=1, drop_remainder=False, with_record_index=True,
                                       process_index=0, process_count=1)
    first = next(single)["record"].tolist()
    assert first == out[0]["first"] + out[1]["first"]
    assert np.unique(first).size == 8
