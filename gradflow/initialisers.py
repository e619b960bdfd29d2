r"""Random initial parameters and inputs for any cell, each scheme with its reference.

Parameters are found from the cell's graph, so every catalogue cell and every user cell works:
weights of shape ``(n, n)`` are *recurrent* (they act on the state or on a vector of size ``n``
computed from it), weights of shape ``(n, d)`` are *input* weights, ``(n,)`` biases belong to an
affine node, and ``(n,)`` *vector* parameters are either diagonal recurrent weights (they appear
in ``ds_t/ds_{t-1}`` of a state's own update, like the IndRNN ``u``) or peephole-like weights
(everything else). Gates are the affine nodes feeding a ``sigmoid`` (``a_i``, ``a_f``, ``a_z``,
``a_u``, ...); the *memory gate* of a state is the gate whose value ``g`` multiplies the old state
on the weight-free path of its update: ``c_t = f c_{t-1} + ...`` (LSTM, keeps with ``g = f``),
``h_t = z h_{t-1} + ...`` (GRU, keeps), ``h_t = (1 - f) h_{t-1} + ...`` (MGU, ``g`` writes).

Schemes (:class:`Init`): ``torch`` (PyTorch's default), ``gaussian`` (mean-field),
``orthogonal`` (Haar), ``identity`` (IRNN). Options on top: ``spectral_radius``,
``forget_bias``, ``chrono_tmax``, ``update_bias``. Everything is drawn from the ``rng`` argument,
so the same seed gives the same arrays.

Examples:
    >>> import numpy as np
    >>> from gradflow.cells import get_cell
    >>> p = initialise(get_cell("lstm"), 4, 2, Init(forget_bias=1.0), np.random.default_rng(0))
    >>> p["b_if"].tolist(), p["b_hf"].tolist()
    ([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0])
    >>> memory_gates(get_cell("gru"))
    (MemoryGate(state='h', node='a_z', gate='z', keeps=True),)
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .cells.functions import sigmoid
from .cells.graph import Affine, Cell, Elementwise, Parameter
from .errors import InputsError, UsageError
from .paper_inits import PAPER_INITS, paper_initialisation

SCHEMES = ("torch", "gaussian", "orthogonal", "identity", "paper")
INPUT_KINDS = ("gaussian", "zeros", "constant", "file")


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass(frozen=True)
class Init:
    r"""How to initialise a cell's parameters.

    Attributes:
        scheme: ``"torch"``: every parameter (weights and biases) ``~ U(-1/sqrt(n), 1/sqrt(n))``,
            PyTorch's ``RNNBase.reset_parameters`` (``stdv = 1/sqrt(hidden_size)``).
            ``"gaussian"``: recurrent ``(n, n)`` weights ``~ N(0, sigma_w^2/n)``, input weights
            ``~ N(0, sigma_u^2/d)``, biases ``~ N(0, sigma_b^2)``, the mean-field ensemble
            [poole2016] (variance scaling as in [glorot2010]). ``"orthogonal"``: recurrent
            weights ``sigma_w Q`` with ``Q`` Haar-orthogonal [saxe2014]. ``"identity"``:
            recurrent weights ``sigma_w I`` (IRNN, [le2015irnn]). For ``orthogonal`` and
            ``identity`` input weights and biases follow the ``gaussian`` rule (``sigma_b = 0``,
            the default, gives the IRNN's zero biases). ``"paper"``: the initialisation the
            cell's own paper or reference code prescribes (:data:`PAPER_INITS`, see
            :func:`paper_initialisation`); cells without one get ``"torch"``.
        sigma_w: recurrent gain (standard deviation times ``sqrt(n)`` for ``gaussian``).
        sigma_u: input-weight gain (standard deviation times ``sqrt(d)``).
        sigma_b: bias standard deviation. When an affine node has ``k`` bias vectors (PyTorch's
            ``b_ih + b_hh``) each gets variance ``sigma_b^2 / k``, so their sum has ``sigma_b^2``.
        spectral_radius: rescale each recurrent ``(n, n)`` weight (and each diagonal recurrent
            vector such as the IndRNN ``u``) so its largest ``|eigenvalue|`` equals this.
        forget_bias: bias of the forget gate ``a_f`` ([jozefowicz2015] use 1.0).
        chrono_tmax: chrono initialisation [tallec2018chrono]: memory-gate bias
            ``log U(1, T_max - 1)`` and input-gate bias ``b_i = -b_f``.
        t_max: the training sequence length ``T_max`` that the ``"paper"`` scheme of some cells
            needs: IndRNN's recurrent bound ``|u| <= 2^(1/T_max)`` [li2018indrnn] and JANET's
            chrono forget bias ``log U(1, T_max)`` [westhuizen2018janet].
        update_bias: bias of the update gate, the memory gate of the hidden state ``h``
            (``a_z`` for the GRU, ``a_u`` for the MinimalRNN, ``a_f`` for the MGU). The sign
            follows the cell's convention: GRU and MinimalRNN gates *keep* the old state, so a
            positive value keeps memory; the MGU gate *writes* the new state, so a negative value
            keeps memory.

    Vector parameters: diagonal recurrent weights (IndRNN ``u``) are ``U(0, sigma_w)`` for
    ``gaussian`` (``U(0, 1)`` at the default, inside the ``[0, 1]`` range Li et al. recommend,
    [li2018indrnn]) and ``sigma_w`` (the diagonal of ``sigma_w I``) for ``orthogonal`` and
    ``identity``; peepholes are ``N(0, sigma_w^2 / n)`` for ``gaussian`` (one term of the size of
    one recurrent weight) and zero for ``orthogonal`` and ``identity``.

    When a gate has two bias vectors (PyTorch's ``b_i*`` and ``b_h*``), ``forget_bias``,
    ``update_bias`` and chrono values go on the first and the second is zeroed, so the total
    bias is exactly the requested value.

    References:
        [paszke2019] PyTorch ``nn.RNN``/``nn.LSTM``/``nn.GRU`` default initialisation.
        [glorot2010], [saxe2014], [le2015irnn], [jozefowicz2015], [tallec2018chrono],
        [poole2016], [pennington2017], [li2018indrnn].
    """

    scheme: str = "torch"
    sigma_w: float = 1.0
    sigma_u: float = 1.0
    sigma_b: float = 0.0
    spectral_radius: float | None = None
    forget_bias: float | None = None
    chrono_tmax: float | None = None
    update_bias: float | None = None
    t_max: float | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise UsageError(f"unknown init scheme {self.scheme!r}; choose one of {SCHEMES}")
        for name in ("sigma_w", "sigma_u", "sigma_b"):
            v = getattr(self, name)
            if not (_is_real(v) and math.isfinite(v) and v >= 0):
                raise UsageError(f"init {name} must be a finite number >= 0, got {v!r}")
        for name in ("spectral_radius", "forget_bias", "update_bias", "chrono_tmax", "t_max"):
            v = getattr(self, name)
            if v is not None and not (_is_real(v) and math.isfinite(v)):
                raise UsageError(f"init {name} must be a finite number or None, got {v!r}")
        if self.spectral_radius is not None and self.spectral_radius <= 0:
            raise UsageError(f"init spectral_radius must be > 0, got {self.spectral_radius}")
        if self.t_max is not None and self.t_max < 1:
            raise UsageError(f"init t_max must be >= 1 (a sequence length), got {self.t_max}")
        if self.chrono_tmax is not None and self.chrono_tmax <= 2:
            raise UsageError(
                f"init chrono_tmax must be > 2 (b_f ~ log U(1, Tmax - 1)), got {self.chrono_tmax}"
            )


@dataclass(frozen=True)
class MemoryGate:
    """A sigmoid gate on the weight-free path of a state's update.

    Attributes:
        state: the state vector it gates (``c`` for the LSTM, ``h`` for the GRU).
        node: the affine node of its pre-activation (``a_f``, ``a_z``).
        gate: the gate's value node (``f``, ``z``).
        keeps: True when ``ds_t/ds_{t-1}`` along that path is ``diag(g)`` (the gate keeps the
            old state), False when it is ``diag(1 - g)`` (the gate writes the new state).
    """

    state: str
    node: str
    gate: str
    keeps: bool


def sigmoid_gates(cell: Cell) -> dict[str, str]:
    """``{affine node: gate value node}`` for every node ``g = sigmoid(a + ...)``."""
    affines = {nd.name for nd in cell.nodes if isinstance(nd, Affine)}
    out: dict[str, str] = {}
    for nd in cell.nodes:
        if isinstance(nd, Elementwise) and isinstance(nd.expr, sigmoid):
            names = sorted(str(s) for s in nd.expr.args[0].free_symbols if str(s) in affines)
            if len(names) == 1:
                out.setdefault(names[0], nd.name)
    return out


@lru_cache(maxsize=128)
def memory_gates(cell: Cell) -> tuple[MemoryGate, ...]:
    """The memory gates of ``cell``, found from its update equations (see module docstring)."""
    gates = sigmoid_gates(cell)
    by_value = {g: a for a, g in gates.items()}
    nodes = cell.node_map
    out = []
    for state, node_name in cell.update:
        node = nodes[node_name]
        if not isinstance(node, Elementwise):
            continue
        coef = sp.diff(node.expr, cell.symbol(state))
        for value in sorted(str(s) for s in coef.free_symbols if str(s) in by_value):
            g = cell.symbol(value)
            if sp.simplify(coef - g) == 0:
                out.append(MemoryGate(state, by_value[value], value, True))
            elif sp.simplify(coef - (1 - g)) == 0:
                out.append(MemoryGate(state, by_value[value], value, False))
    return tuple(out)


@lru_cache(maxsize=128)
def recurrent_vectors(cell: Cell) -> frozenset[str]:
    """Vector parameters on a state's own update path (diagonal recurrent weights)."""
    vectors = {p.name for p in cell.iter_params("vector")}
    found: set[str] = set()
    for state, node_name in cell.update:
        node = cell.node_map[node_name]
        if isinstance(node, Elementwise):
            coef = sp.diff(node.expr, cell.symbol(state))
            found |= {str(s) for s in coef.free_symbols} & vectors
    return frozenset(found)


def haar_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """An ``n x n`` orthogonal matrix distributed by Haar measure.

    QR of a standard Gaussian matrix with the signs of ``R``'s diagonal moved into ``Q``
    (without the fix the distribution is not Haar).

    References:
        [mezzadri2007] F. Mezzadri (2007), How to generate random matrices from the classical
        compact groups, Notices of the AMS 54(5).
    """
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _bias_counts(cell: Cell) -> dict[str, int]:
    counts: dict[str, int] = {}
    for nd in cell.nodes:
        if isinstance(nd, Affine):
            for b in nd.biases:
                counts.setdefault(b, len(nd.biases))
    return counts


def _draw(
    p: Parameter,
    n: int,
    d: int,
    init: Init,
    rng: np.random.Generator,
    cell: Cell,
    k_bias: int,
    proj: int | None = None,
) -> np.ndarray:
    shape = p.numeric_shape(n, d, proj)
    if p.kind == "weight" and "p" in p.shape and init.scheme not in ("torch", "paper"):
        # lstm-proj's (n, p) and (p, n) weights: fan-in the columns; orthogonal and identity
        # as the rectangular (semi-orthogonal, truncated identity) matrices
        rows, cols = shape
        if init.scheme == "gaussian":
            return rng.standard_normal(shape) * (init.sigma_w / math.sqrt(cols))
        if init.scheme == "orthogonal":
            q = haar_orthogonal(max(rows, cols), rng)
            return init.sigma_w * q[:rows, :cols]
        return init.sigma_w * np.eye(rows, cols)
    if init.scheme in ("torch", "paper"):
        bound = 1.0 / math.sqrt(n)
        return rng.uniform(-bound, bound, size=shape)
    if p.kind == "weight" and len(shape) == 1:  # rows(w) (F9): one row, fan-in n
        return rng.standard_normal(shape) * (init.sigma_w / math.sqrt(n))
    if p.kind == "weight" and len(shape) == 3:  # heads blocks (F2): each block as an n/H cell
        heads, size, _ = shape
        if init.scheme == "gaussian":
            return rng.standard_normal(shape) * (init.sigma_w / math.sqrt(size))
        if init.scheme == "orthogonal":
            return init.sigma_w * np.stack([haar_orthogonal(size, rng) for _ in range(heads)])
        return init.sigma_w * np.stack([np.eye(size)] * heads)
    if p.kind == "weight":
        if p.shape == ("n", "d"):
            return rng.standard_normal(shape) * (init.sigma_u / math.sqrt(d))
        if init.scheme == "gaussian":
            return rng.standard_normal(shape) * (init.sigma_w / math.sqrt(n))
        if init.scheme == "orthogonal":
            return init.sigma_w * haar_orthogonal(n, rng)
        return init.sigma_w * np.eye(n)
    if p.kind == "bias":
        return rng.standard_normal(shape) * (init.sigma_b / math.sqrt(k_bias))
    if p.name in recurrent_vectors(cell):
        if init.scheme == "gaussian":
            return rng.uniform(0.0, init.sigma_w, size=shape)
        return np.full(shape, float(init.sigma_w))
    if init.scheme == "gaussian":
        return rng.standard_normal(shape) * (init.sigma_w / math.sqrt(n))
    return np.zeros(shape)


def _rescale(name: str, w: np.ndarray, target: float) -> np.ndarray:
    radius = float(np.max(np.abs(np.linalg.eigvals(w) if w.ndim == 2 else w)))
    if not radius > 0:
        raise UsageError(
            f"cannot rescale {name} to spectral radius {target}: its spectral radius is 0; "
            "choose a scheme or sigma_w that gives a non-zero recurrent weight"
        )
    return w * (target / radius)


def _set_gate_bias(
    params: dict[str, np.ndarray], cell: Cell, node: str, value: float | np.ndarray
) -> None:
    biases = cell.node_map[node].biases  # type: ignore[union-attr]
    if not biases:
        raise UsageError(f"cell {cell.name!r}: gate {node!r} has no bias to set")
    params[biases[0]] = np.array(np.broadcast_to(value, params[biases[0]].shape), dtype=float)
    for b in biases[1:]:
        params[b] = np.zeros_like(params[b])


def update_gate(cell: Cell) -> MemoryGate | None:
    """The memory gate of the cell's first state (its hidden state), or None."""
    for mg in memory_gates(cell):
        if mg.state == cell.state[0]:
            return mg
    return None


def _gate_options(
    params: dict[str, np.ndarray], cell: Cell, n: int, init: Init, rng: np.random.Generator
) -> None:
    gates = sigmoid_gates(cell)
    set_by: dict[str, str] = {}

    def claim(node: str, option: str) -> None:
        if node in set_by:
            raise UsageError(
                f"cell {cell.name!r}: {set_by[node]} and {option} both set the bias of gate "
                f"{node!r}; give only one"
            )
        set_by[node] = option

    if init.forget_bias is not None:
        if "a_f" not in gates:
            raise UsageError(
                f"cell {cell.name!r} has no forget gate a_f; forget_bias applies to LSTM-type "
                "cells (use update_bias for GRU-type cells)"
            )
        claim("a_f", "forget_bias")
        _set_gate_bias(params, cell, "a_f", float(init.forget_bias))
    if init.update_bias is not None:
        ug = update_gate(cell)
        if ug is None:
            raise UsageError(
                f"cell {cell.name!r} has no update gate on its hidden state; update_bias applies "
                "to GRU-type cells (use forget_bias for LSTM-type cells)"
            )
        claim(ug.node, "update_bias")
        _set_gate_bias(params, cell, ug.node, float(init.update_bias))
    if init.chrono_tmax is not None:
        mgs = memory_gates(cell)
        if not mgs:
            raise UsageError(
                f"cell {cell.name!r} has no memory gate; chrono_tmax needs a gated cell"
            )
        first: np.ndarray | None = None
        for mg in mgs:
            claim(mg.node, "chrono_tmax")
            b = np.log(rng.uniform(1.0, init.chrono_tmax - 1.0, size=n))
            _set_gate_bias(params, cell, mg.node, b if mg.keeps else -b)
            first = b if first is None else first
        if first is not None and "a_i" in gates and all(mg.node != "a_i" for mg in mgs):
            claim("a_i", "chrono_tmax")
            _set_gate_bias(params, cell, "a_i", -first)


def initialise(
    cell: Cell,
    n: int,
    d: int,
    init: Init,
    rng: np.random.Generator,
    p: int | None = None,
) -> dict[str, np.ndarray]:
    """Draw every parameter of ``cell`` for hidden size ``n`` and input size ``d``.

    Args:
        cell: a catalogue or user cell.
        n: hidden size (positive int).
        d: input size (positive int).
        init: the scheme and its options (:class:`Init`).
        rng: the source of randomness; the same seed gives identical arrays.
        p: the second size of a cell that has one (``lstm-proj``'s projection size);
            default ``max(1, n // 2)``. Ignored by every other cell.

    Returns:
        ``{parameter name: float64 array}``, weights ``(n, d)`` or ``(n, n)`` (``(n, p)`` and
        ``(p, n)`` for ``lstm-proj``), biases and vectors ``(n,)``.

    Raises:
        UsageError: bad sizes, an option the cell has no gate for, or a spectral radius for a
            cell with no square recurrent weight (``lstm-proj``).

    References:
        See :class:`Init`.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UsageError(f"hidden size n must be a positive integer, got {n!r}")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise UsageError(f"input size d must be a positive integer, got {d!r}")
    n, d = int(n), int(d)
    proj = None
    if cell.has_second_size:
        proj = max(1, n // 2) if p is None else p
        if isinstance(proj, bool) or not isinstance(proj, (int, np.integer)) or proj < 1:
            raise UsageError(f"projection size p must be a positive integer, got {p!r}")
        proj = int(proj)
        if init.spectral_radius is not None:
            raise UsageError(
                f"cell {cell.name!r} has no square recurrent weight (W_hr is (p, n), W_h* "
                "(n, p)): spectral_radius does not apply; leave it out"
            )
    if init.scheme == "paper" and cell.name in PAPER_INITS:
        params = paper_initialisation(cell, n, d, rng, t_max=init.t_max)
    else:
        counts = _bias_counts(cell)
        params = {
            par.name: np.ascontiguousarray(
                _draw(par, n, d, init, rng, cell, counts.get(par.name, 1), proj),
                dtype=np.float64,
            )
            for par in cell.parameters
        }
    if init.spectral_radius is not None:
        rec = recurrent_vectors(cell)
        for par in cell.parameters:
            if (par.kind == "weight" and par.shape == ("n", "n")) or par.name in rec:
                params[par.name] = _rescale(par.name, params[par.name], init.spectral_radius)
    _gate_options(params, cell, n, init, rng)
    return params


def make_inputs(
    kind: str,
    steps: int | None,
    batch: int | None,
    d: int | None,
    rng: np.random.Generator | None,
    *,
    scale: float = 1.0,
    value: float = 0.0,
    path: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """An input array of shape ``(T, B, d)``, float64.

    Args:
        kind: ``"gaussian"`` (entries ``N(0, scale^2)``), ``"zeros"``, ``"constant"`` (every
            entry ``value``) or ``"file"`` (a ``.npy`` array at ``path``, loaded without pickle).
        steps: ``T``; for ``"file"``, None accepts the file's length.
        batch: ``B``; for ``"file"``, None accepts the file's batch.
        d: input size; for ``"file"``, None accepts the file's.
        rng: the source of randomness (only ``"gaussian"`` draws from it).
        scale: standard deviation for ``"gaussian"``.
        value: the constant for ``"constant"``.
        path: the ``.npy`` file for ``"file"``.

    Raises:
        InputsError: unknown kind, bad sizes, or a file that is unreadable, not a finite real
            array of shape ``(T, B, d)``, or of other sizes than asked for.
    """
    if kind not in INPUT_KINDS:
        raise InputsError(f"unknown input kind {kind!r}; choose one of {INPUT_KINDS}")
    if kind == "file":
        return _load_inputs(path, steps, batch, d)
    for name, v in (("steps", steps), ("batch", batch), ("d", d)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputsError(f"inputs {name} must be a positive integer, got {v!r}")
    shape = (int(steps), int(batch), int(d))  # type: ignore[arg-type]
    if kind == "gaussian":
        if rng is None:
            raise InputsError("gaussian inputs need an rng (numpy.random.default_rng(seed))")
        if not (math.isfinite(scale) and scale >= 0):
            raise InputsError(f"inputs scale must be a finite number >= 0, got {scale!r}")
        return rng.standard_normal(shape) * float(scale)
    if kind == "zeros":
        return np.zeros(shape)
    if not math.isfinite(value):
        raise InputsError(f"constant inputs need a finite value, got {value!r}")
    return np.full(shape, float(value))


def _load_inputs(
    path: str | os.PathLike[str] | None, steps: int | None, batch: int | None, d: int | None
) -> np.ndarray:
    if path is None:
        raise InputsError("file inputs need path=<file.npy>")
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputsError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as exc:
        raise InputsError(f"{path}: not a readable .npy array without pickles ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise InputsError(f"{path}: expected one .npy array, got an archive; save with np.save")
    if arr.dtype.kind not in "fiub":
        raise InputsError(f"{path}: inputs must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise InputsError(f"{path}: inputs must have shape (T, B, d), got {arr.shape}")
    for axis, (name, want) in enumerate((("T", steps), ("B", batch), ("d", d))):
        if want is not None and arr.shape[axis] != want:
            raise InputsError(
                f"{path}: inputs have {name} = {arr.shape[axis]}, expected {want} "
                f"(shape {arr.shape})"
            )
    if 0 in arr.shape:
        raise InputsError(f"{path}: inputs are empty, shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise InputsError(f"{path}: inputs contain NaN or inf")
    return out
