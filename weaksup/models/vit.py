"""Vision Transformer (Dosovitskiy et al. 2021) in Flax linen, as SWAG publishes it.

Follows SWAG's `models/vision_transformer.py` (torchvision's vit_b_16/l_16/h_14 have the
same parameters): a patch-embedding convolution (kernel = stride = patch, with bias), a
class token, a learned position embedding, pre-LayerNorm encoder blocks (LayerNorm eps
1e-6; multi-head self-attention; LayerNorm; MLP Dense -> exact-erf GELU -> Dense), a final
LayerNorm, and a Dense classifier on the class token.

Parameterisation (chosen for weight import from SWAG/torchvision state dicts):

* self-attention has ONE fused qkv projection `in_proj` (kernel (D, 3D) = torch's
  `in_proj_weight` (3D, D) transposed; columns [q | k | v], heads contiguous in each) and
  `out_proj`, as torch.nn.MultiheadAttention; the parameter count equals that of separate
  q, k, v kernels;
* position embedding layout, `ViTConfig.posemb`:
  - "swag" (default; SWAG, torchvision, timm): shape (1, 1 + N, D), class-token slot
    first, added after the class token is prepended;
  - "big_vision": shape (1, N, D), added to the patch tokens before the class token is
    prepended (the class token carries no position embedding);
  the grid N = (H // patch) * (W // patch) is taken from the images given at init;
  `resize_posemb` moves an embedding to another grid for another resolution;
* the head starts at zero (kernel and bias), as SWAG's VisionTransformerHead, timm and
  big_vision: logits are exactly zero at init;
* parameter names follow torchvision's state dict: trunk/{conv_proj, class_token,
  pos_embedding, encoder_layer_i/{ln_1, self_attention/{in_proj, out_proj}, ln_2,
  mlp/{linear_1, linear_2}}, ln} (torch Linear weights transposed, the conv kernel
  OIHW -> HWIO, the position embedding (S, 1, D) of SWAG -> (1, S, D)).

Initialisation otherwise follows torchvision/SWAG: patch kernel normal(sqrt(1/fan_in))
(torch truncates at +-2 absolute, which at this std practically never binds), zero
bias; class token zero; position embedding normal(0.02) ("swag") or normal(1/sqrt(D))
(big_vision's); qkv Xavier-uniform, out_proj uniform(+-1/sqrt(D)), attention biases
zero; MLP kernels Xavier-uniform with biases normal(1e-6); LayerNorm one/zero.

Regularisation, all off by default (SWAG's model has dropout 0 and no stochastic depth):
`dropout` (on the embedded tokens, the attention output and in the MLP, as torchvision),
`attention_dropout` (on the attention weights) and `drop_path` (stochastic depth, timm's:
block i of L drops its attention and MLP branches per example with probability
drop_path * i / (L - 1)). All use the "dropout" rng collection and are inactive when
train=False. `remat` recomputes each encoder block in the backward pass (nn.remat),
trading compute for activation memory in the large models; parameters are identical
with and without it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any

POSEMB_LAYOUTS = ("swag", "big_vision")
LAYERNORM_EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """Architecture of one Vision Transformer.

    Attributes:
      patch_size: side of the square patches (the patch-embedding kernel and stride).
      num_layers: encoder blocks.
      width: token width D.
      mlp_dim: hidden width of each block's MLP.
      num_heads: attention heads (D must be divisible by it).
      posemb: position-embedding layout, "swag" or "big_vision" (see module doc).
      drop_path: stochastic-depth rate of the last block (linear from 0 over blocks).
      dropout: dropout rate on tokens, attention output and MLP.
      attention_dropout: dropout rate on the attention weights.
      remat: recompute each encoder block in the backward pass (nn.remat).
      image_size: nominal input resolution (the summary's default); the position-
        embedding grid follows the images given at init.
    """

    patch_size: int
    num_layers: int
    width: int
    mlp_dim: int
    num_heads: int
    posemb: str = "swag"
    drop_path: float = 0.0
    dropout: float = 0.0
    attention_dropout: float = 0.0
    remat: bool = False
    image_size: int = 224

    def __post_init__(self) -> None:
        if self.posemb not in POSEMB_LAYOUTS:
            raise ValueError(f"posemb must be one of {POSEMB_LAYOUTS}, got {self.posemb!r}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        for name in ("drop_path", "dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.patch_size < 1 or self.num_layers < 1:
            raise ValueError(f"patch_size and num_layers must be positive, got {self.patch_size}, {self.num_layers}")

    @property
    def feature_dim(self) -> int:
        """Width of the pooled (class-token) features."""
        return self.width

    def grid(self, image_size: int) -> int:
        """Patches per side at `image_size` px."""
        return image_size // self.patch_size

    def seq_len(self, image_size: int) -> int:
        """Tokens the encoder sees at `image_size` px, class token included."""
        return self.grid(image_size) ** 2 + 1


# ----------------------------------------------------------------------------------------
# Position-embedding resampling.
# ----------------------------------------------------------------------------------------

# Keys' cubic-convolution kernel parameter. PyTorch's (and so SWAG's) bicubic uses -0.75;
# -0.5 (Keys' choice, jax.image.resize's and PIL's) reproduces linear ramps exactly away
# from the borders, which -0.75 does only to within ~0.1 grid step.
TORCH_CUBIC_A = -0.75


def _cubic_weights(t: np.ndarray, a: float) -> np.ndarray:
    """Weights of the taps at offsets -1, 0, 1, 2 from floor(x), for fractions t (n,) -> (n, 4)."""

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def bicubic_matrix(old: int, new: int, align_corners: bool = True, cubic_a: float = TORCH_CUBIC_A) -> np.ndarray:
    """(new, old) float64 matrix of torch's 1-D bicubic resize (`F.interpolate(mode="bicubic")`).

    Source positions are i * (old - 1) / (new - 1) with `align_corners` (SWAG's loader) or
    (i + 0.5) * old / new - 0.5 without; out-of-range taps are clamped to the border, as
    torch does (no antialiasing when shrinking, also as torch). `cubic_a` is the kernel
    parameter (torch: -0.75).
    """
    if old < 1 or new < 1:
        raise ValueError(f"bicubic_matrix: sizes must be positive, got {old} -> {new}")
    i = np.arange(new, dtype=np.float64)
    if align_corners:
        src = i * ((old - 1) / (new - 1)) if new > 1 else np.zeros_like(i)
    else:
        src = (i + 0.5) * (old / new) - 0.5
    base = np.floor(src)
    weights = _cubic_weights(src - base, cubic_a)
    m = np.zeros((new, old), np.float64)
    for k in range(4):
        idx = np.clip(base.astype(np.int64) - 1 + k, 0, old - 1)
        np.add.at(m, (np.arange(new), idx), weights[:, k])
    return m


def _as_grid(grid: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(grid, int):
        return grid, grid
    gh, gw = grid
    return int(gh), int(gw)


def resize_posemb(
    posemb: jax.Array,
    new_grid: int | Sequence[int],
    *,
    layout: str = "swag",
    old_grid: int | Sequence[int] | None = None,
    align_corners: bool = True,
    cubic_a: float = TORCH_CUBIC_A,
) -> jax.Array:
    """Bicubically resample a position embedding (1, S, D) to another patch grid.

    For fine-tuning at another resolution: the patch part is viewed as a (gh, gw, D) grid
    and resized separably with torch's bicubic kernel (by default exactly what SWAG's
    `load_state_dict` does: a = -0.75, align_corners=True, borders clamped); with the
    "swag" layout the class-token slot (first) is kept as is. `old_grid` defaults to the
    square root of the patch count. An unchanged grid returns the embedding itself.
    Returns (1, 1 + gh' * gw', D) ("swag") or (1, gh' * gw', D) ("big_vision"), in the
    input's dtype.
    """
    if layout not in POSEMB_LAYOUTS:
        raise ValueError(f"layout must be one of {POSEMB_LAYOUTS}, got {layout!r}")
    if posemb.ndim != 3 or posemb.shape[0] != 1:
        raise ValueError(f"position embedding must be (1, S, D), got {posemb.shape}")
    extra = 1 if layout == "swag" else 0
    token, patches = posemb[:, :extra], posemb[:, extra:]
    n = patches.shape[1]
    if old_grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} patch positions are not a square grid; pass old_grid")
        old_grid = side
    gh, gw = _as_grid(old_grid)
    nh, nw = _as_grid(new_grid)
    if gh * gw != n:
        raise ValueError(f"old_grid {gh}x{gw} does not hold {n} patch positions")
    if (gh, gw) == (nh, nw):
        return posemb
    mh = jnp.asarray(bicubic_matrix(gh, nh, align_corners, cubic_a), jnp.float32)
    mw = jnp.asarray(bicubic_matrix(gw, nw, align_corners, cubic_a), jnp.float32)
    grid = patches.reshape(gh, gw, -1).astype(jnp.float32)
    out = jnp.einsum("ij,kl,jld->ikd", mh, mw, grid, precision=jax.lax.Precision.HIGHEST)
    out = out.reshape(1, nh * nw, -1).astype(posemb.dtype)
    return jnp.concatenate([token, out], axis=1) if extra else out


def resize_posemb_params(params: Any, config: ViTConfig, image_size: int | Sequence[int]) -> Any:
    """`params` of a ViT (with "trunk", or a trunk's own) with the position embedding
    resampled for `image_size` px (an int or (H, W)); everything else is shared."""
    h, w = _as_grid(image_size)
    new_grid = (h // config.patch_size, w // config.patch_size)
    if "trunk" in params:
        return {**params, "trunk": resize_posemb_params(params["trunk"], config, (h, w))}
    pos = params["pos_embedding"]
    return {**params, "pos_embedding": resize_posemb(pos, new_grid, layout=config.posemb)}


# ----------------------------------------------------------------------------------------
# Modules.
# ----------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (torch's MultiheadAttention)."""

    num_heads: int
    attention_dropout: float
    dtype: Dtype
    param_dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        b, n, d = x.shape
        hd = d // self.num_heads
        qkv = nn.Dense(
            3 * d, dtype=self.dtype, param_dtype=self.param_dtype,
            kernel_init=nn.initializers.xavier_uniform(), name="in_proj",
        )(x)
        q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, hd), 2, 0)
        # Scale q before the product (as torch) to keep the logits small in bf16.
        logits = jnp.einsum("bqhd,bkhd->bhqk", q * jnp.asarray(hd**-0.5, q.dtype), k)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
        weights = nn.Dropout(self.attention_dropout)(weights, deterministic=not train)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, n, d)
        # torch's Linear default (kaiming_uniform, a=sqrt(5)) is uniform(+-1/sqrt(fan_in)).
        return nn.Dense(
            d, dtype=self.dtype, param_dtype=self.param_dtype,
            kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"), name="out_proj",
        )(out)


