"""The trainer's held-out set is exactly what the input pipeline keeps out of sampling."""

import numpy as np
import pytest

from _train_data import tiny_inputs
from weaksup.corpus.shards import Corpus
from weaksup.input_pipeline import make_pretrain_iterator
from weaksup.evaluators.holdout import load_holdout

HOLDOUT = 48


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return tiny_inputs(tmp_path_factory.getbasetemp() / "train_inputs")


def test_holdout_matches_the_pipeline_exclusion(inputs):
    corpus_dir, vocab_path = inputs
    n = len(Corpus(corpus_dir))
    holdout = load_holdout(str(corpus_dir), vocab_path, HOLDOUT, image_size=16, max_labels=8, local_batch=10)
    ids = holdout.record_ids[holdout.mask]
    assert holdout.records == HOLDOUT and sorted(ids) == list(range(n - HOLDOUT, n))
    assert len(holdout.images) % 10 == 0 and not holdout.mask[~(holdout.record_ids >= 0)].any()
    assert np.all(holdout.labels[~holdout.mask] == -1)

    # Its labels are the pipeline's labels for those records.
    full = make_pretrain_iterator(corpus_dir, vocab_path, global_batch_size=8, image_size=16, process_index=0,
                                  process_count=1, with_record_index=True, num_threads=1)
    labels_by_record = {}
    for _ in range(80):
        b = next(full)
        labels_by_record.update({int(r): tuple(l) for r, l in zip(b["record"], b["labels"])})
    shared = [i for i, r in enumerate(holdout.record_ids) if r in labels_by_record]
    assert shared, "the full stream should meet some held-out records"
    for i in shared:
        assert tuple(holdout.labels[i]) == labels_by_record[int(holdout.record_ids[i])]

    # Sampling with the holdout never draws a held-out record, yet covers the rest.
    it = make_pretrain_iterator(corpus_dir, vocab_path, global_batch_size=8, image_size=16, process_index=0,
                                process_count=1, with_record_index=True, num_threads=1, holdout_records=HOLDOUT)
    seen = np.concatenate([next(it)["record"] for _ in range(80)])
    assert seen.max() < n - HOLDOUT
    assert len(set(seen.tolist())) > (n - HOLDOUT) // 2
