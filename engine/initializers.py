"""Weight and bias initialization schemes: the INITIALIZERS registry, init_layer and LSUV.

A layer computes ``x @ W + b`` with ``W: (fan_in, fan_out)`` and ``b: (fan_out,)``. Every
scheme is a pure function of a ``numpy.random.Generator``, so a run's starting weights are
reproducible from its init seed. Bias schemes see the same layer's fan_in and fan_out as the
weight scheme (PyTorch's default bias, U(±1/√fan_in), is of the LeCun fan_in family).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Shape = tuple[int, ...]
SampleFn = Callable[[np.random.Generator, int, int, Shape, float], np.ndarray]


@dataclass(frozen=True)
class Initializer:
    """One initialization scheme, as the window lists it.

    Attributes
    ----------
    name : str
        The registry key (``InitConfig.weights`` / ``InitConfig.biases``).
    label : str
        Short name for a combo box.
    description : str
        One line: what the scheme is and when it is used.
    formula : str
        Plain-text formula the window shows.
    uses_scale : bool
        Whether ``weight_scale`` / ``bias_scale`` changes the result.
    sample : callable
        ``sample(rng, fan_in, fan_out, shape, scale) -> array`` of the given shape, float64,
        before the gain is applied.
    """

    name: str
    label: str
    description: str
    formula: str
    uses_scale: bool
    sample: SampleFn


# -- samplers ------------------------------------------------------------------------------
def _zeros(
    rng: np.random.Generator, fan_in: int, fan_out: int, shape: Shape, scale: float
) -> np.ndarray:
    return np.zeros(shape)


def _constant(
    rng: np.random.Generator, fan_in: int, fan_out: int, shape: Shape, scale: float
) -> np.ndarray:
    return np.full(shape, float(scale))


def _uniform(
    rng: np.random.Generator, fan_in: int, fan_out: int, shape: Shape, scale: float
) -> np.ndarray:
    eps = abs(float(scale))  # a negative epsilon means the same interval
    return rng.uniform(-eps, eps, size=shape)


def _normal(
    rng: np.random.Generator, fan_in: int, fan_out: int, shape: Shape, scale: float
) -> np.ndarray:
    return rng.normal(0.0, abs(float(scale)), size=shape)


def _uniform_bound(bound: Callable[[int, int], float]) -> SampleFn:
    def sample(
        rng: np.random.Generator, fan_in: int, fan_out: int, shape: Shape, scale: float
    ) -> np.ndarray:
        a = bound(fan_in, fan_out)
        return rng.uniform(-a, a, size=shape)

    return sample


def _normal_std(std: Callable[[int, int], float]) -> SampleFn:
    def sample(
        rng: np.random.Generator, fan_in: int, fan_out: int, shape: Shape, scale: float
    ) -> np.ndarray:
        return rng.normal(0.0, std(fan_in, fan_out), size=shape)

    return sample


def _orthogonal(
    rng: np.random.Generator, fan_in: int, fan_out: int, shape: Shape, scale: float
) -> np.ndarray:
    """Haar-distributed (semi-)orthogonal matrix: orthonormal columns if tall, rows if wide.

    QR of a Gaussian matrix, with Q's columns flipped so that R has a positive diagonal
    (Saxe et al. 2014; ``torch.nn.init.orthogonal_``). Without the flip LAPACK's
    Householder QR biases the signs (Q[0, 0] would always be negative).
    """
    if len(shape) != 2:
        raise ValueError(f"'orthogonal' needs a matrix, got shape {tuple(shape)}")
    rows, cols = shape
    a = rng.standard_normal((rows, cols))
    wide = rows < cols
    if wide:
        a = a.T  # (cols, rows): QR needs a tall matrix
    q, r = np.linalg.qr(a)  # q: (max, min) with orthonormal columns
    q *= np.where(np.diag(r) < 0.0, -1.0, 1.0)
    return np.ascontiguousarray(q.T if wide else q)


# -- the registry --------------------------------------------------------------------------
INITIALIZERS: dict[str, Initializer] = {
    init.name: init
    for init in [
        Initializer(
            "zeros",
            "Zeros",
            "All zero: fine for biases; for weights every unit stays identical (no symmetry "
            "breaking), so the network cannot learn.",
            "W = 0",
            False,
            _zeros,
        ),
        Initializer(
            "constant",
            "Constant",
            "Every entry the same value c = scale: a symmetry-breaking failure for weights, "
            "a common choice for biases (e.g. 0.01 before ReLU).",
            "W = c   (c = scale)",
            True,
            _constant,
        ),
        Initializer(
            "uniform",
            "Uniform ±ε",
            "Uniform in [-ε, ε] with a hand-picked ε = scale, independent of layer size: "
            "the naive scheme whose signal shrinks or explodes with depth.",
            "W ~ U(−ε, ε)   (ε = scale)",
            True,
            _uniform,
        ),
        Initializer(
            "normal",
            "Normal σ",
            "Gaussian with a hand-picked σ = scale, independent of layer size (e.g. the "
            "classic N(0, 0.01²)): vanishing or exploding signals in deep nets.",
            "W ~ N(0, σ²)   (σ = scale)",
            True,
            _normal,
        ),
        Initializer(
            "xavier_uniform",
            "Xavier/Glorot uniform",
            "Glorot & Bengio 2010: keeps forward and backward variance balanced for tanh "
            "and sigmoid networks; variance 2/(fan_in + fan_out).",
            "W ~ U(−a, a),  a = √(6 / (fan_in + fan_out))",
            False,
            _uniform_bound(lambda fi, fo: math.sqrt(6.0 / (fi + fo))),
        ),
        Initializer(
            "xavier_normal",
            "Xavier/Glorot normal",
            "Glorot & Bengio 2010, Gaussian form: for tanh and sigmoid networks.",
            "W ~ N(0, 2 / (fan_in + fan_out))",
            False,
            _normal_std(lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
        ),
        Initializer(
            "lecun_uniform",
            "LeCun uniform",
            "LeCun 1998: variance 1/fan_in, for tanh/SELU; the lecture's U(±√(1/n)) and "
            "PyTorch's default U(±1/√fan_in) belong to this fan_in family (variance 1/(3n)).",
            "W ~ U(−a, a),  a = √(3 / fan_in)",
            False,
            _uniform_bound(lambda fi, fo: math.sqrt(3.0 / fi)),
        ),
        Initializer(
            "lecun_normal",
            "LeCun normal",
            "LeCun 1998, Gaussian form: variance 1/fan_in, the standard choice for SELU "
            "(self-normalizing) networks.",
            "W ~ N(0, 1 / fan_in)",
            False,
            _normal_std(lambda fi, fo: math.sqrt(1.0 / fi)),
        ),
        Initializer(
            "he_normal",
            "He/Kaiming normal",
            "He et al. 2015: variance 2/fan_in makes up for ReLU zeroing half its inputs; "
            "the default for ReLU networks.",
            "W ~ N(0, 2 / fan_in)",
            False,
            _normal_std(lambda fi, fo: math.sqrt(2.0 / fi)),
        ),
        Initializer(
            "he_uniform",
            "He/Kaiming uniform",
            "He et al. 2015, uniform form: variance 2/fan_in, for ReLU and leaky-ReLU networks.",
            "W ~ U(−a, a),  a = √(6 / fan_in)",
            False,
            _uniform_bound(lambda fi, fo: math.sqrt(6.0 / fi)),
        ),
        Initializer(
            "orthogonal",
            "Orthogonal",
            "Saxe et al. 2014: a random (semi-)orthogonal matrix preserves the norm of every "
            "signal through linear layers; used for deep and recurrent nets (weights only).",
            "W = Q·diag(sign(diag R)),  QR = A,  A ~ N(0, 1)   (WᵀW = I or WWᵀ = I)",
            False,
            _orthogonal,
        ),
        Initializer(
            "lsuv",
            "LSUV",
            "Mishkin & Matas 2015: orthogonal start, then each layer rescaled on a data batch "
            "to unit output variance, first to last layer (weights only; overrides the gain).",
            "W = orthogonal;  repeat W ← W / √Var(x·W + b)  until |Var − 1| < tolerance",
            False,
            _orthogonal,  # the data-dependent rescaling is lsuv_scale, run by the network
        ),
    ]
}

# Schemes that can fill a 1-D bias vector; orthogonal and lsuv need a matrix.
BIAS_SCHEMES: list[str] = [n for n in INITIALIZERS if n not in ("orthogonal", "lsuv")]


def _check_name(field: str, name: str, choices: list[str]) -> None:
    if name in choices:
        return
    if name in INITIALIZERS:  # a real scheme that cannot fill a bias vector
        raise ValueError(f"{field}: {name!r} needs a matrix")
    hint = difflib.get_close_matches(name, choices, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(f"{field} must be one of {', '.join(choices)}; got {name!r}{extra}")


def init_layer(
    rng: np.random.Generator,
    n_in: int,
    n_out: int,
    weights: str,
    biases: str,
    gain: float = 1.0,
    weight_scale: float = 0.1,
    bias_scale: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Initial weights and biases of one dense layer ``x @ W + b``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; the weights are drawn before the biases.
    n_in, n_out : int
        Fan in and fan out of the layer.
    weights, biases : str
        Keys of `INITIALIZERS`; `biases` must be one of `BIAS_SCHEMES`.
    gain : float
        Multiplies the weights (not the biases) of any scheme.
    weight_scale, bias_scale : float
        ε, σ or the value for the "uniform", "normal" and "constant" schemes.

    Returns
    -------
    W : (n_in, n_out) float64, C-contiguous
    b : (n_out,) float64, C-contiguous

    Raises
    ------
    ValueError
        If a name is unknown, or the bias scheme needs a matrix ("orthogonal", "lsuv").

    Notes
    -----
    For "lsuv" this returns the orthogonal start (times `gain`); the network then calls
    `lsuv_scale` layer by layer, which makes the gain irrelevant.
    """
    _check_name("init.weights", weights, list(INITIALIZERS))
    _check_name("init.biases", biases, BIAS_SCHEMES)
    w = INITIALIZERS[weights].sample(rng, n_in, n_out, (n_in, n_out), weight_scale)
    b = INITIALIZERS[biases].sample(rng, n_in, n_out, (n_out,), bias_scale)
    w = np.ascontiguousarray(w, dtype=np.float64) * float(gain)
    return w, np.ascontiguousarray(b, dtype=np.float64)


