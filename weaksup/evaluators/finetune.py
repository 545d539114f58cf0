"""Fine-tuning: a fresh head for the target classes, the whole network trained.

The paper's second transfer protocol. The pretrained trunk (parameters and batch-norm
statistics) is kept, the hashtag head is replaced by a freshly initialised Dense layer
with one output per target class, and every weight is trained with the fine-tuning
schedule (SGD + Nesterov momentum, linear warm-up then cosine decay, weight decay) on
the input pipeline's training augmentation (random-resized crop + flip).

Nothing here forks the trainer: the state comes from `train_lib.create_train_state`, the
update is `train_lib.make_train_step`, checkpoints go through
`weaksup.checkpoint.Checkpointer` (so an interrupted fine-tune resumes, data position
included), and predictions use `train_lib.make_predict_fn`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from weaksup import atomic, augment, console, losses, sharding, train_lib
from weaksup import checkpoint as ckpt_lib
from weaksup import optimizer as optim_lib
from weaksup.config import ConfigError
from weaksup.errors import RunFailed, UsageError
from weaksup.evaluators.context import Context
from weaksup.input_pipeline import Target, make_eval_iterator, make_finetune_iterator
from weaksup.models.vit import ViT, resize_posemb_params


# Beside the fine-tune's checkpoints: {"step": the checkpoint's step, "losses": its last losses}.
LOSSES = "train_losses.json"


class FinetuneError(UsageError, ValueError):
    """Pretrained variables that do not fit the model being fine-tuned."""


class FinetuneFailed(RunFailed):
    """A fine-tune whose training loss became non-finite."""


def _shapes(tree: Any) -> list[tuple[str, tuple[int, ...]]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), tuple(x.shape)) for path, x in leaves]


def _check_trunk(fresh: Any, given: Any, what: str) -> None:
    a, b = _shapes(fresh), _shapes(given)
    if a != b:
        diff = sorted(set(a) ^ set(b))[:4]
        raise FinetuneError(f"the {what} do not fit this architecture; first differences: {diff}")


def transfer_variables(model: Any, variables: Any, num_classes: int, rng: jax.Array, image_size: int
                       ) -> tuple[Any, dict[str, Any]]:
    """(target model, variables): `variables`' trunk with a fresh `num_classes`-way head.

    A ViT trunk pretrained at another resolution gets its position embedding resized to
    `image_size` (bicubic, `models.vit.resize_posemb_params`).
    """
    target_model = model.clone(num_classes=int(num_classes), parent=None)
    dummy = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    fresh = jax.jit(lambda r: target_model.init(r, dummy, train=False))(rng)
    params = dict(fresh["params"])
    stats = dict(fresh.get("batch_stats", {}))
    trunk = variables["params"]["trunk"]
    if isinstance(model, ViT) and trunk["pos_embedding"].shape != fresh["params"]["trunk"]["pos_embedding"].shape:
        # Fine-tuning at another resolution (SWAG: 384-518 px): bicubic resize of the position grid.
        trunk = resize_posemb_params(trunk, model.config, image_size)
    _check_trunk(fresh["params"]["trunk"], trunk, "pretrained trunk parameters")
    params["trunk"] = trunk
    if "trunk" in stats:
        _check_trunk(stats["trunk"], variables.get("batch_stats", {}).get("trunk", {}), "pretrained batch statistics")
        stats["trunk"] = variables["batch_stats"]["trunk"]
    return target_model, {"params": params, "batch_stats": stats}


class Evaluator:
    """Fine-tunes on the context's target (training split); reports val/test top-1 and top-5.

    Options: steps (default 200), base_lr (per 256 images, default 0.1), warmup_steps
    (default 10% of steps), momentum, weight_decay, label_smoothing, crop_min_area (the
    random-resized crop's smallest share of the picture, default Inception's 0.08),
    checkpoint_every (steps; default: only at the end), ema_decay (> 0: evaluate the moving
    average of the weights, as SWAG's fine-tuning does; default off). The batch size and
    seed are the target's. Checkpoints go to the context's workdir; without one nothing is saved.
    """

    def __init__(self, ctx: Context, *, steps: int = 200, base_lr: float = 0.1, warmup_steps: int | None = None,
                 momentum: float = 0.9, weight_decay: float = 1e-4, label_smoothing: float = 0.0,
                 crop_min_area: float = 0.08, checkpoint_every: int = 0, ema_decay: float = 0.0):
        if int(steps) < 1:
            raise ConfigError(f"finetune: steps must be >= 1, got {steps}")
        self.ctx = ctx
        self.target = ctx.require_target("finetune")
        self.steps = int(steps)
        self.base_lr = float(base_lr)
        self.warmup_steps = int(max(1, self.steps // 10) if warmup_steps is None else warmup_steps)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.label_smoothing = float(label_smoothing)
        self.crop_min_area = augment.check_min_area(crop_min_area, "finetune: crop_min_area")
        self.checkpoint_every = int(checkpoint_every or 0)
        self.ema_decay = float(ema_decay)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"finetune: ema_decay must lie in [0, 1), got {ema_decay}")

    def run(self, variables: Any, step: int | None = None) -> dict[str, float]:
        """Fine-tunes from `variables` (resuming from the workdir's checkpoint if any)."""
        del step  # the fine-tune's own steps are what its checkpoints count
        data, mesh = self.target, self.ctx.mesh
        num_classes = data.num_classes()
        gbs = data.batch_size
        sharding.check_batch_layout(gbs, mesh)
        rng = jax.random.PRNGKey(data.seed)
        model, init_vars = transfer_variables(self.ctx.model, jax.device_get(variables), num_classes,
                                              jax.random.fold_in(rng, 1), data.image_size)

        peak = optim_lib.peak_learning_rate(self.base_lr, gbs)
        lr_fn = optim_lib.learning_rate_schedule(peak, self.steps, self.warmup_steps, schedule="cosine")
        tx = optim_lib.make_optimizer(lr_fn, momentum=self.momentum, nesterov=True, weight_decay=self.weight_decay)
        if self.ema_decay:
            tx = optim_lib.with_weight_ema(tx, self.ema_decay)
        train_iter = make_finetune_iterator(data, crop_min_area=self.crop_min_area)
        ckpt = None
        latest = None
        if self.ctx.workdir is not None:
            ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(self.ctx.workdir), keep=1, async_save=False)
            latest = ckpt.latest_step()
        if latest is not None:
            state, state_shardings = train_lib.create_train_state(
                model, mesh, data.image_size, tx=tx, checkpoint=(ckpt, latest), data_iterator=train_iter)
        else:
            state, state_shardings = train_lib.create_train_state(
                model, mesh, data.image_size, tx=tx, variables=init_vars, rng=jax.random.fold_in(rng, 2))

        loss_fn = losses.make_loss_fn("softmax", self.label_smoothing)
        train_step = train_lib.make_train_step(model, tx, loss_fn, mesh, state_shardings, label_key="label",
                                               learning_rate_fn=lr_fn)
        first = int(jax.device_get(state["step"]))
        # The last 10 steps' losses travel with each checkpoint, so a fine-tune resumed near or
        # at its end (the demo run again) still reports its training loss.
        losses_path = None if self.ctx.workdir is None else Path(self.ctx.workdir) / LOSSES
        losses_seen = _saved_losses(losses_path, first)
        for i in console.progress(range(first, self.steps), total=self.steps, initial=first,
                                  desc=f"finetune {data.dataset}", unit="step"):
            batch = next(train_iter)
            state, m = train_step(state, sharding.make_global_batch(batch, mesh))
            if i >= self.steps - 10:
                losses_seen.append(float(jax.device_get(m["loss"])))
            done = i + 1
            if ckpt is not None and (done == self.steps or (self.checkpoint_every and done % self.checkpoint_every == 0)):
                ckpt.save(done, state, data_iterator=train_iter)
                atomic.write_json(losses_path, {"step": done, "losses": losses_seen})
        if ckpt is not None:
            ckpt.close()
        if not all(np.isfinite(losses_seen)):
            raise FinetuneFailed(f"finetune on {data.dataset}: non-finite training loss")

        variables = train_lib.variables_of(state)
        if self.ema_decay:
            variables["params"] = optim_lib.ema_params(state["opt_state"])
        predict = train_lib.make_predict_fn(model, mesh, train_lib.variables_of(state_shardings))
        out: dict[str, float] = {"steps": float(self.steps)}
        if losses_seen:
            out["train_loss"] = float(np.mean(losses_seen))
        for name, split in (("val", data.val_split), ("test", data.test_split)):
            if split is None:
                continue
            out[f"{name}_top1"], out[f"{name}_top5"] = classify(predict, variables, mesh, data, split)
        return out


def _saved_losses(path: Path | None, step: int) -> list[float]:
    """The recent training losses saved with the checkpoint of `step` (none for a fresh start)."""
    if path is None or step == 0 or not path.is_file():
        return []
    saved = json.loads(path.read_text(encoding="utf-8"))
    return [float(x) for x in saved["losses"]] if saved.get("step") == step else []


def classify(predict: Any, variables: Any, mesh: Any, target: Target, split: str) -> tuple[float, float]:
    """(top-1, top-5) of `predict` on a split of `target`, over real (unmasked) examples only."""

    def counts(logits, labels, mask):
        _, top = jax.lax.top_k(logits, min(5, logits.shape[-1]))
        hit = top == labels[:, None]
        return jnp.stack([jnp.sum(hit[:, 0] & mask), jnp.sum(jnp.any(hit, -1) & mask), jnp.sum(mask)])

    counts = jax.jit(counts, out_shardings=sharding.replicated(mesh))
    total = np.zeros(3)
    for batch in make_eval_iterator(target, split):
        g = sharding.make_global_batch(batch, mesh)
        total += np.asarray(counts(predict(variables, g["image"]), g["label"], g["mask"]), np.float64)
    if total[2] == 0:
        raise ValueError(f"{target.dataset}/{split}: no readable examples")
    return float(total[0] / total[2]), float(total[1] / total[2])
