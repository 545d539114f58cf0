"""The training library: state, the update step, predictions and features, as pure JAX.

Everything the pretraining loop, fine-tuning, the evaluators, checkpoint loading and the
notebooks share lives here, so each of them imports it at the top and none forks it:

  State / Batch          the plain-dict pytrees that flow through the step
  model_from_config      the model a config's `model` block names
  normalize_images       uint8 pictures -> the model's float input, on device
  create_train_state     THE way to build a sharded state: a train state
                         {params, batch_stats, opt_state, step, rng} or the variables
                         {params, batch_stats} alone; random, from given weights or from a
                         checkpoint; real or abstract (ShapeDtypeStructs for restore targets)
  make_train_step        the jitted update with explicit shardings
  make_predict_fn        jitted logits;  make_feature_fn: jitted pooled trunk features

Placement follows `weaksup.sharding`'s partition rules everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from weaksup import losses, metrics, models, sharding
from weaksup.config import ConfigError
from weaksup.models import grouped_conv

if TYPE_CHECKING:
    from weaksup.checkpoint import Checkpointer

# A train state {params, batch_stats, opt_state, step, rng} or variables {params, batch_stats}.
State = dict[str, Any]
# "image" uint8 (B, H, W, 3), labels, optionally "mask" (B,) bool.
Batch = dict[str, Any]

# ImageNet channel statistics: the standard for the ResNe(X)t recipe.
MEAN_RGB = (0.485, 0.456, 0.406)
STDDEV_RGB = (0.229, 0.224, 0.225)


def normalize_images(images: jax.Array) -> jax.Array:
    """uint8 (..., 3) -> float32 normalised with the ImageNet mean and std (pure jnp)."""
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(MEAN_RGB, jnp.float32)) / jnp.asarray(STDDEV_RGB, jnp.float32)


def model_from_config(model_config: Any, num_classes: int) -> Any:
    """The model a config's `model` block names ({name, overrides}), with a `num_classes` head."""
    try:
        return models.get_model(model_config.name, num_classes, **dict(model_config.overrides))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.model ({model_config.name}): {e}") from None


def unpartitioned_path_warning(model: Any, num_devices: int) -> str | None:
    """Why a model's oneDNN path will not be data-parallel on `num_devices` devices, or None.

    XLA's partitioner has no rule for oneDNN's custom calls, so on a mesh of several
    devices it gathers their operands: every device computes the whole batch. The result
    is exact (the same as on one device), but the convolutions' work is not divided.
    """
    impl = getattr(model, "conv_impl", None)
    if num_devices <= 1 or impl is None:
        return None
    dtype = getattr(model, "dtype", jnp.float32)
    if grouped_conv.resolve_impl(impl, dtype) != "onednn":
        return None
    return (f"conv_impl {impl!r} runs oneDNN's custom calls, which XLA does not partition: on "
            f"this {num_devices}-device mesh every device computes the whole batch (exact, "
            "not data-parallel); conv_impl 'xla' divides the work")


def variables_of(state: State) -> State:
    """The {params, batch_stats} of a train state (what inference and evaluators take)."""
    return {"params": state["params"], "batch_stats": state["batch_stats"]}


# ----------------------------------------------------------------------------------------
# State set-up.
# ----------------------------------------------------------------------------------------


def _init_fn(model: Any, tx: optax.GradientTransformation | None, image_size: int) -> Callable[[jax.Array], State]:
    """rng -> a fresh state. With `tx`, the key is split into the model's and the state's."""

    def init_variables(rng: jax.Array) -> State:
        dummy = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
        variables = model.init(rng, dummy, train=False)
        return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}

    def init_state(rng: jax.Array) -> State:
        init_rng, state_rng = jax.random.split(rng)
        variables = init_variables(init_rng)
        return {
            **variables,
            "opt_state": tx.init(variables["params"]),
            "step": jnp.zeros((), jnp.int32),
            "rng": state_rng,
        }

    return init_variables if tx is None else init_state