def lsuv_scale(
    w: np.ndarray,
    b: np.ndarray,
    forward_pre_activation: Callable[[], np.ndarray],
    tolerance: float,
    max_iter: int,
) -> int:
    """Rescale one layer's weights in place until its pre-activations have unit variance.

    The LSUV step of Mishkin & Matas (2015, "All you need is a good init"). The caller runs
    it layer by layer, first to last, on one data batch, so that each layer sees inputs
    produced by the already-rescaled layers before it.

    Parameters
    ----------
    w : (fan_in, fan_out) float64
        The layer's weights, divided in place by √var at each iteration.
    b : (fan_out,) float64
        The layer's biases; left unchanged (as in the paper), but they enter the variance
        through the callback, so a bias with large spread can keep the loop from converging.
    forward_pre_activation : callable
        ``() -> (batch, fan_out)`` array: the layer's ``x @ w + b`` computed with the
        current `w` on the data batch.
    tolerance : float
        Stop when ``|var - 1| < tolerance``, var being the variance of all entries.
    max_iter : int
        At most this many rescalings.

    Returns
    -------
    int
        The number of rescalings done: 0 if the variance was already within tolerance, or
        was 0 or not finite (nothing to scale), `max_iter` if it never got within tolerance.
    """
    for iteration in range(max_iter):
        with np.errstate(invalid="ignore", over="ignore"):  # inf/nan are handled below
            var = float(np.var(forward_pre_activation()))
        if not math.isfinite(var) or var == 0.0 or abs(var - 1.0) < tolerance:
            return iteration
        w /= math.sqrt(var)
    return max_iter
