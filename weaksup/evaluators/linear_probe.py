"""Linear probe: multinomial logistic regression on frozen features, solved in JAX.

The paper's feature-transfer protocol: a linear classifier on the penultimate features
of a frozen network. The classifier minimises

    mean_i CE(softmax(W^T x_i + b), y_i) + l2 / 2 * ||W||^2        (bias unpenalised)

on standardised features -- the objective scikit-learn's LogisticRegression minimises
with C = 1 / (l2 * n). It is solved full-batch with L-BFGS inside one jitted
`while_loop`, so a fit is a single XLA program with no host round trips.

What makes it fast on a CPU, where the two (N, D) x (D, C) matmuls are nearly all the work:
  * exactly two matmuls an iteration. The solver keeps the logits z = x w + b; a step
    along direction d needs only u = x d, and the line search (Newton/cubic steps under
    the strong Wolfe conditions) then evaluates phi(t), phi'(t), phi''(t) from z + t u
    in passes over the (N, C) logits, a block of rows at a time so that exp(z + t u)
    stays in cache; the gradient x^T r is the second matmul;
  * the operand dtype the hardware multiplies fastest (`matmul_dtype="auto"`): bfloat16
    on accelerators and on CPUs with AMX, where XLA:CPU's bf16 dots run on the AMX
    tiles, with x cast once and x^T materialised once (there x^T r runs 3x faster from a
    transposed copy than by transposing on the fly); float32 on other CPUs, whose bf16
    dot is slower than the f32 one (3.2 s against 2.5 s at 100k x 2048 x 1000), with
    x^T r contracted over the rows of x in place (1.9 s; 2.8 s from a copy). Either way
    the features take 4 bytes a value on the device. Accumulation, the softmax and the
    parameters are always f32;
  * the start point costs no matmul: at the log-prior classifier (w = 0) the logits
    are the log priors and the gradient comes from the class sums of x. The first step
    (along -g, i.e. towards the class means) then gives L-BFGS its first curvature
    pair; starting at the best class-mean classifier instead, with no pair, took twice
    the iterations to the same tolerance.
An L2 sweep warm-starts each strength from the previous (strongest first) and picks the
strength with the best validation top-1.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from weaksup import console
from weaksup.config import ConfigError
from weaksup.evaluators.context import Context
from weaksup.evaluators.features import FeatureEvaluator, Features

DEFAULT_L2_GRID: tuple[float, ...] = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5, 1e-6)

# A line search stops once |phi'(t)| <= CURVATURE |phi'(0)| (with sufficient decrease).
CURVATURE = 0.25

# Rows per block of the line search's passes over the logits (4 MB of f32 at 1,000 classes).
ROW_BLOCK = 1024


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """Per-dimension affine map fitted on training features."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        """Mean and standard deviation of each feature (constant features keep scale 1)."""
        x = np.asarray(x, np.float32)
        mean = x.mean(0, dtype=np.float64).astype(np.float32)
        std = x.std(0, dtype=np.float64).astype(np.float32)
        return cls(mean=mean, scale=np.where(std > 1e-6, std, 1.0).astype(np.float32))

    def __call__(self, x: np.ndarray | jax.Array) -> jax.Array:
        return (jnp.asarray(x, jnp.float32) - self.mean) / self.scale


@dataclasses.dataclass(frozen=True)
class LogisticFit:
    """A fitted probe on standardised features."""

    weights: np.ndarray  # (D, C)
    bias: np.ndarray  # (C,)
    l2: float
    iterations: int
    loss: float

    def logits(self, x: jax.Array | np.ndarray) -> jax.Array:
        """Class scores for already-standardised features."""
        return jnp.asarray(x, jnp.float32) @ self.weights + self.bias


def _check_inputs(x: Any, y: Any, num_classes: int) -> tuple[Any, jax.Array]:
    # Host numpy stays on the host: the one copy onto the device is the cast to the
    # matmul dtype, so an f32 copy of the features never sits beside the bf16 ones.
    if not isinstance(x, jax.Array):
        x = np.asarray(x)
    labels = np.asarray(y)  # checked on the host: (N,) ints, no device round trip
    if x.ndim != 2 or labels.shape != (x.shape[0],):
        raise ValueError(f"features {x.shape} and labels {labels.shape} do not match (want (N, D), (N,))")
    if x.shape[0] == 0:
        raise ValueError("no training examples")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise ValueError(f"features must be numbers, got {x.dtype}")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"labels span [{lo}, {hi}], outside [0, {num_classes})")
    return x, jnp.asarray(labels, jnp.int32)


def _data_loss(z: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jax.nn.logsumexp(z, axis=-1) - _picked(z, y))


def _picked(z: jax.Array, y: jax.Array) -> jax.Array:
    """z[i, y_i] for every row i."""
    return jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]


class _Solver(NamedTuple):
    """L-BFGS state. theta = [w.ravel(), b]; z = x @ w + b, kept up to date without matmuls."""

    theta: jax.Array
    z: jax.Array
    f: jax.Array
    g: jax.Array
    s_hist: jax.Array  # (m, P) parameter steps
    y_hist: jax.Array  # (m, P) gradient changes
    rho: jax.Array  # (m,) 1 / (s . y); 0 marks an empty slot
    it: jax.Array
    prev_f: jax.Array


def _matmul(a: jax.Array, b: jax.Array, mm_dtype) -> jax.Array:
    return jnp.dot(a.astype(mm_dtype), b.astype(mm_dtype), preferred_element_type=jnp.float32)


def _gradient(xm: jax.Array, xt: jax.Array | None, y: jax.Array, z: jax.Array, w: jax.Array, l2: jax.Array,
              mm_dtype) -> jax.Array:
    """Gradient of the objective at logits z (one matmul, x^T r), flattened like theta.

    x^T r is taken from the transposed copy xt when there is one, else contracted over
    the rows of xm in place.
    """
    n, c = z.shape
    # softmax - onehot, divided by n, in one elementwise pass written straight in mm_dtype
    onehot = jnp.arange(c, dtype=y.dtype)[None, :] == y[:, None]
    r = ((jax.nn.softmax(z, axis=-1) - onehot) / n).astype(mm_dtype)
    if xt is None:
        xtr = jax.lax.dot_general(xm, r, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
    else:
        xtr = _matmul(xt, r, mm_dtype)
    gw = xtr + l2 * w
    return jnp.concatenate([gw.ravel(), jnp.sum(r.astype(jnp.float32), axis=0)])


def _row_block_sums(fn, arrays: Sequence[jax.Array], block: int = ROW_BLOCK) -> tuple[jax.Array, ...]:
    """Sums over rows of fn(*row_blocks), whose outputs are per-row vectors, a block of rows at a time.

    A row-wise softmax with several sums over it makes XLA:CPU write exp(z) and its
    products out in full (400 MB each at 100k x 1000); on blocks that fit in cache the
    same pass runs 2.5x faster. The last block is shifted back to end at the last row, and
    rows it shares with the block before are masked out.
    """
    n = arrays[0].shape[0]
    size = min(block, n)

    def body(j, acc):
        start = jnp.minimum(j * size, n - size)
        parts = [jax.lax.dynamic_slice_in_dim(a, start, size, 0) for a in arrays]
        fresh = (start + jnp.arange(size)) >= j * size
        return tuple(a + jnp.sum(jnp.where(fresh, o, 0.0)) for a, o in zip(acc, fn(*parts)))

    outputs = jax.eval_shape(fn, *[jax.ShapeDtypeStruct((size,) + a.shape[1:], a.dtype) for a in arrays])
    init = tuple(jnp.zeros((), o.dtype) for o in outputs)
    return jax.lax.fori_loop(0, -(-n // size), body, init)


def _line_search(z, u, y, l2, w, dw, f0, slope0, t0, max_steps: int):
    """Minimises phi(t) = objective(theta + t d) along a descent direction d, given u = x @ d.

    phi is convex and phi'(0) = slope0 < 0. Starting at t0, each step evaluates phi, phi'
    and phi'' in one pass over the cached (N, C) logits (never a matmul) and keeps the
    bracket [lo, hi] with phi'(lo) < 0 <= phi'(hi). Until hi is known the next point is
    Newton's; then the minimiser of the cubic through phi, phi' at both ends (kept off the
    ends), as in More-Thuente. Stops at a point meeting the strong Wolfe conditions
    (sufficient decrease, |phi'| <= CURVATURE |phi'(0)|), when the bracket shrinks below
    1e-3 of its end, or after max_steps. Returns the best t seen and phi(t).
    """
    n = z.shape[0]
    mean_uy, mean_zy = jnp.mean(_picked(u, y)), jnp.mean(_picked(z, y))
    ww, wd, dd = jnp.sum(w * w), jnp.sum(w * dw), jnp.sum(dw * dw)

    def stats(t):
        def block(zb, ub):
            zt = zb + t * ub
            m = jnp.max(zt, axis=-1)
            e = jnp.exp(zt - m[:, None])
            se = jnp.sum(e, axis=-1)
            pu = jnp.sum(e * ub, axis=-1) / se
            pu2 = jnp.sum(e * ub * ub, axis=-1) / se
            return m + jnp.log(se), pu, pu2 - pu * pu

        lse, pu, var = _row_block_sums(block, (z, u))
        phi = (lse / n - (mean_zy + t * mean_uy)) + 0.5 * l2 * (ww + 2 * t * wd + t * t * dd)
        d1 = (pu / n - mean_uy) + l2 * (wd + t * dd)
        d2 = var / n + l2 * dd
        return phi, d1, d2

    def cubic_min(a, fa, ga, b, fb, gb):
        # Nocedal & Wright (3.59): minimiser of the Hermite cubic on [a, b], ga < 0 < gb.
        e1 = ga + gb - 3.0 * (fa - fb) / (a - b)
        e2 = jnp.sqrt(jnp.maximum(e1 * e1 - ga * gb, 0.0))
        return b - (b - a) * (gb + e2 - e1) / jnp.maximum(gb - ga + 2.0 * e2, 1e-30)

    def cond(c):
        return (c["k"] < max_steps) & ~c["done"]

    def body(c):
        t = c["t"]
        phi, d1, d2 = stats(t)
        left = d1 < 0
        lo = jnp.where(left, t, c["lo"]); f_lo = jnp.where(left, phi, c["f_lo"]); g_lo = jnp.where(left, d1, c["g_lo"])
        hi = jnp.where(left, c["hi"], t); f_hi = jnp.where(left, c["f_hi"], phi); g_hi = jnp.where(left, c["g_hi"], d1)
        better = phi < c["best_phi"]
        width = hi - lo
        bracketed = jnp.isfinite(hi)
        newton = t - d1 / jnp.maximum(d2, 1e-30)
        newton = jnp.where(newton > lo, newton, 2.0 * jnp.maximum(lo, 1e-3))
        cubic = jnp.clip(cubic_min(lo, f_lo, g_lo, hi, f_hi, g_hi), lo + 0.1 * width, hi - 0.1 * width)
        # Strong Wolfe conditions (sufficient decrease, |phi'| shrunk by CURVATURE), or a
        # bracket too narrow to matter.
        wolfe = (phi <= f0 + 1e-4 * t * slope0) & (jnp.abs(d1) <= CURVATURE * jnp.abs(slope0))
        done = wolfe | (bracketed & (width <= 1e-3 * hi))
        return {
            "k": c["k"] + 1, "t": jnp.where(bracketed, cubic, newton), "done": done,
            "lo": lo, "f_lo": f_lo, "g_lo": g_lo, "hi": hi, "f_hi": f_hi, "g_hi": g_hi,
            "best_t": jnp.where(better, t, c["best_t"]), "best_phi": jnp.where(better, phi, c["best_phi"]),
        }

    f32 = jnp.float32
    init = {
        "k": jnp.int32(0), "t": f32(t0), "done": jnp.array(False),
        "lo": f32(0.0), "f_lo": f0, "g_lo": f32(slope0), "hi": f32(jnp.inf), "f_hi": f32(jnp.inf), "g_hi": f32(jnp.inf),
        "best_t": f32(0.0), "best_phi": f0,
    }
    out = jax.lax.while_loop(cond, body, init)
    return out["best_t"], out["best_phi"]


def _direction(g: jax.Array, s_hist: jax.Array, y_hist: jax.Array, rho: jax.Array, newest: jax.Array) -> jax.Array:
    """-H g by the L-BFGS two-loop recursion over the stored pairs (newest first)."""
    m = s_hist.shape[0]
    order = (newest - jnp.arange(m)) % m  # newest to oldest

    def first(i, carry):
        q, alpha = carry
        j = order[i]
        a = rho[j] * jnp.dot(s_hist[j], q)
        return q - a * y_hist[j], alpha.at[j].set(a)

    q, alpha = jax.lax.fori_loop(0, m, first, (g, jnp.zeros(m, g.dtype)))
    j = order[0]
    yy = jnp.dot(y_hist[j], y_hist[j])
    gamma = jnp.where(rho[j] > 0, 1.0 / jnp.maximum(rho[j] * yy, 1e-30), 1.0)
    r = gamma * q

    def second(i, r):
        j = order[m - 1 - i]
        b = rho[j] * jnp.dot(y_hist[j], r)
        return r + s_hist[j] * (alpha[j] - b)

    return -jax.lax.fori_loop(0, m, second, r)


@functools.partial(jax.jit, static_argnames=("num_classes", "max_iter", "memory", "line_search_steps", "mm_dtype"))
def _solve(theta0: jax.Array | None, xm: jax.Array, xt: jax.Array | None, y: jax.Array, l2: jax.Array, gtol: jax.Array, ftol: jax.Array, *,
           num_classes: int, max_iter: int, memory: int, line_search_steps: int, mm_dtype):
    """The whole fit as one XLA program: L-BFGS with strong-Wolfe line searches.

    Every iteration costs two matmuls over the features (the direction's logits
    u = x @ d and the gradient x^T r); the line search works on the cached logits.
    `xm` is x in the matmul dtype and `xt` its transpose materialised by the caller, or
    None to contract over the rows of xm in place (see `_matmul_operands`).
    `theta0` is a warm start; without one (None) the fit starts at the log-prior
    classifier (w = 0, b = log class frequency), where the logits and the gradient need
    no matmul: every row's softmax is the same vector p0, so the weight gradient is
    mean(x) p0^T - class sums / n.
    """
    n, dim = xm.shape
    c = num_classes
    split = lambda v: (v[: dim * c].reshape(dim, c), v[dim * c:])  # noqa: E731
    if theta0 is not None:
        w, b = split(theta0)
        z = _matmul(xm, w, mm_dtype) + b
        f = _data_loss(z, y) + 0.5 * l2 * jnp.sum(w * w)
        theta = theta0
        g = _gradient(xm, xt, y, z, w, l2, mm_dtype)
    else:
        counts = jnp.zeros(c, jnp.float32).at[y].add(1.0)
        b = jnp.log(jnp.maximum(counts, 1.0) / n)  # an absent class gets a tiny prior, not -inf
        sums = jax.ops.segment_sum(xm.astype(jnp.float32), y, num_segments=c)  # (C, D), f32 sums
        p0 = jax.nn.softmax(b)
        gw = jnp.sum(sums, axis=0)[:, None] / n * p0[None, :] - sums.T / n
        z = jnp.broadcast_to(b, (n, c))
        f = _data_loss(z, y)
        theta = jnp.concatenate([jnp.zeros(dim * c, jnp.float32), b])
        g = jnp.concatenate([gw.ravel(), p0 - counts / n])
    p = theta.shape[0]
    state = _Solver(theta, z, f, g, jnp.zeros((memory, p)), jnp.zeros((memory, p)), jnp.zeros(memory),
                    jnp.int32(0), jnp.float32(jnp.inf))

    def keep_going(st: _Solver):
        # scipy L-BFGS-B's test (max |g| <= gtol) plus a relative-decrease test: once the
        # objective stops moving, top-1 has long stopped moving.
        moving = (st.prev_f - st.f) > ftol * jnp.maximum(jnp.abs(st.f), 1.0)
        return (st.it < max_iter) & (jnp.max(jnp.abs(st.g)) > gtol) & ((st.it == 0) | moving)

    def iterate(st: _Solver):
        newest = (st.it - 1) % memory
        d = _direction(st.g, st.s_hist, st.y_hist, st.rho, newest)
        # Not a descent direction (round-off in the history): fall back to steepest descent.
        d = jnp.where(jnp.dot(d, st.g) < 0, d, -st.g)
        w, _ = split(st.theta)
        dw, db = split(d)
        u = _matmul(xm, dw, mm_dtype) + db
        # Without history the direction is -g, whose scale says nothing: try t = 1 / |g|
        # first (as scipy's L-BFGS-B does); afterwards the quasi-Newton step t = 1.
        t0 = jnp.where(st.it == 0, 1.0 / jnp.maximum(jnp.linalg.norm(st.g), 1e-30), 1.0)
        t, f_new = _line_search(st.z, u, y, l2, w, dw, st.f, jnp.dot(d, st.g), t0, line_search_steps)
        theta = st.theta + t * d
        z = st.z + t * u
        g = _gradient(xm, xt, y, z, split(theta)[0], l2, mm_dtype)
        s_vec, y_vec = t * d, g - st.g
        sy = jnp.dot(s_vec, y_vec)
        slot = st.it % memory
        keep = sy > 1e-10 * jnp.dot(y_vec, y_vec)
        return _Solver(
            theta, z, f_new, g,
            jnp.where(keep, st.s_hist.at[slot].set(s_vec), st.s_hist),
            jnp.where(keep, st.y_hist.at[slot].set(y_vec), st.y_hist),
            jnp.where(keep, st.rho.at[slot].set(1.0 / jnp.where(keep, sy, 1.0)), st.rho),
            st.it + 1,
            st.f,
        )

    st = jax.lax.while_loop(keep_going, iterate, state)
    w, b = split(st.theta)
    return w, b, st.it, st.f


@functools.partial(jax.jit, static_argnames=("mm_dtype",))
def _matmul_operands(x: jax.Array | np.ndarray, mm_dtype) -> tuple[jax.Array, jax.Array | None]:
    """x cast once to the matmul dtype, and below float32 its transpose (jit outputs are row-major).

    bfloat16 x^T r runs 3x faster from the transposed copy (measured on AMX); float32
    x^T r runs faster without one (1.9 s against 2.8 s at 100k x 2048 x 1000 on an
    AVX-512 CPU), and skipping it keeps one f32 copy of the features on the device.
    """
    xm = x.astype(mm_dtype)
    return xm, (None if mm_dtype == jnp.float32 else xm.T)


@functools.cache
def _cpu_has_amx() -> bool:
    """Whether the host CPU reports AMX bf16 tiles (Linux /proc/cpuinfo; False elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in f)
    except OSError:
        return False


