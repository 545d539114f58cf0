"""Parameter and multiply-add counts, from shapes alone (nothing is materialised).

Parameters come from `jax.eval_shape(model.init)`. Multiply-adds are read off the jaxpr of
one forward pass at inference: every `conv_general_dilated` and `dot_general` contributes
its MACs, so the count follows the code rather than a formula beside it. The model is
traced with the native grouped convolution, which does exactly the useful work (the CPU
fast path deliberately spends extra FLOPs on block-diagonal kernels).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.extend import core as jex_core


def abstract_variables(model: nn.Module, image_size: int) -> Any:
    """Shapes and dtypes of `model`'s variables for one image of `image_size` px."""
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), images)


def count_params(model: nn.Module, image_size: int = 224) -> int:
    """Trainable parameters (the "params" collection; BN running statistics excluded)."""
    variables = abstract_variables(model, image_size)
    return sum(math.prod(x.shape) for x in jax.tree.leaves(variables["params"]))


def _eqn_macs(eqn: Any) -> int:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
        rhs = eqn.invars[1].aval.shape
        out = eqn.outvars[0].aval.shape
        dn = eqn.params["dimension_numbers"]
        # rhs_spec = (out feature dim, in feature dim, spatial dims...)
        rhs_in = rhs[dn.rhs_spec[1]]
        window = math.prod(rhs[d] for d in dn.rhs_spec[2:])
        # Each output element sums window * (Cin / groups) products; the kernel's input
        # dimension is already Cin / feature_group_count.
        return math.prod(out) * window * rhs_in // eqn.params["batch_group_count"]
    if name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        out = eqn.outvars[0].aval.shape
        return math.prod(out) * math.prod(lhs[d] for d in lhs_contract)
    return 0


def _jaxpr_macs(jaxpr: Any) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        total += _eqn_macs(eqn)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(sub, jex_core.ClosedJaxpr):
                    total += _jaxpr_macs(sub.jaxpr)
                elif isinstance(sub, jex_core.Jaxpr):
                    total += _jaxpr_macs(sub)
    return total


def count_macs(model: nn.Module, image_size: int = 224) -> int:
    """Multiply-adds of one forward pass on one `image_size` px image (convs + dense)."""
    model = model.clone(conv_impl="native") if hasattr(model, "conv_impl") else model
    variables = abstract_variables(model, image_size)
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    closed = jax.make_jaxpr(functools.partial(model.apply, train=False))(variables, images)
    return _jaxpr_macs(closed.jaxpr)