class MlpBlock(nn.Module):
    """Dense -> GELU (exact erf, as torch's nn.GELU) -> Dense, with dropout after each."""

    mlp_dim: int
    dropout: float
    dtype: Dtype
    param_dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        dense = lambda f, name: nn.Dense(  # noqa: E731
            f, dtype=self.dtype, param_dtype=self.param_dtype,
            kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.normal(1e-6), name=name,
        )
        y = nn.gelu(dense(self.mlp_dim, "linear_1")(x), approximate=False)
        y = nn.Dropout(self.dropout)(y, deterministic=not train)
        y = dense(x.shape[-1], "linear_2")(y)
        return nn.Dropout(self.dropout)(y, deterministic=not train)


class EncoderBlock(nn.Module):
    """Pre-LN block: x + drop_path(attn(ln_1(x))), then + drop_path(mlp(ln_2(x)))."""

    num_heads: int
    mlp_dim: int
    dropout: float
    attention_dropout: float
    drop_path: float
    dtype: Dtype
    param_dtype: Dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        det = not train
        ln = lambda name: nn.LayerNorm(LAYERNORM_EPS, dtype=self.dtype, param_dtype=self.param_dtype, name=name)  # noqa: E731
        # Stochastic depth: one keep/drop draw per example, broadcast over tokens and width.
        drop_path = lambda y: nn.Dropout(self.drop_path, broadcast_dims=(1, 2))(y, deterministic=det)  # noqa: E731
        y = SelfAttention(self.num_heads, self.attention_dropout, self.dtype, self.param_dtype,
                          name="self_attention")(ln("ln_1")(x), train)
        y = nn.Dropout(self.dropout)(y, deterministic=det)
        x = x + drop_path(y)
        y = MlpBlock(self.mlp_dim, self.dropout, self.dtype, self.param_dtype, name="mlp")(ln("ln_2")(x), train)
        return x + drop_path(y)


