"""Gradient clipping: the registry and the kernel that clips the flat gradient in place."""

from __future__ import annotations

from dataclasses import dataclass

from engine._jit import kernel

NONE, GLOBAL_NORM, LAYER_NORM, VALUE = range(4)


@dataclass(frozen=True)
class ClipKind:
    name: str
    code: int
    label: str
    description: str
    formula: str


CLIP_KINDS: dict[str, ClipKind] = {
    c.name: c
    for c in [
        ClipKind("none", NONE, "None", "Gradients are used as they are.", "g"),
        ClipKind(
            "global_norm", GLOBAL_NORM, "Global norm",
            "Rescales the whole gradient when its L2 norm exceeds τ; keeps its direction.",
            "if ‖g‖ > τ:  g ← τ·g / ‖g‖",
        ),
        ClipKind(
            "layer_norm", LAYER_NORM, "Per-layer norm",
            "Rescales each layer's gradient separately when its norm exceeds τ.",
            "for each layer l: if ‖g_l‖ > τ:  g_l ← τ·g_l / ‖g_l‖",
        ),
        ClipKind(
            "value", VALUE, "By value",
            "Clamps every component to [−τ, τ]; changes the gradient's direction.",
            "g_i ← max(−τ, min(τ, g_i))",
        ),
    ]
}


@kernel
def clip(kind, threshold, grad, bounds, layer_norm, total_norm):
    """Clip grad in place; return True if anything changed.

    bounds: (n_layers + 1,) parameter offsets, layer l owns grad[bounds[l]:bounds[l+1]].
    layer_norm: (n_layers,) norms of each layer's gradient; total_norm the global norm.
    """
    if kind == GLOBAL_NORM:
        norm = total_norm
        if norm > threshold:
            s = threshold / norm
            for i in range(grad.size):
                grad[i] *= s
            return True
        return False
    if kind == LAYER_NORM:
        changed = False
        for l in range(bounds.size - 1):
            norm = layer_norm[l]
            if norm > threshold:
                s = threshold / norm
                for i in range(bounds[l], bounds[l + 1]):
                    grad[i] *= s
                changed = True
        return changed
    if kind == VALUE:
        changed = False
        for i in range(grad.size):
            v = grad[i]
            if v > threshold:
                grad[i] = threshold
                changed = True
            elif v < -threshold:
                grad[i] = -threshold
                changed = True
        return changed
    return False
