"""The CPU training path through oneDNN, called from JAX as XLA FFI custom calls.

XLA:CPU runs the convolutions of the small CPU models (3-256 channels, 4-32 px) at a
third of oneDNN's speed or less (oneDNN is PyTorch's CPU backend), and their bfloat16
batch norm as generic convert-to-float32 loops (benchmarks/onednn.py measures each pass).
This module hands them to oneDNN:

* `conv`: three custom calls (forward, backward-data, backward-weights) tied together by
  a `jax.custom_vjp`, float32 or bfloat16, dense or grouped, any stride and explicit
  padding. Activations stay NHWC; the kernel keeps the layout of
  `flax.linen.Conv(feature_group_count=G)`, (kh, kw, Cin / G, Cout), so parameters and
  checkpoints move between paths unchanged.
* `batch_norm`: training-mode batch norm with batch statistics (per batch group if asked),
  fused with the ReLU that follows it, forward and backward; the ReLU's mask travels in
  oneDNN's workspace. The residual add before a block's last ReLU stays an XLA fusion
  (oneDNN 3 has no CPU kernel for it). `batch_norm_is_fast` says where oneDNN has JIT
  kernels; `weaksup.models.norm.BatchNorm` keeps XLA's batch norm elsewhere.
* `max_pool`: plain loops, bitwise flax's, because XLA:CPU's max-pool gradient would
  otherwise cost the stem more than its convolution.

The handlers are a small C++ file (`weaksup/native/onednn.cc`) that `make setup` compiles
(`python -m weaksup onednn build`) against oneDNN 3 from PyPI (the `onednn-cpu-gomp` and
`onednn-devel-cpu-gomp` wheels: the library built with GNU OpenMP, and its headers) and
the XLA FFI headers of the installed jaxlib, into the cache directory, keyed by the
source's hash and the jaxlib and oneDNN versions. Where it is not built, or oneDNN has
only reference kernels for this CPU, or WEAKSUP_NO_ONEDNN is set, `available()` is False
and `conv_impl="auto"` keeps XLA's convolution and batch norm.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import importlib.metadata
import logging
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax import lax

from weaksup import console, native_build

log = logging.getLogger(__name__)

SOURCE = native_build.NATIVE_DIR / "onednn.cc"
# oneDNN 3 built with GNU OpenMP (no other runtime), from PyPI: the library and its headers.
ONEDNN_WHEEL = "onednn-cpu-gomp"
ONEDNN_DEVEL_WHEEL = "onednn-devel-cpu-gomp"
BuildError = native_build.BuildError  # the C++ handlers did not compile
DTYPES = (jnp.float32, jnp.bfloat16)
DISABLE_ENV = "WEAKSUP_NO_ONEDNN"
_TARGETS = {
    "fwd": "weaksup_onednn_conv_fwd",
    "bwd_data": "weaksup_onednn_conv_bwd_data",
    "bwd_weights": "weaksup_onednn_conv_bwd_weights",
}
_POOL_TARGETS = ("weaksup_max_pool_fwd", "weaksup_max_pool_bwd")
_BN_TARGETS = ("weaksup_onednn_bn_fwd", "weaksup_onednn_bn_bwd")
_MSG_LEN = 1000

Padding = str | Sequence[tuple[int, int]]


def _onednn_files() -> tuple[Path, Path, str]:
    """(include directory, library directory, version) of the installed oneDNN wheels.

    Raises BuildError when they are not installed.
    """
    try:
        lib = importlib.metadata.distribution(ONEDNN_WHEEL)
        dev = importlib.metadata.distribution(ONEDNN_DEVEL_WHEEL)
    except importlib.metadata.PackageNotFoundError as e:
        raise BuildError(f"{e.name} is not installed (pip install {ONEDNN_WHEEL} {ONEDNN_DEVEL_WHEEL}; "
                         "make setup installs both)") from None
    so = next((f for f in lib.files or () if f.name == "libdnnl.so.3"), None)
    hpp = next((f for f in dev.files or () if f.name == "dnnl.hpp" and f.parent.name == "dnnl"), None)
    if so is None or hpp is None:
        raise BuildError(f"the {ONEDNN_WHEEL} / {ONEDNN_DEVEL_WHEEL} wheels lack libdnnl.so.3 or oneapi/dnnl/dnnl.hpp")
    include = Path(dev.locate_file(hpp)).resolve().parent.parent.parent
    return include, Path(lib.locate_file(so)).resolve().parent, lib.version


def library_path() -> Path:
    """Where the compiled handlers for the current source, jaxlib and oneDNN live."""
    try:
        version = _onednn_files()[2]
    except BuildError:
        version = "none"
    return native_build.library_path(SOURCE, f"{jaxlib.__version__} {version}".encode())


def build(force: bool = False) -> Path:
    """Compiles the handlers (atomically: a half-written library is never at the final path)."""
    target = library_path()
    if target.exists() and not force:
        return target
    include, libdir, _ = _onednn_files()
    native_build.compile_library(
        SOURCE, target, cxx=True,
        flags=["-O3", "-std=c++17", "-w", f"-I{jax.ffi.include_dir()}", f"-I{include}"],
        libs=[f"-L{libdir}", "-l:libdnnl.so.3", f"-Wl,-rpath,{libdir}"],
        provided_by=f"the {ONEDNN_WHEEL} and {ONEDNN_DEVEL_WHEEL} wheels")
    global _LIB, _LOAD_ERROR, _PROBED
    _LIB, _LOAD_ERROR, _PROBED = None, None, {}
    return target


_LIB: ctypes.CDLL | None = None
_LOAD_ERROR: str | None = None
_PROBED: dict[bool, tuple[bool, str]] = {}


def _lib() -> ctypes.CDLL | None:
    global _LIB, _LOAD_ERROR
    if _LIB is None and _LOAD_ERROR is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            _LOAD_ERROR = f"oneDNN path is built for x86-64 only, not {platform.machine()}"
            return None
        path = library_path()
        if not path.exists():
            _LOAD_ERROR = f"{path} is not built (run `python -m weaksup onednn build`)"
            return None
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            _LOAD_ERROR = f"{path}: {e}"
            return None
        lib.weaksup_onednn_describe.restype = ctypes.c_int
        lib.weaksup_onednn_describe.argtypes = [
            ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
        ]
        lib.weaksup_onednn_bn_workspace.restype = ctypes.c_int64
        lib.weaksup_onednn_bn_workspace.argtypes = [
            *[ctypes.c_int64] * 5, ctypes.c_int, ctypes.c_float, ctypes.c_char_p, ctypes.c_int,
        ]
        for symbol in (*_TARGETS.values(), *_POOL_TARGETS, *_BN_TARGETS):
            jax.ffi.register_ffi_target(symbol, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
        _LIB = lib
    return _LIB


def describe(x_shape: Sequence[int], kernel_shape: Sequence[int], *, groups: int = 1,
             strides: Sequence[int] = (1, 1), padding: Padding = "SAME",
             dtype: jnp.dtype = jnp.float32) -> dict[str, str]:
    """The oneDNN kernel picked for each pass ("fwd", "bwd_data", "bwd_weights") of a convolution.

    A name containing "ref" is a reference (unvectorised, slow) kernel. Raises RuntimeError
    when the handlers are not built or oneDNN rejects the shape.
    """
    lib = _lib()
    if lib is None:
        raise RuntimeError(f"oneDNN convolution unavailable: {_LOAD_ERROR}")
    strides = tuple(int(s) for s in strides)
    pads = _pads(padding, x_shape[1:3], kernel_shape[:2], strides)
    y = _out_shape(x_shape, kernel_shape, strides, pads)
    (pt, pb), (pl, pr) = pads
    shape = (ctypes.c_int64 * 16)(*x_shape, *y[1:], *kernel_shape[:2], groups, *strides, pt, pl, pb, pr)
    bf16 = int(jnp.dtype(dtype) == jnp.bfloat16)
    names = {}
    for kind, target in enumerate(_TARGETS):
        msg = ctypes.create_string_buffer(_MSG_LEN)
        if lib.weaksup_onednn_describe(shape, kind, bf16, msg, _MSG_LEN) < 0:
            raise RuntimeError(f"oneDNN rejects {target} of {tuple(x_shape)} * {tuple(kernel_shape)}: {msg.value.decode()}")
        names[target] = msg.value.decode(errors="replace")
    return names


def probe(dtype: jnp.dtype = jnp.float32) -> tuple[bool, str]:
    """(whether oneDNN has vectorised kernels for `dtype` here, the kernels it picked)."""
    bf16 = jnp.dtype(dtype) == jnp.bfloat16
    if bf16 not in _PROBED:
        if _lib() is None:
            return False, str(_LOAD_ERROR)
        try:
            names = describe((2, 8, 8, 32), (3, 3, 32, 32), padding=((1, 1), (1, 1)), dtype=dtype)
        except RuntimeError as e:
            _PROBED[bf16] = (False, str(e))
        else:
            _PROBED[bf16] = (all("ref" not in n for n in names.values()), " / ".join(names.values()))
    return _PROBED[bf16]


def available(dtype: jnp.dtype = jnp.float32) -> bool:
    """Whether `conv_impl="auto"` may use oneDNN for `dtype`: built, loads, vectorised kernels.

    The environment variable WEAKSUP_NO_ONEDNN (any non-empty value) turns it off.
    """
    return unavailable_reason(dtype) is None


def unavailable_reason(dtype: jnp.dtype = jnp.float32) -> str | None:
    """Why `available(dtype)` is False (None when it is True)."""
    if os.environ.get(DISABLE_ENV):
        return f"disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}"
    if jnp.dtype(dtype) not in [jnp.dtype(d) for d in DTYPES]:
        return f"oneDNN path takes float32 or bfloat16, not {jnp.dtype(dtype).name}"
    ok, info = probe(dtype)
    if ok:
        return None
    return info if _LIB is None else f"oneDNN has only reference kernels here ({info})"


def _pads(padding: Padding, x_hw: Sequence[int], k_hw: Sequence[int], strides: Sequence[int]) -> tuple:
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(tuple(x_hw), tuple(k_hw), tuple(strides), padding)
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _call(kind: str, a: jax.Array, b: jax.Array, out_shape: tuple[int, ...], x_shape, y_shape,
          kernel_hw, groups, strides, pads) -> jax.Array:
    (pt, pb), (pl, pr) = pads
    # vmap (rare for a convolution layer) runs the calls one batch element at a time.
    return jax.ffi.ffi_call(_TARGETS[kind], jax.ShapeDtypeStruct(out_shape, a.dtype), vmap_method="sequential")(
        a, b,
        x_shape=np.array(x_shape, np.int64), y_shape=np.array(y_shape, np.int64),
        kh=kernel_hw[0], kw=kernel_hw[1], groups=groups, sh=strides[0], sw=strides[1],
        pt=pt, pl=pl, pb=pb, pr=pr,
    )


def _out_shape(x_shape, kernel_shape, strides, pads) -> tuple[int, ...]:
    n, h, w, _ = x_shape
    kh, kw, _, cout = kernel_shape
    (pt, pb), (pl, pr) = pads
    return (n, (h + pt + pb - kh) // strides[0] + 1, (w + pl + pr - kw) // strides[1] + 1, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x: jax.Array, kernel: jax.Array, groups: int, strides: tuple, pads: tuple) -> jax.Array:
    y_shape = _out_shape(x.shape, kernel.shape, strides, pads)
    return _call("fwd", x, kernel, y_shape, x.shape, y_shape, kernel.shape[:2], groups, strides, pads)


def _conv_fwd(x, kernel, groups, strides, pads):
    return _conv(x, kernel, groups, strides, pads), (x, kernel)


def _conv_bwd(groups, strides, pads, res, dy):
    x, kernel = res
    dy = dy.astype(x.dtype)
    args = (x.shape, dy.shape, kernel.shape[:2], groups, strides, pads)
    dx = _call("bwd_data", dy, kernel, x.shape, *args)
    dk = _call("bwd_weights", x, dy, kernel.shape, *args)
    return dx, dk


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv(
    x: jax.Array,
    kernel: jax.Array,
    *,
    groups: int = 1,
    strides: Sequence[int] = (1, 1),
    padding: Padding = "SAME",
) -> jax.Array:
    """NHWC convolution of `x` with an HWIO `kernel` (kh, kw, Cin/groups, Cout) in oneDNN.

    `x` and `kernel` share one dtype, float32 or bfloat16; differentiable in both. Raises
    RuntimeError when the handlers are not available (see `unavailable_reason`).
    """
    if x.dtype != kernel.dtype or x.dtype not in [jnp.dtype(d) for d in DTYPES]:
        raise ValueError(f"onednn conv: x {x.dtype} and kernel {kernel.dtype} must both be float32 or bfloat16")
    cin = x.shape[-1]
    kh, kw, cin_g, cout = kernel.shape
    if cin != cin_g * groups or cout % groups:
        raise ValueError(f"onednn conv: input channels {cin} and kernel {kernel.shape} do not fit {groups} groups")
    if _lib() is None:
        raise RuntimeError(f"oneDNN convolution unavailable: {_LOAD_ERROR}")
    strides = tuple(int(s) for s in strides)
    return _conv(x, kernel, int(groups), strides, _pads(padding, x.shape[1:3], (kh, kw), strides))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x: jax.Array, window: int, stride: int, padding: int) -> jax.Array:
    return _max_pool_fwd(x, window, stride, padding)[0]


def _max_pool_fwd(x, window, stride, padding):
    n, h, w, c = x.shape
    oh, ow = (h + 2 * padding - window) // stride + 1, (w + 2 * padding - window) // stride + 1
    y, tap = jax.ffi.ffi_call(_POOL_TARGETS[0], (jax.ShapeDtypeStruct((n, oh, ow, c), x.dtype),
                                                 jax.ShapeDtypeStruct((n, oh, ow, c), jnp.int8)),
                              vmap_method="sequential")(x, k=window, s=stride, p=padding)
    # The input itself is not needed, only its shape: a zero-size stand-in carries it.
    return y, (tap, jnp.zeros((0, h, w, 0), x.dtype))


def _max_pool_bwd(window, stride, padding, res, g):
    tap, like = res
    n, _, _, c = tap.shape
    x = jax.ShapeDtypeStruct((n, like.shape[1], like.shape[2], c), like.dtype)
    return (jax.ffi.ffi_call(_POOL_TARGETS[1], x, vmap_method="sequential")(
        g.astype(x.dtype), tap, k=window, s=stride, p=padding),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool(x: jax.Array, window: int, stride: int, padding: int) -> jax.Array:
    """`nn.max_pool(x, (window,) * 2, (stride,) * 2, ((padding, padding),) * 2)` of NHWC `x`
    (float32 or bfloat16) in the same library's plain loops, equal to it bit for bit,
    gradient included (select-and-scatter's semantics).

    XLA:CPU runs the max-pool gradient (select-and-gather, select-and-scatter) as slow
    generic loops: on the tiny models' stem pool (batch 128, 32 px) about a third of a
    training step once the convolutions are oneDNN's. Raises RuntimeError when the
    library is not built.
    """
    if x.ndim != 4 or x.dtype not in [jnp.dtype(d) for d in DTYPES] or window * window > 127:
        raise ValueError(f"onednn max_pool: NHWC float32/bfloat16 input and a window up to 11, "
                         f"got {x.shape} {x.dtype}, window {window}")
    if _lib() is None:
        raise RuntimeError(f"oneDNN library unavailable: {_LOAD_ERROR}")
    return _max_pool(x, int(window), int(stride), int(padding))

def describe_batch_norm(x_shape: Sequence[int], dtype: jnp.dtype = jnp.float32, *, relu: bool = False,
                        groups: int = 1, epsilon: float = 1e-5) -> tuple[int, str]:
    """(workspace bytes per batch slice, "forward kernel / backward kernel") of `batch_norm`.

    A kernel name containing "ref" is a reference (unvectorised, slow) one. Raises
    RuntimeError when the library is not built or oneDNN rejects the shape.
    """
    lib = _lib()
    if lib is None:
        raise RuntimeError(f"oneDNN library unavailable: {_LOAD_ERROR}")
    n, h, w, c = x_shape
    msg = ctypes.create_string_buffer(_MSG_LEN)
    size = lib.weaksup_onednn_bn_workspace(n // groups, h, w, c, int(relu), int(jnp.dtype(dtype) == jnp.bfloat16),
                                           epsilon, msg, _MSG_LEN)
    if size < 0:
        raise RuntimeError(f"oneDNN rejects batch norm of {tuple(x_shape)}: {msg.value.decode()}")
    return size, msg.value.decode(errors="replace")


def batch_norm_is_fast(x_shape: Sequence[int], dtype: jnp.dtype, *, relu: bool = False, groups: int = 1) -> bool:
    """Whether oneDNN runs `batch_norm` of this shape with its JIT kernels here.

    Elsewhere it falls back to generic loops ("nspc_bnorm": bfloat16 with channels not a
    multiple of 16), measured 4-16x slower than XLA's batch norm (benchmarks/onednn.py),
    so the model keeps XLA's there.
    """
    try:
        _, kernels = describe_batch_norm(x_shape, dtype, relu=relu, groups=groups)
    except RuntimeError:
        return False
    return all("jit" in k for k in kernels.split(" / "))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _batch_norm(x, scale, shift, groups: int, act: int, epsilon: float):
    return _batch_norm_fwd(x, scale, shift, groups, act, epsilon)[0]


def _batch_norm_fwd(x, scale, shift, groups, act, epsilon):
    ws, _ = describe_batch_norm(x.shape, x.dtype, relu=bool(act), groups=groups, epsilon=epsilon)
    stat = jax.ShapeDtypeStruct((groups, x.shape[-1]), jnp.float32)
    y, mean, var, workspace = jax.ffi.ffi_call(
        _BN_TARGETS[0],
        (jax.ShapeDtypeStruct(x.shape, x.dtype), stat, stat, jax.ShapeDtypeStruct((groups * ws,), jnp.uint8)),
        vmap_method="sequential",
    )(x, scale, shift, groups=groups, act=act, eps=np.float32(epsilon))
    return (y, mean, var), (x, scale, mean, var, workspace)


def _batch_norm_bwd(groups, act, epsilon, res, cotangents):
    x, scale, mean, var, workspace = res
    dy = cotangents[0].astype(x.dtype)  # the statistics carry no gradient: see batch_norm
    stat = jax.ShapeDtypeStruct((groups, x.shape[-1]), jnp.float32)
    dx, dscale, dshift = jax.ffi.ffi_call(
        _BN_TARGETS[1], (jax.ShapeDtypeStruct(x.shape, x.dtype), stat, stat), vmap_method="sequential",
    )(x, dy, scale, mean, var, workspace, groups=groups, act=act, eps=np.float32(epsilon))
    return dx, jnp.sum(dscale, axis=0), jnp.sum(dshift, axis=0)


_batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)


def batch_norm(x: jax.Array, scale: jax.Array, shift: jax.Array, *, epsilon: float, groups: int = 1,
               relu: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training-mode batch norm of NHWC `x` with its batch statistics, and its ReLU if `relu`.

    Computes `x_hat * scale + shift` (then the ReLU) in one oneDNN kernel; `x` is float32
    or bfloat16, `scale` and `shift` (C,) float32. `groups` > 1 normalises each of that
    many consecutive batch slices with its own statistics. Returns the output (x's dtype)
    and the batch mean and biased variance, float32 (groups, C). Differentiable in `x`,
    `scale` and `shift`; the statistics are outputs for the running averages only and
    carry no gradient. Raises RuntimeError when the library is not built.
    """
    if x.ndim != 4 or x.dtype not in [jnp.dtype(d) for d in DTYPES] or groups < 1 or x.shape[0] % groups:
        raise ValueError(f"onednn batch_norm: NHWC float32/bfloat16 input with a batch divisible by {groups} "
                         f"groups, got {x.shape} {x.dtype}")
    if _lib() is None:
        raise RuntimeError(f"oneDNN library unavailable: {_LOAD_ERROR}")
    y, mean, var = _batch_norm(x, scale.astype(jnp.float32), shift.astype(jnp.float32), int(groups),
                               int(relu), float(epsilon))
    return y, lax.stop_gradient(mean), lax.stop_gradient(var)


def main(argv: list[str]) -> int:
    console.ensure_setup()  # status lines are log records: shown unless -q
    parser = argparse.ArgumentParser(prog="python -m weaksup onednn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the oneDNN handlers (convolution, batch norm, max pool) into the cache directory")
    b.add_argument("--force", action="store_true", help="recompile even when built")
    sub.add_parser("status", help="say whether the oneDNN path is built, loads and has fast kernels")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        try:
            path = build(force=args.force)
        except BuildError as e:
            print(f"onednn: {e}", file=sys.stderr)
            return 1
        if _lib() is None:
            print(f"onednn: built {path} but it does not load: {_LOAD_ERROR}", file=sys.stderr)
            return 1
        log.info(f"onednn: handlers (convolution, batch norm, max pool) at {path}")
    # Only `status` fails for a dtype without fast kernels: a build that loads is a success,
    # and `conv_impl="auto"` keeps XLA's convolution for that dtype.
    status = 0
    for dtype in DTYPES:
        name = jnp.dtype(dtype).name
        reason = unavailable_reason(dtype)
        if reason is None:
            print(f"onednn: {name} available ({probe(dtype)[1]})")
        else:
            print(f"onednn: {name} unavailable: {reason}")
            status = 1
    return 0 if args.cmd == "build" else status