class ViTTrunk(nn.Module):
    """Patch embedding, class token, position embedding, encoder, final LayerNorm.

    Returns the class token's final features (B, D) in float32.
    """

    config: ViTConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        cfg = self.config
        b, h, w, _ = images.shape
        p = cfg.patch_size
        if h < p or w < p:
            raise ValueError(f"ViT: image {h}x{w} is smaller than one {p}x{p} patch")
        # A VALID convolution, as big_vision's: pixels past the last whole patch (e.g. 4 px
        # of 32 for 14 px patches) are ignored; SWAG's sizes (224, 384, 518) divide exactly.
        x = nn.Conv(
            cfg.width, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype, param_dtype=self.param_dtype,
            kernel_init=nn.initializers.variance_scaling(1.0, "fan_in", "normal"), name="conv_proj",
        )(images.astype(self.dtype))
        x = x.reshape(b, -1, cfg.width)
        n = x.shape[1]
        cls = self.param("class_token", nn.initializers.zeros, (1, 1, cfg.width), self.param_dtype)
        cls = jnp.broadcast_to(cls.astype(self.dtype), (b, 1, cfg.width))
        if cfg.posemb == "swag":
            pos = self.param("pos_embedding", nn.initializers.normal(0.02), (1, n + 1, cfg.width), self.param_dtype)
            x = jnp.concatenate([cls, x], axis=1) + pos.astype(self.dtype)
        else:
            init = nn.initializers.normal(1.0 / math.sqrt(cfg.width))
            pos = self.param("pos_embedding", init, (1, n, cfg.width), self.param_dtype)
            x = jnp.concatenate([cls, x + pos.astype(self.dtype)], axis=1)
        x = nn.Dropout(cfg.dropout)(x, deterministic=not train)
        # static_argnums counts the module as argument 0: `train` (2) must stay a Python bool.
        block_cls = nn.remat(EncoderBlock, static_argnums=(2,)) if cfg.remat else EncoderBlock
        for i in range(cfg.num_layers):
            x = block_cls(
                num_heads=cfg.num_heads,
                mlp_dim=cfg.mlp_dim,
                dropout=cfg.dropout,
                attention_dropout=cfg.attention_dropout,
                drop_path=cfg.drop_path * i / max(cfg.num_layers - 1, 1),
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=f"encoder_layer_{i}",
            )(x, train)
        x = nn.LayerNorm(LAYERNORM_EPS, dtype=self.dtype, param_dtype=self.param_dtype, name="ln")(x)
        return x[:, 0].astype(jnp.float32)


class ViT(nn.Module):
    """Classifier: `trunk` (class-token features) and a zero-initialised Dense `head`."""

    config: ViTConfig
    num_classes: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    def setup(self) -> None:
        self.trunk = ViTTrunk(self.config, self.dtype, self.param_dtype)
        self.head = nn.Dense(
            self.num_classes,
            dtype=jnp.float32,
            param_dtype=self.param_dtype,
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
        )

    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Logits (B, num_classes) in float32."""
        return self.head(self.trunk(images, train))

    def features(self, images: jax.Array, train: bool = False) -> jax.Array:
        """Class-token features after the final LayerNorm (B, width) in float32."""
        return self.trunk(images, train)