def create_train_state(
    model: Any,
    mesh: Any,
    image_size: int,
    *,
    tx: optax.GradientTransformation | None = None,
    rng: jax.Array | None = None,
    variables: State | None = None,
    checkpoint: tuple[Checkpointer, int] | None = None,
    data_iterator: Any = None,
    abstract: bool = False,
) -> tuple[State, State]:
    """Builds a state directly in its shardings; returns (state, state_shardings).

    What: with an optimiser `tx` a train state {params, batch_stats, opt_state, step, rng}
    (`rng` a raw uint32 key, which checkpoints as a plain array); without one the
    variables {params, batch_stats} alone (inference, evaluation).

    From where (one of, unless `abstract`):
      rng         random initialisation. With `tx` the key is split into the model's
                  init key and the state's rng; without, `model.init` receives it as is.
      variables   given weights (e.g. a pretrained trunk under a fresh head), placed by the
                  partition rules; with `tx` the optimiser starts fresh at step 0 and `rng`
                  becomes the state's rng.
      checkpoint  (Checkpointer, step): restored onto this mesh, whatever mesh saved it.
                  A train state restores everything, and `data_iterator` (if given) is set
                  to the saved data position; variables alone restore partially.
    `abstract`: ShapeDtypeStructs carrying the target shardings, nothing computed.
    """
    init = _init_fn(model, tx, int(image_size))
    shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
    shardings = sharding.tree_shardings(shapes, mesh)
    target = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
    if abstract:
        return target, shardings
    if checkpoint is not None:
        ckpt, step = checkpoint
        if tx is None:
            return ckpt.restore_params(step, target), shardings
        return ckpt.restore_state(step, target, data_iterator=data_iterator), shardings
    if variables is not None:
        state = variables_of(variables)
        if tx is not None:
            if rng is None:
                raise ValueError("a train state from given variables needs `rng` for the state's rng")
            state.update(opt_state=tx.init(state["params"]), step=jnp.zeros((), jnp.int32), rng=rng)
        return jax.device_put(state, shardings), shardings
    if rng is None:
        raise ValueError("create_train_state needs rng, variables or checkpoint (or abstract=True)")
    return jax.jit(init, out_shardings=shardings)(rng), shardings


# ----------------------------------------------------------------------------------------
# The update step.
# ----------------------------------------------------------------------------------------


