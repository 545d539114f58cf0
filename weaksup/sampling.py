"""Resampling posts by label frequency: natural, uniform, square-root (paper Sec. 3.1), metaclip.

Hashtag frequencies are Zipfian, so the paper resamples images so that label frequencies
follow their natural, square-root or uniform distribution. The exact definition used here:

  n_l      number of posts that carry label l (after "prefer specific" pruning), over the
           posts that have at least one label;
  f(n)     n (natural), sqrt(n) (sqrt) or 1 (uniform);
  w_i      weight of post i with labels L_i (k_i = |L_i| >= 1):
               w_i = (1 / k_i) * sum_{l in L_i} f(n_l) / n_l .

A post draws with probability w_i / sum_j w_j. For posts with one label the expected number
of draws of label l is then exactly proportional to f(n_l); a multi-label post splits its
share evenly across its labels, the same 1/k split as its softmax target. Under `natural`
every labelled post weighs 1, and an epoch is a plain permutation of the labelled posts
(without replacement), so one epoch visits each labelled post exactly once. `uniform` and
`sqrt` draw with replacement; an epoch has as many draws as there are labelled posts.

`metaclip` is MetaCLIP's balancing (facebookresearch/MetaCLIP `metaclip/balancing.py`): a
labelled post is kept with probability

  p_i = max_{l in L_i} min(1, t / n_l),

so a label's posts are all kept while it has at most t of them, and about t of them are
kept (plus those kept through rarer labels) beyond that. The decision is one uniform draw
u_i per post, u_i < p_i, taken from a stream of the seed alone: the kept set is a pure
function of (seed, post) and the same in every epoch, as a curated subset is. (MetaCLIP's
script draws one uniform per matched entry and keeps on any success, which keeps a
multi-label post with probability 1 - prod(1 - p_l) >= the max; the max form needs one
draw per post and keeps about t posts of a label whose posts carry no rarer label.) Each
epoch is then a permutation of the kept posts, as under `natural`. `balanced_subset` gives the kept set
for `python -m weaksup corpus balance`, which writes it as a corpus of its own.

Each epoch's index sequence is a pure function of (seed, epoch), so every process computes
the same global sequence and takes its own part of it (see `weaksup.input_pipeline`), and a
resumed run regenerates exactly the sequence it was reading.
"""

from __future__ import annotations

import numpy as np

MODES = ("natural", "uniform", "sqrt", "metaclip")
# Modes whose epoch is a permutation (each kept post once) rather than draws with replacement.
_PERMUTED = ("natural", "metaclip")
# MetaCLIP's t for its 400M-pair pool; scale it with the corpus (t / pool size is the lever).
DEFAULT_BALANCE_T = 20_000

# Distinguishes the sampler's random stream from other per-epoch streams with the same seed.
_STREAM = 0x5A3D
# The stream of metaclip's per-post keep draws (one per post, not per epoch).
_BALANCE_STREAM = 0xBA1A


def training_eligible(num_records: int, holdout_records: int) -> np.ndarray | None:
    """Which records pretraining may draw: all but the last `holdout_records`, which the
    held-out mAP scores; None when none are held out."""
    if not holdout_records:
        return None
    if not 0 < holdout_records < num_records:
        raise ValueError(f"holdout_records={holdout_records} must lie in (0, {num_records})")
    return np.arange(num_records) < num_records - int(holdout_records)


