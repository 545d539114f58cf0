"""Training metrics: precision@k, mAP, and the TensorBoard / JSON-lines writer."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from weaksup import metrics


def test_precision_at_k():
    logits = jnp.array([[0.1, 0.9, 0.5, 0.0], [0.8, 0.1, 0.2, 0.3]])
    labels = jnp.array([[1, -1], [2, 3]])
    np.testing.assert_allclose(np.asarray(metrics.precision_at_k(logits, labels, 1)), [1.0, 0.0])
    np.testing.assert_allclose(np.asarray(metrics.precision_at_k(logits, labels, 2)), [0.5, 0.5])
    # Class labels (B,) work as well; padding never counts as a hit.
    np.testing.assert_allclose(np.asarray(metrics.precision_at_k(logits, jnp.array([1, -1]), 1)), [1.0, 0.0])


def test_map_matches_sklearn():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 6))
    pos = rng.random((50, 6)) < 0.3
    pos[:, 5] = False  # a class without positives is left out of the mean
    ap = metrics.average_precision(scores, pos)
    for c in range(5):
        assert ap[c] == pytest.approx(average_precision_score(pos[:, c], scores[:, c]))
    assert np.isnan(ap[5])
    assert metrics.mean_average_precision(scores, pos) == pytest.approx(np.mean(ap[:5]))
    got = metrics.positives_from_labels(np.array([[0, 2, -1], [1, -1, -1]]), 3)
    np.testing.assert_array_equal(got, [[1, 0, 1], [0, 1, 0]])


def test_writer_produces_tensorboard_and_jsonl(tmp_path):
    w = metrics.MetricWriter(tmp_path, enabled=True, console=None)
    w.write_scalars(1, {"loss": 2.5, "prec@1": np.float32(0.25)})
    w.write_scalars(2, {"loss": float("nan")})
    w.close()
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["loss"] == 2.5 and rows[0]["prec@1"] == 0.25 and rows[1]["loss"] is None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("loss")] == [2.5]
    assert metrics.read_jsonl(tmp_path / "metrics.jsonl")[0]["loss"] == 2.5