def default_matmul_dtype() -> str:
    """The operand dtype of the probe's matmuls that this backend multiplies fastest.

    bfloat16 on GPUs and TPUs and on CPUs with AMX (XLA:CPU's dots use the tiles:
    0.84 s for 100k x 2048 x 1000 on 2 cores); float32 on other CPUs, where XLA:CPU's
    bf16 dot is slower than its f32 one (3.2 s against 2.5 s on 2 AVX-512 cores).
    """
    if jax.default_backend() != "cpu" or _cpu_has_amx():
        return "bfloat16"
    return "float32"


def resolve_matmul_dtype(matmul_dtype: str) -> str:
    """The concrete matmul dtype for a `matmul_dtype` option ("auto" -> `default_matmul_dtype()`)."""
    if matmul_dtype == "auto":
        return default_matmul_dtype()
    if matmul_dtype not in ("bfloat16", "float16", "float32"):
        raise ValueError(f"matmul_dtype must be bfloat16, float16, float32 or auto, got {matmul_dtype!r}")
    return matmul_dtype


def fit_logistic(
    x: np.ndarray | jax.Array,
    y: np.ndarray | jax.Array,
    num_classes: int,
    l2: float,
    *,
    init: LogisticFit | None = None,
    max_iter: int = 200,
    gtol: float = 1e-4,
    ftol: float = 1e-4,
    matmul_dtype: str = "auto",
    memory: int = 10,
    line_search_steps: int = 10,
) -> LogisticFit:
    """Fits multinomial logistic regression on (standardised) features.

    Args:
      x: (N, D) features; y: (N,) int labels in [0, num_classes).
      l2: penalty l2/2 * ||W||^2 added to the mean cross-entropy.
      init: warm start (e.g. the fit at the previous L2 of a sweep); otherwise the
        log-prior classifier (w = 0, b = log class frequency).
      gtol, ftol: stop when max |grad| <= gtol or the relative decrease of the objective
        in one iteration drops below ftol.
      matmul_dtype: operand dtype of the two big matmuls: "bfloat16", "float16",
        "float32", or "auto" for `default_matmul_dtype()`.
      memory: L-BFGS history length; line_search_steps: most steps of one line search.
    """
    x, y = _check_inputs(x, y, num_classes)
    theta0 = None
    if init is not None:
        theta0 = jnp.concatenate([jnp.asarray(init.weights, jnp.float32).ravel(), jnp.asarray(init.bias, jnp.float32)])
    mm = jnp.dtype(resolve_matmul_dtype(matmul_dtype))
    xm, xt = _matmul_operands(x, mm)
    w, b, it, value = _solve(
        theta0, xm, xt, y, jnp.float32(l2), jnp.float32(gtol), jnp.float32(ftol), num_classes=num_classes,
        max_iter=int(max_iter), memory=int(memory), line_search_steps=int(line_search_steps),
        mm_dtype=mm,
    )
    return LogisticFit(
        weights=np.asarray(w),
        bias=np.asarray(b),
        l2=float(l2),
        iterations=int(it),
        loss=float(value),
    )