def label_post_counts(offsets: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """n_l: the number of posts carrying each label, from CSR per-post labels."""
    del offsets  # labels are unique within a post, so a plain bincount counts posts
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def _eligible_csr(
    offsets: np.ndarray, labels: np.ndarray, eligible: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, labels, k) with the labels of ineligible posts removed (k = 0 for them)."""
    offsets = np.asarray(offsets, np.int64)
    labels = np.asarray(labels, np.int64)
    k = np.diff(offsets)
    if eligible is not None:
        k = np.where(eligible, k, 0)
        labels = labels[np.repeat(np.asarray(eligible, bool), np.diff(offsets))]
        offsets = np.concatenate([[0], np.cumsum(k)])
    return offsets, labels, k


def balance_keep_probability(
    offsets: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    t: float,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """p_i = max over post i's labels of min(1, t / n_l) (0 without labels); metaclip mode."""
    if not t > 0:
        raise ValueError(f"the balancing threshold t must be > 0, got {t}")
    offsets, labels, k = _eligible_csr(offsets, labels, eligible)
    n = label_post_counts(offsets, labels, num_classes).astype(np.float64)
    per_label = np.minimum(1.0, t / np.maximum(n, 1.0))
    p = np.zeros(len(k), np.float64)
    has = k > 0
    # reduceat over each labelled post's run of labels (empty runs are excluded first).
    p[has] = np.maximum.reduceat(per_label[labels], offsets[:-1][has]) if labels.size else 0.0
    return p


def balanced_subset(
    offsets: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    t: float,
    seed: int = 0,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean keep mask of MetaCLIP balancing: u_i < p_i, u_i a function of (seed, i) only."""
    p = balance_keep_probability(offsets, labels, num_classes, t, eligible)
    # The i-th draw of a fixed stream does not depend on how many follow it, so a post's
    # decision is the same whatever the corpus length.
    u = np.random.default_rng([int(seed), _BALANCE_STREAM]).random(len(p))
    return u < p


def post_weights(
    offsets: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    mode: str,
    eligible: np.ndarray | None = None,
    *,
    balance_t: float = DEFAULT_BALANCE_T,
    seed: int = 0,
) -> np.ndarray:
    """w_i for every post (0 for posts without labels), as defined in the module docstring.

    `offsets` (N + 1,) and `labels` are the CSR form of each post's unique labels.
    `eligible` (N,) bool, when given, removes posts (e.g. a held-out set) before counting.
    Under `metaclip` w_i is 1 for a kept post and 0 otherwise (`balance_t`, `seed`).
    """
    if mode not in MODES:
        raise ValueError(f"unknown resampling mode {mode!r}; expected one of {MODES}")
    if mode == "metaclip":
        return balanced_subset(offsets, labels, num_classes, balance_t, seed, eligible).astype(np.float64)
    offsets, labels, k = _eligible_csr(offsets, labels, eligible)
    n = label_post_counts(offsets, labels, num_classes).astype(np.float64)
    if mode == "natural":
        per_label = np.ones_like(n)
    elif mode == "sqrt":
        per_label = np.zeros_like(n)
        np.divide(np.sqrt(n), n, out=per_label, where=n > 0)
    else:
        per_label = np.zeros_like(n)
        np.divide(1.0, n, out=per_label, where=n > 0)
    sums = np.zeros(len(k), np.float64)
    post_of = np.repeat(np.arange(len(k)), k)
    np.add.at(sums, post_of, per_label[labels])
    weights = np.zeros(len(k), np.float64)
    np.divide(sums, k, out=weights, where=k > 0)
    return weights


class Resampler:
    """Deterministic per-epoch sequences of record indices, drawn by label frequency."""

    def __init__(
        self,
        offsets: np.ndarray,
        labels: np.ndarray,
        num_classes: int,
        mode: str = "natural",
        seed: int = 0,
        epoch_size: int | None = None,
        eligible: np.ndarray | None = None,
        balance_t: float = DEFAULT_BALANCE_T,
    ):
        self.mode = mode
        self.seed = int(seed)
        self.weights = post_weights(offsets, labels, num_classes, mode, eligible,
                                    balance_t=balance_t, seed=self.seed)
        self.labelled = np.flatnonzero(self.weights > 0)
        if len(self.labelled) == 0:
            raise ValueError("no post has a label in this vocabulary; nothing to sample")
        self.epoch_size = int(epoch_size or len(self.labelled))
        if mode in _PERMUTED and self.epoch_size != len(self.labelled):
            raise ValueError(
                f"{mode} sampling is a permutation of the {len(self.labelled)} kept labelled "
                f"posts; epoch_size={self.epoch_size} cannot differ"
            )
        w = self.weights[self.labelled]
        self._cdf = np.cumsum(w / w.sum())
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.epoch_size

    def epoch(self, epoch: int) -> np.ndarray:
        """The record indices (int64) of one epoch, in reading order."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        rng = np.random.default_rng([self.seed, int(epoch), _STREAM])
        if self.mode in _PERMUTED:
            order = rng.permutation(self.labelled)
        else:
            u = rng.random(self.epoch_size)
            # Clip guards the last bin against cdf[-1] landing a hair below 1.0.
            pick = np.minimum(np.searchsorted(self._cdf, u, side="right"), len(self._cdf) - 1)
            order = self.labelled[pick]
        self._cached = (int(epoch), order)
        return order

    def record_at(self, position: int) -> tuple[int, int, int]:
        """(epoch, position within the epoch, record index) of a global stream position."""
        epoch, pos = divmod(int(position), self.epoch_size)
        return epoch, pos, int(self.epoch(epoch)[pos])