def _split_micro(x: jax.Array, n: int) -> jax.Array:
    """(B, ...) -> (n, B/n, ...) taking rows i*n + j into micro-batch j.

    Interleaving keeps every micro-batch spread over all devices (a contiguous split would
    put each micro-batch on a few devices only).
    """
    b = x.shape[0]
    return jnp.swapaxes(x.reshape((b // n, n) + x.shape[1:]), 0, 1)


def make_train_step(
    model: Any,
    tx: optax.GradientTransformation,
    loss_fn: losses.LossFn,
    mesh: Any,
    state_shardings: State,
    *,
    label_key: str = "labels",
    grad_accum_steps: int = 1,
    preprocess: Callable[[jax.Array], jax.Array] = normalize_images,
    learning_rate_fn: optax.Schedule | None = None,
    precision_ks: tuple[int, ...] = (1, 5),
    donate: bool = True,
) -> Callable[[State, Batch], tuple[State, dict[str, jax.Array]]]:
    """The jitted update `(state, batch) -> (state, metrics)`, with explicit shardings.

    `batch` holds "image" uint8 (B, H, W, 3), `label_key` labels (padded indices (B, L) for
    hashtags, or int classes (B,) for classification fine-tuning) and optionally "mask"
    (B,) bool marking real examples. `loss_fn(logits, labels) -> (B,)` (see losses.py).
    The loss is averaged over real, labelled examples. With `grad_accum_steps` = n the batch
    is processed as n micro-batches in a lax.scan and their gradients summed, the same
    update as one large batch up to batch-norm statistics. Metrics are replicated scalars:
    loss, prec@k, grad_norm, param_norm, lr, labelled (fraction of examples with labels).
    The state is donated: do not reuse the input state after a call.
    """
    n_micro = int(grad_accum_steps)

    def weights_of(batch: Batch) -> jax.Array:
        w = losses.has_label(batch[label_key])
        if "mask" in batch:
            w = w & batch["mask"].astype(bool)
        return w.astype(jnp.float32)

    def micro_grads(params, batch_stats, micro: Batch, rng, total_weight):
        def loss_of(p):
            logits, updates = model.apply(
                {"params": p, "batch_stats": batch_stats},
                preprocess(micro["image"]),
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": rng},
            )
            w = weights_of(micro)
            per_example = loss_fn(logits, micro[label_key])
            # Normalised by the whole batch's weight so micro-batch gradients simply add up.
            loss = jnp.sum(per_example * w) / total_weight
            return loss, (updates.get("batch_stats", {}), logits, w)

        (loss, (new_stats, logits, w)), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
        precs = {k: jnp.sum(metrics.precision_at_k(logits, micro[label_key], k) * w) for k in precision_ks}
        return loss, grads, new_stats, precs

    def train_step(state: State, batch: Batch) -> tuple[State, dict[str, jax.Array]]:
        step = state["step"]
        rng = jax.random.fold_in(state["rng"], step)
        params, batch_stats = state["params"], state["batch_stats"]
        total_weight = jnp.maximum(jnp.sum(weights_of(batch)), 1.0)
        if n_micro == 1:
            loss, grads, batch_stats, precs = micro_grads(params, batch_stats, batch, rng, total_weight)
        else:
            micro = jax.tree.map(lambda x: _split_micro(x, n_micro), batch)

            def body(carry, xs):
                grads_acc, stats, loss_acc, precs_acc = carry
                mb, i = xs
                loss, grads, stats, precs = micro_grads(params, stats, mb, jax.random.fold_in(rng, i), total_weight)
                grads_acc = jax.tree.map(jnp.add, grads_acc, grads)
                precs_acc = {k: precs_acc[k] + precs[k] for k in precs_acc}
                return (grads_acc, stats, loss_acc + loss, precs_acc), None

            zeros = jax.tree.map(jnp.zeros_like, params)
            init = (zeros, batch_stats, jnp.zeros((), jnp.float32), {k: jnp.zeros((), jnp.float32) for k in precision_ks})
            (grads, batch_stats, loss, precs), _ = jax.lax.scan(body, init, (micro, jnp.arange(n_micro)))
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        params = optax.apply_updates(params, updates)
        new_state = {
            "params": params,
            "batch_stats": batch_stats,
            "opt_state": opt_state,
            "step": step + 1,
            "rng": state["rng"],
        }
        out = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(params),
            "labelled": total_weight / batch[label_key].shape[0],
        }
        out.update({f"prec@{k}": v / total_weight for k, v in precs.items()})
        if learning_rate_fn is not None:
            out["lr"] = learning_rate_fn(step)
        return new_state, out

    return jax.jit(
        train_step,
        in_shardings=(state_shardings, sharding.batch_sharding(mesh)),
        out_shardings=(state_shardings, sharding.replicated(mesh)),
        donate_argnums=(0,) if donate else (),
    )


# ----------------------------------------------------------------------------------------
# Inference: logits and features.
# ----------------------------------------------------------------------------------------


def _inference_fn(model: Any, mesh: Any, method: str | None, variable_shardings: Any,
                  preprocess: Callable[[jax.Array], jax.Array]) -> Callable[[Any, jax.Array], jax.Array]:
    def apply(variables, images):
        return model.apply(variables, preprocess(images), train=False, method=method).astype(jnp.float32)

    kwargs: dict[str, Any] = {"out_shardings": sharding.batch_sharding(mesh)}
    if variable_shardings is not None:
        kwargs["in_shardings"] = (variable_shardings, sharding.batch_sharding(mesh))
    return jax.jit(apply, **kwargs)


def make_predict_fn(model: Any, mesh: Any, variable_shardings: Any = None,
                    preprocess: Callable[[jax.Array], jax.Array] = normalize_images
                    ) -> Callable[[Any, jax.Array], jax.Array]:
    """Jitted `(variables, uint8 images) -> (B, C) float32 logits` in inference mode, batch-sharded."""
    return _inference_fn(model, mesh, None, variable_shardings, preprocess)


def predict_on_host(predict: Callable[[Any, jax.Array], jax.Array], variables: Any, images: np.ndarray,
                    mesh: Any) -> np.ndarray:
    """(N, C) float32 logits of host pictures (N, S, S, 3), padded to the mesh and trimmed back.

    Every process passes the same pictures (a command reading files, a calibration set
    every process decodes), so the gathered first N rows are theirs.
    """
    n = len(images)
    pad = -n % mesh.devices.size
    if pad:
        images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
    g = sharding.make_global_batch({"image": images}, mesh)
    return sharding.to_host(predict(variables, g["image"]))[:n]


def make_feature_fn(model: Any, mesh: Any, variable_shardings: Any = None,
                    preprocess: Callable[[jax.Array], jax.Array] = normalize_images
                    ) -> Callable[[Any, jax.Array], jax.Array]:
    """Jitted `(variables, uint8 images) -> (B, D) float32` pooled trunk features, batch-sharded."""
    return _inference_fn(model, mesh, "features", variable_shardings, preprocess)