def topk_accuracy(logits: jax.Array | np.ndarray, labels: jax.Array | np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the k highest scores."""
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    k = min(k, logits.shape[-1])
    _, top = jax.lax.top_k(logits, k)
    return float(jnp.mean(jnp.any(top == labels[:, None], axis=-1)))


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    num_classes: int,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    **fit_kwargs: Any,
) -> dict[str, float]:
    """Sweeps L2 (strongest first, warm starts), picks it on val top-1, reports test.

    Returns val/test top-1 and top-5, the chosen L2 and the total L-BFGS iterations.
    Without a test split the chosen classifier is reported on val only.
    """
    if not l2_grid:
        raise ValueError("empty L2 grid")
    std = Standardizer.fit(train[0])
    xtr, ytr = std(train[0]), train[1]
    xva, yva = std(val[0]), jnp.asarray(val[1])
    best: tuple[float, LogisticFit] | None = None
    prev: LogisticFit | None = None
    iterations = 0
    for l2 in console.progress(sorted(l2_grid, reverse=True), desc="linear probe L2 sweep", unit="strength"):
        prev = fit_logistic(xtr, ytr, num_classes, l2, init=prev, **fit_kwargs)
        iterations += prev.iterations
        acc = topk_accuracy(prev.logits(xva), yva, 1)
        if best is None or acc > best[0]:
            best = (acc, prev)
    assert best is not None
    fit = best[1]
    out = {
        "l2": fit.l2,
        "val_top1": best[0],
        "val_top5": topk_accuracy(fit.logits(xva), yva, 5),
        "lbfgs_iterations": float(iterations),
    }
    if test is not None:
        xte, yte = std(test[0]), jnp.asarray(test[1])
        logits = fit.logits(xte)
        out["test_top1"] = topk_accuracy(logits, yte, 1)
        out["test_top5"] = topk_accuracy(logits, yte, 5)
    return out


class Evaluator(FeatureEvaluator):
    """Linear probe on the context's target: frozen features -> L2-swept logistic regression.

    Options: l2_grid, and fit_logistic's max_iter, gtol, ftol, matmul_dtype. `run(variables,
    step=None)` returns val/test top-1/top-5, the chosen L2 and the L-BFGS iterations.
    """

    def __init__(self, ctx: Context, *, l2_grid: Sequence[float] = DEFAULT_L2_GRID, **fit_kwargs: Any):
        super().__init__(ctx)
        unknown = set(fit_kwargs) - {"max_iter", "gtol", "ftol", "matmul_dtype"}
        if unknown:
            raise ConfigError(f"linear_probe: unknown options {sorted(unknown)}")
        self.fit_kwargs = fit_kwargs
        self.l2_grid = tuple(float(v) for v in l2_grid)

    def fit(self, data: dict[str, Features], num_classes: int) -> dict[str, float]:
        """The L2 sweep on the extracted features."""
        return linear_probe(data["train"], data["val"], data.get("test"), num_classes, self.l2_grid,
                            **self.fit_kwargs)
