"""Make the PyTorch reference for the cells of 2018-2026 (tests/data/modern_cells/).

Development-time only: torch is not a gradflow dependency, and nothing here imports gradflow.
Every cell is written from its paper's equations, in float64 (docs/cells-2018-2026.md has the
equations, the parameter layouts and the notation), and where the authors' reference code could
be read it is re-implemented in that code's own form (its tensor names, gate chunks, row-vector
products, stabilisers, scans) and the two forms are asserted to agree before anything is saved::

    python tests/reference/make_modern_reference.py            # writes tests/data/modern_cells/
    python tests/reference/make_modern_reference.py --check    # recompute, compare, write nothing

For each cell, with fixed small sizes (n = 3..5 units, d = 2..3 inputs, T = 6 steps, B = 2
sequences), seeded parameters and inputs, and the zero initial state, it stores:

* ``<cell>.safetensors``: the parameters in the PyTorch-style names of the doc's layout table.
* ``<cell>_inputs.npy``: the inputs, ``(T, B, d)`` float64 (the ``analyze`` contract's layout).
* ``<cell>_reference.safetensors``: ``states (T+1, B, m)`` (``s_0 = 0`` first),
  ``step_jacobians (T, B, m, m)`` with ``[t-1, b] = ds_t/ds_{t-1}`` and
  ``input_jacobians (T, B, m, d)`` with ``[t-1, b] = ds_t/dx_t``, each from
  ``torch.autograd.functional.jacobian`` of one step at the rolled-out state.
* ``<cell>.json``: sizes, hyperparameters, the state layout, and for every lag ``k = 0..T`` and
  sequence ``b`` the log10 spectral and Frobenius norms of ``ds_T/ds_{T-k}`` (the Jacobian of
  the ``k``-step map, by autograd, not a product of the stored steps) and the spectral norm of
  its block on the first state vector (``log10_spectral_norm_hidden``); ``input_only`` says
  whether ``ds_t/ds_{t-1}`` was found independent of the state (checked at a second, random
  state); ``checked_against`` names the reference code the cell was compared with.

References:
    See docs/cells-2018-2026.md (one section per cell, with the papers and code repositories).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "modern_cells"
T, B = 6, 2
CHECK_TOL = 1e-12  # paper form vs code form, max abs difference (float64, 6 steps)

Params = dict[str, Any]  # torch tensors by PyTorch-style name
Step = Callable[[Params, Any, Any], Any]  # (params, s_{t-1}, x_t) -> s_t


@dataclass
class Spec:
    """One reference cell: sizes, parameters, and its step written from the paper."""

    name: str
    n: int
    d: int
    state: tuple[str, ...]  # state vectors stacked in s_t, each of size n unless state_sizes
    make_params: Callable[[np.random.Generator], dict[str, np.ndarray]]
    step: Step
    hyper: dict[str, float] = field(default_factory=dict)
    state_sizes: tuple[int, ...] | None = None
    checks: tuple[Callable[[Params, Any, Any], str], ...] = ()
    input_scale: float = 1.0
    seed: int = 0

    @property
    def m(self) -> int:
        return sum(self.state_sizes) if self.state_sizes else self.n * len(self.state)


# -- helpers --------------------------------------------------------------------------------
def _torch() -> Any:
    import torch

    return torch


def _normal(rng: np.random.Generator, scale: float, *shape: int) -> np.ndarray:
    return rng.normal(0.0, scale, size=shape)


_FREEZE = [False]  # True while the additive part A_t is taken (docs §2)


def _pre(a: Any) -> Any:
    """Mark a pre-activation (docs/cells-2018-2026.md §2): held fixed for the additive part."""
    return a.detach() if _FREEZE[0] else a


def _chunks(v: Any, k: int) -> list[Any]:
    size = v.shape[0] // k
    return [v[i * size : (i + 1) * size] for i in range(k)]


def _rollout(spec: Spec, p: Params, x: Any) -> Any:
    """States ``(T+1, B, m)`` from ``s_0 = 0`` with the paper-form step."""
    torch = _torch()
    states = torch.zeros(T + 1, B, spec.m)
    for b in range(B):
        s = torch.zeros(spec.m)
        for t in range(T):
            s = spec.step(p, s, x[t, b])
            states[t + 1, b] = s
    return states


def _close(a: Any, b: Any, what: str) -> str:
    err = float((a - b).abs().max())
    assert err <= CHECK_TOL, f"{what}: paper form and reference code differ by {err:.3g}"
    return f"{what} (max |diff| {err:.1e})"


# -- gru-chung ------------------------------------------------------------------------------
def _gru_chung_params(n: int, d: int) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "weight_ih": _normal(rng, 1.0 / math.sqrt(d), 3 * n, d),
            "weight_hh": _normal(rng, 1.2 / math.sqrt(n), 3 * n, n),
            "bias_ih": _normal(rng, 0.4, 3 * n),
            "bias_hh": _normal(rng, 0.4, 3 * n),
        }

    return make


def _gru_chung_step(n: int) -> Step:
    """Chung et al. (2014), Section 3.2: reset before the matmul, z writes the new state."""
    torch = _torch()

    def step(p: Params, h: Any, x: Any) -> Any:
        wir, wiz, win = _chunks(p["weight_ih"], 3)
        whr, whz, whn = _chunks(p["weight_hh"], 3)
        bir, biz, bin_ = _chunks(p["bias_ih"], 3)
        bhr, bhz, bhn = _chunks(p["bias_hh"], 3)
        r = torch.sigmoid(_pre(wir @ x + whr @ h + bir + bhr))
        z = torch.sigmoid(_pre(wiz @ x + whz @ h + biz + bhz))
        h_tilde = torch.tanh(_pre(win @ x + whn @ (r * h) + bin_ + bhn))
        return (1 - z) * h + z * h_tilde

    return step


# -- janet ----------------------------------------------------------------------------------
def _janet_params(n: int, d: int) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "weight_ih": _normal(rng, 1.0 / math.sqrt(d), 2 * n, d),
            "weight_hh": _normal(rng, 1.2 / math.sqrt(n), 2 * n, n),
            "bias": np.concatenate([_normal(rng, 0.3, n), np.log(rng.uniform(1.0, 5.0, n))]),
        }

    return make


def _janet_step(beta: float) -> Step:
    """van der Westhuizen & Lasenby (2018), JANET: h_t = c_t, input gate 1 - sigma(s - beta).

    Row blocks in the authors' gate order: candidate ``c`` (their ``j``), then forget ``f``.
    """
    torch = _torch()

    def step(p: Params, h: Any, x: Any) -> Any:
        wc, wf = _chunks(p["weight_ih"], 2)
        uc, uf = _chunks(p["weight_hh"], 2)
        bc, bf = _chunks(p["bias"], 2)
        s = _pre(uf @ h + wf @ x + bf)
        c_tilde = torch.tanh(_pre(uc @ h + wc @ x + bc))
        return torch.sigmoid(s) * h + (1 - torch.sigmoid(s - beta)) * c_tilde

    return step


def _janet_check(n: int) -> Callable[[Params, Any, Any], str]:
    def check(p: Params, x: Any, states: Any) -> str:
        # JosvanderWesthuizen/janet aux_code/rnn_cells.py CustomLSTMCell, forget_only=True:
        # concat = [x, h] @ [W_xh; W_hh] + bias, split (j, f),
        # new_c = c sigmoid(f) + sigmoid(1 - f) tanh(j), new_h = new_c  (beta = 1 built in)
        torch = _torch()
        weights = torch.cat([p["weight_ih"].T, p["weight_hh"].T], 0)  # W_xh (d, 2n), W_hh
        out, c = torch.zeros_like(states), torch.zeros(B, n)
        for t in range(T):
            concat = torch.cat([x[t], c], 1) @ weights + p["bias"]
            j, f = concat.split(n, 1)
            c = c * torch.sigmoid(f) + torch.sigmoid(1 - f) * torch.tanh(j)
            out[t + 1] = c
        return _close(out, states, "CustomLSTMCell(forget_only) of JosvanderWesthuizen/janet")

    return check


# -- ur-lstm --------------------------------------------------------------------------------
def _ur_lstm_params(n: int, d: int) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        u = rng.uniform(1.0 / n, 1.0 - 1.0 / n, n)
        return {
            "igates.weight": _normal(rng, 1.0 / math.sqrt(d), 4 * n, d),
            "igates.bias": _normal(rng, 0.2, 4 * n),
            "hgates.weight": _normal(rng, 1.2 / math.sqrt(n), 4 * n, n),
            "hgates.bias": _normal(rng, 0.2, 4 * n),
            "forget_bias": -np.log(1.0 / u - 1.0),  # uniform gate initialisation
        }

    return make


def _ur_lstm_step(n: int) -> Step:
    """Gu et al. (2020), refine gate and the UR-LSTM of their pseudo-code; state [h; c]."""
    torch = _torch()

    def step(p: Params, s: Any, x: Any) -> Any:
        h, c = s[:n], s[n:]
        a = p["igates.weight"] @ x + p["igates.bias"] + p["hgates.weight"] @ h + p["hgates.bias"]
        a_f, a_r, a_u, a_o = _chunks(_pre(a), 4)
        f = torch.sigmoid(a_f + p["forget_bias"])
        r = torch.sigmoid(a_r - p["forget_bias"])
        g = r * (1 - (1 - f) ** 2) + (1 - r) * f**2  # the refined ("effective") forget gate
        c_new = g * c + (1 - g) * torch.tanh(a_u)
        h_new = torch.sigmoid(a_o) * torch.tanh(c_new)
        return torch.cat([h_new, c_new])

    return step


def _ur_lstm_check(n: int) -> Callable[[Params, Any, Any], str]:
    def check(p: Params, x: Any, states: Any) -> str:
        # the paper's pseudo-code form, as in the public URLSTMCell re-implementations
        # (igates/hgates/forget_bias, chunks f, r, cell, out; g = 2 r f + (1 - 2 r) f^2).
        torch = _torch()
        out = torch.zeros_like(states)
        hx, cx = torch.zeros(B, n), torch.zeros(B, n)
        for t in range(T):
            gates = (x[t] @ p["igates.weight"].T + p["igates.bias"]) + (
                hx @ p["hgates.weight"].T + p["hgates.bias"]
            )
            forget_gate, refine_gate, cell_gate, out_gate = gates.chunk(4, 1)
            forget_gate = torch.sigmoid(forget_gate + p["forget_bias"])
            refine_gate = torch.sigmoid(refine_gate - p["forget_bias"])
            effective = 2 * refine_gate * forget_gate + (1 - 2 * refine_gate) * forget_gate**2
            cx = effective * cx + (1 - effective) * torch.tanh(cell_gate)
            hx = torch.sigmoid(out_gate) * torch.tanh(cx)
            out[t + 1] = torch.cat([hx, cx], 1)
        return _close(out, states, "UR-LSTM pseudo-code of Gu et al. (2020)")

    return check


# -- mingru / minlstm -----------------------------------------------------------------------
def _linear_params(
    names: tuple[str, ...], n: int, d: int, bias_scale: float = 0.5
) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for nm in names:
            out[f"{nm}.weight"] = _normal(rng, 1.0 / math.sqrt(d), n, d)
            out[f"{nm}.bias"] = _normal(rng, bias_scale, n)
        return out

    return make


def _mingru_step(p: Params, h: Any, x: Any) -> Any:
    """Feng et al. (2024) Algorithm 1 (sequential mode): no activation on h~."""
    torch = _torch()
    z = torch.sigmoid(p["linear_z.weight"] @ x + p["linear_z.bias"])
    h_tilde = p["linear_h.weight"] @ x + p["linear_h.bias"]
    return (1 - z) * h + z * h_tilde


def _minlstm_step(p: Params, h: Any, x: Any) -> Any:
    """Feng et al. (2024) Algorithm 3 (sequential mode) with normalised gates f', i'."""
    torch = _torch()
    f = torch.sigmoid(p["linear_f.weight"] @ x + p["linear_f.bias"])
    i = torch.sigmoid(p["linear_i.weight"] @ x + p["linear_i.bias"])
    h_tilde = p["linear_h.weight"] @ x + p["linear_h.bias"]
    f_n, i_n = f / (f + i), i / (f + i)
    return f_n * h + i_n * h_tilde


def _parallel_check(kind: str) -> Callable[[Params, Any, Any], str]:
    """The papers' parallel mode: h_t = sum_k (prod_{j=k+1}^t a_j) b_k from h_0 = 0."""

    def check(p: Params, x: Any, states: Any) -> str:
        torch = _torch()
        if kind == "mingru":
            z = torch.sigmoid(x @ p["linear_z.weight"].T + p["linear_z.bias"])
            a, bvec = 1 - z, z * (x @ p["linear_h.weight"].T + p["linear_h.bias"])
        else:
            f = torch.sigmoid(x @ p["linear_f.weight"].T + p["linear_f.bias"])
            i = torch.sigmoid(x @ p["linear_i.weight"].T + p["linear_i.bias"])
            a = f / (f + i)
            bvec = i / (f + i) * (x @ p["linear_h.weight"].T + p["linear_h.bias"])
        log_a_star = torch.cumsum(torch.log(a), dim=0)  # (T, B, n)
        h = torch.exp(log_a_star) * torch.cumsum(bvec * torch.exp(-log_a_star), dim=0)
        return _close(h, states[1:], f"parallel (scan) mode of Feng et al. (2024) for {kind}")

    return check


# -- rglru ----------------------------------------------------------------------------------
def _rglru_params(n: int, heads: int) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    bw = n // heads

    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        unif = rng.uniform(0.8**2, 0.99**2, n)  # recurrentgemma's ring init, wider ring
        a_real = 0.5 * np.log(unif)
        return {
            "a_param": np.log(np.exp(-a_real) - 1.0),
            "input_gate.w": _normal(rng, 1.0 / math.sqrt(bw), heads, bw, bw),
            "input_gate.b": _normal(rng, 0.5, heads, bw),
            "a_gate.w": _normal(rng, 1.0 / math.sqrt(bw), heads, bw, bw),
            "a_gate.b": _normal(rng, 0.5, heads, bw),
        }

    return make


def _block_diagonal(w: Any) -> Any:
    """Column-convention matrix of a BlockDiagonalLinear weight ``(H, i, j)`` (y = x @ w[h])."""
    torch = _torch()
    return torch.block_diag(*[w[k].T for k in range(w.shape[0])])


def _rglru_step(c: float) -> Step:
    """De et al. (2024) eq. (1)-(4): a = sigma(Lambda) with Lambda = -a_param, a_t = a^(c r_t)."""
    torch = _torch()

    def step(p: Params, h: Any, x: Any) -> Any:
        r = torch.sigmoid(_block_diagonal(p["a_gate.w"]) @ x + p["a_gate.b"].reshape(-1))
        i = torch.sigmoid(_block_diagonal(p["input_gate.w"]) @ x + p["input_gate.b"].reshape(-1))
        a = torch.sigmoid(-p["a_param"])
        a_t = a ** (c * r)
        return a_t * h + torch.sqrt(1 - a_t**2) * (i * x)

    return step


def _rglru_check(heads: int, c: float) -> Callable[[Params, Any, Any], str]:
    def check(p: Params, x: Any, states: Any) -> str:
        # recurrentgemma/torch/layers.py RGLRU.__call__ and BlockDiagonalLinear.forward:
        # log_a = -8 gate_a softplus(a_param), multiplier sqrt(1 - exp(2 log_a)), scan h = a h + x
        # (without the segment_pos == 0 reset: here h_0 = 0 precedes the first token).
        torch = _torch()

        def bdl(w: Any, bias: Any, v: Any) -> Any:
            vv = v.reshape(*v.shape[:-1], heads, -1)
            return (torch.einsum("...hi,hij->...hj", vv, w) + bias).reshape(v.shape)

        gate_x = torch.sigmoid(bdl(p["input_gate.w"], p["input_gate.b"], x))
        gate_a = torch.sigmoid(bdl(p["a_gate.w"], p["a_gate.b"], x))
        log_a = -c * gate_a * torch.nn.functional.softplus(p["a_param"])
        a = torch.exp(log_a)
        normalized_x = x * gate_x * torch.sqrt(1 - torch.exp(2 * log_a))
        out, h = torch.zeros_like(states), torch.zeros(B, x.shape[-1])
        for t in range(T):
            h = a[t] * h + normalized_x[t]
            out[t + 1] = h
        return _close(out, states, "recurrentgemma torch RGLRU (google-deepmind/recurrentgemma)")

    return check


# -- mamba-s6 -------------------------------------------------------------------------------
def _mamba_params(
    n: int, d_state: int, dt_rank: int
) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        s4d_real = np.tile(np.arange(1, d_state + 1, dtype=float), (n, 1))
        dt = np.exp(rng.uniform(math.log(0.05), math.log(0.5), n))
        return {
            "A_log": np.log(s4d_real) + _normal(rng, 0.1, n, d_state),
            "D": np.ones(n) + _normal(rng, 0.1, n),
            "x_proj.weight": _normal(rng, 1.0 / math.sqrt(n), dt_rank + 2 * d_state, n),
            "dt_proj.weight": rng.uniform(-(dt_rank**-0.5), dt_rank**-0.5, (n, dt_rank)),
            "dt_proj.bias": dt + np.log(-np.expm1(-dt)),  # inverse softplus, as in Mamba
        }

    return make


def _mamba_step(n: int, d_state: int, dt_rank: int) -> Step:
    """Gu & Dao (2023) Algorithm 2 / eq. (2a), (4): x_t = exp(Delta A) x + Delta B u (per channel).

    The state X (n channels x d_state) is stacked column by column: s = [X[:, 0]; X[:, 1]; ...],
    so state vector ``h_j`` (size n) is column j.
    """
    torch = _torch()

    def step(p: Params, s: Any, u: Any) -> Any:
        X = s.reshape(d_state, n).T
        proj = p["x_proj.weight"] @ u
        delta = torch.nn.functional.softplus(
            p["dt_proj.weight"] @ proj[:dt_rank] + p["dt_proj.bias"]
        )
        B_t = proj[dt_rank : dt_rank + d_state]
        A = -torch.exp(p["A_log"])
        X_new = torch.exp(delta[:, None] * A) * X + (delta * u)[:, None] * B_t[None, :]
        return X_new.T.reshape(-1)

    return step


def _mamba_check(n: int, d_state: int, dt_rank: int) -> Callable[[Params, Any, Any], str]:
    def check(p: Params, x: Any, states: Any) -> str:
        # mamba_ssm/ops/selective_scan_interface.py selective_scan_ref (layout u: (B, D, L))
        # fed as in Mamba.forward's slow path: delta = dt_proj.weight @ x_dbl[:dt_rank],
        # delta_bias = dt_proj.bias, delta_softplus=True, A = -exp(A_log).
        torch = _torch()
        u = x.permute(1, 2, 0)  # (B, D, L)
        x_dbl = torch.einsum("rd,bdl->brl", p["x_proj.weight"], u)
        delta = torch.einsum("dr,brl->bdl", p["dt_proj.weight"], x_dbl[:, :dt_rank])
        Bm = x_dbl[:, dt_rank : dt_rank + d_state]
        delta = torch.nn.functional.softplus(delta + p["dt_proj.bias"][..., None])
        A = -torch.exp(p["A_log"])
        deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
        deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, Bm, u)
        state = torch.zeros(B, n, d_state)
        out = torch.zeros_like(states)
        for i in range(T):
            state = deltaA[:, :, i] * state + deltaB_u[:, :, i]
            out[i + 1] = state.transpose(1, 2).reshape(B, -1)
        return _close(out, states, "selective_scan_ref (state-spaces/mamba)")

    return check


# -- cornn ----------------------------------------------------------------------------------
def _cornn_params(n: int, d: int) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        bound = 1.0 / math.sqrt(d + 2 * n)  # nn.Linear(d + 2n, n) default range, widened x2
        return {
            "i2h.weight": rng.uniform(-2 * bound, 2 * bound, (n, d + 2 * n)),
            "i2h.bias": rng.uniform(-2 * bound, 2 * bound, n),
        }

    return make


def _cornn_step(n: int, d: int, dt: float, gamma: float, eps: float, imex: bool) -> Step:
    """Rusch & Mishra (2021) eq. (3); state [y; z]; i2h.weight columns are [V | W_cal | W]."""
    torch = _torch()

    def step(p: Params, s: Any, x: Any) -> Any:
        y, z = s[:n], s[n:]
        w = p["i2h.weight"]
        V, W_cal, W = w[:, :d], w[:, d : d + n], w[:, d + n :]
        force = torch.tanh(_pre(W @ y + W_cal @ z + V @ x + p["i2h.bias"]))
        if imex:  # damping taken at the new z (the paper's IMEX scheme)
            z_new = (z + dt * (force - gamma * y)) / (1 + dt * eps)
        else:  # the authors' code: damping at the old z
            z_new = z + dt * (force - gamma * y - eps * z)
        y_new = y + dt * z_new
        return torch.cat([y_new, z_new])

    return step


def _cornn_check(n: int, dt: float, gamma: float, eps: float) -> Callable[[Params, Any, Any], str]:
    def check(p: Params, x: Any, states: Any) -> str:
        # tk-rusch/coRNN coRNNCell.forward: i2h(cat(x, hz, hy)), hz first, then hy
        torch = _torch()
        out = torch.zeros_like(states)
        hy, hz = torch.zeros(B, n), torch.zeros(B, n)
        for t in range(T):
            pre = torch.cat((x[t], hz, hy), 1) @ p["i2h.weight"].T + p["i2h.bias"]
            hz = hz + dt * (torch.tanh(pre) - gamma * hy - eps * hz)
            hy = hy + dt * hz
            out[t + 1] = torch.cat([hy, hz], 1)
        return _close(out, states, "coRNNCell (tk-rusch/coRNN)")

    return check


# -- lem ------------------------------------------------------------------------------------
def _lem_params(n: int, d: int) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        std = 1.0 / math.sqrt(n)  # LEMCell.reset_parameters: every tensor U(-std, std), x1.5
        shapes = {
            "inp2hid.weight": (4 * n, d),
            "inp2hid.bias": (4 * n,),
            "hid2hid.weight": (3 * n, n),
            "hid2hid.bias": (3 * n,),
            "transform_z.weight": (n, n),
            "transform_z.bias": (n,),
        }
        return {k: rng.uniform(-1.5 * std, 1.5 * std, s) for k, s in shapes.items()}

    return make


def _lem_step(n: int, dt: float) -> Step:
    """Rusch et al. (2022), the LEM system in the paper's notation; state [y; z]."""
    torch = _torch()

    def step(p: Params, s: Any, u: Any) -> Any:
        y, z = s[:n], s[n:]
        V_2, V_1, V_y, V_z = _chunks(p["inp2hid.weight"], 4)  # code chunks dt1, dt2, i_z, i_y
        c_2, c_1, c_y, c_z = _chunks(p["inp2hid.bias"], 4)
        W_2, W_1, W_z = _chunks(p["hid2hid.weight"], 3)  # code chunks dt1, dt2, h_y
        e_2, e_1, e_z = _chunks(p["hid2hid.bias"], 3)
        W_y, e_y = p["transform_z.weight"], p["transform_z.bias"]
        dt_n = dt * torch.sigmoid(_pre(W_1 @ y + V_1 @ u + e_1 + c_1))
        dt_bar = dt * torch.sigmoid(_pre(W_2 @ y + V_2 @ u + e_2 + c_2))
        z_new = (1 - dt_n) * z + dt_n * torch.tanh(_pre(W_z @ y + V_z @ u + e_z + c_z))
        y_new = (1 - dt_bar) * y + dt_bar * torch.tanh(_pre(W_y @ z_new + V_y @ u + e_y + c_y))
        return torch.cat([y_new, z_new])

    return step


def _lem_check(n: int, dt: float) -> Callable[[Params, Any, Any], str]:
    def check(p: Params, x: Any, states: Any) -> str:
        # tk-rusch/LEM LEMCell.forward (chunk order and naming as there)
        torch = _torch()
        out = torch.zeros_like(states)
        y, z = torch.zeros(B, n), torch.zeros(B, n)
        for t in range(T):
            ti = x[t] @ p["inp2hid.weight"].T + p["inp2hid.bias"]
            th = y @ p["hid2hid.weight"].T + p["hid2hid.bias"]
            i_dt1, i_dt2, i_z, i_y = ti.chunk(4, 1)
            h_dt1, h_dt2, h_y = th.chunk(3, 1)
            ms_dt_bar = dt * torch.sigmoid(i_dt1 + h_dt1)
            ms_dt = dt * torch.sigmoid(i_dt2 + h_dt2)
            z = (1.0 - ms_dt) * z + ms_dt * torch.tanh(i_y + h_y)
            tz = z @ p["transform_z.weight"].T + p["transform_z.bias"]
            y = (1.0 - ms_dt_bar) * y + ms_dt_bar * torch.tanh(tz + i_z)
            out[t + 1] = torch.cat([y, z], 1)
        return _close(out, states, "LEMCell (tk-rusch/LEM)")

    return check


# -- antisymmetric-rnn ----------------------------------------------------------------------
def _asym_params(
    n: int, d: int, gated: bool
) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    g = 2 if gated else 1

    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "weight_hh": _normal(rng, 1.5 / math.sqrt(n), n, n),
            "weight_ih": _normal(rng, 1.0 / math.sqrt(d), g * n, d),
            "bias": _normal(rng, 0.3, g * n),
        }

    return make


def _asym_step(n: int, eps: float, gamma: float, gated: bool) -> Step:
    """Chang et al. (2019), Section 4 (ungated and gated): h + eps [z *] tanh(...)."""
    torch = _torch()

    def step(p: Params, h: Any, x: Any) -> Any:
        W = p["weight_hh"]
        M = W - W.T - gamma * torch.eye(n)
        V = _chunks(p["weight_ih"], 2 if gated else 1)
        b = _chunks(p["bias"], 2 if gated else 1)
        update = torch.tanh(_pre(M @ h + V[0] @ x + b[0]))
        if gated:
            update = torch.sigmoid(_pre(M @ h + V[1] @ x + b[1])) * update
        return h + eps * update

    return step


def _asym_check(n: int, eps: float, gamma: float) -> Callable[[Params, Any, Any], str]:
    def check(p: Params, x: Any, states: Any) -> str:
        # erichson/LipschitzRNN models.py 'asymRNN' (row vectors: h @ (C - C^T - gamma I)),
        # which is Chang et al.'s ungated cell with C = weight_hh^T and E = (weight_ih, bias).
        torch = _torch()
        C = p["weight_hh"].T
        W = C - C.transpose(1, 0) - gamma * torch.eye(n)
        out, h = torch.zeros_like(states), torch.zeros(B, n)
        for t in range(T):
            z = x[t] @ p["weight_ih"].T + p["bias"]
            h = h + eps * torch.tanh(torch.matmul(h, W) + z)
            out[t + 1] = h
        return _close(out, states, "asymRNN of erichson/LipschitzRNN models.py")

    return check


# -- lipschitz-rnn --------------------------------------------------------------------------
def _lip_params(n: int, d: int) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "B": _normal(rng, 1.0 / math.sqrt(n), n, n),
            "C": _normal(rng, 1.0 / math.sqrt(n), n, n),
            "E.weight": _normal(rng, math.sqrt(2.0 / (n + d)), n, d),
            "E.bias": _normal(rng, 0.2, n),
        }

    return make


def _lip_matrix(M: Any, beta: float, gamma: float) -> Any:
    torch = _torch()
    return (1 - beta) * (M + M.T) + beta * (M - M.T) - gamma * torch.eye(M.shape[0])


def _lip_step(beta: float, gamma: float, eps: float) -> Step:
    """Erichson et al. (2021), Euler step: h + eps A h + eps tanh(W h + U x + b).

    Column vectors: M_A = B^T and M_W = C^T, since the authors' code multiplies row vectors.
    """
    torch = _torch()

    def step(p: Params, h: Any, x: Any) -> Any:
        A = _lip_matrix(p["B"].T, beta, gamma)
        W = _lip_matrix(p["C"].T, beta, gamma)
        return h + eps * (A @ h) + eps * torch.tanh(_pre(W @ h + p["E.weight"] @ x + p["E.bias"]))

    return step


def _lip_check(n: int, beta: float, gamma: float, eps: float) -> Callable[[Params, Any, Any], str]:
    def check(p: Params, x: Any, states: Any) -> str:
        # erichson/LipschitzRNN models.py rnn_models.forward, model 'LipschitzRNN', alpha = 1
        torch = _torch()
        I = torch.eye(n)  # noqa: E741 - the code's name
        Bm, Cm = p["B"], p["C"]
        A = beta * (Bm - Bm.transpose(1, 0)) + (1 - beta) * (Bm + Bm.transpose(1, 0)) - gamma * I
        W = beta * (Cm - Cm.transpose(1, 0)) + (1 - beta) * (Cm + Cm.transpose(1, 0)) - gamma * I
        out, h = torch.zeros_like(states), torch.zeros(B, n)
        for t in range(T):
            z = x[t] @ p["E.weight"].T + p["E.bias"]
            h = h + eps * torch.matmul(h, A) + eps * torch.tanh(torch.matmul(h, W) + z)
            out[t + 1] = h
        return _close(out, states, "LipschitzRNN of erichson/LipschitzRNN models.py")

    return check


# -- slstm ----------------------------------------------------------------------------------
def _slstm_params(
    n: int, d: int, heads: int
) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    hd = n // heads

    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        bias = np.concatenate(
            [
                _normal(rng, 0.5, n),  # i
                np.linspace(1.0, 3.0, n) + _normal(rng, 0.2, n),  # f
                _normal(rng, 0.3, n),  # z
                _normal(rng, 0.3, n),  # o
            ]
        )
        return {
            "weight_ih": _normal(rng, 1.0 / math.sqrt(d), 4 * n, d),
            "recurrent_kernel": _normal(rng, 1.0 / math.sqrt(hd), heads, hd, 4 * hd),
            "bias": bias,
        }

    return make


def _slstm_recurrent(R: Any) -> Any:
    """Column-convention ``(4n, n)`` matrix of xLSTM's head-wise kernel ``R (H, hd, 4 hd)``.

    xLSTM computes, per head k, ``y_k @ R[k]`` and reads the result as ``(4, hd)``: gate g, unit
    j of head k gets ``sum_i y[k hd + i] R[k, i, g hd + j]``. Row ``g n + k hd + j``.
    """
    torch = _torch()
    heads, hd, _ = R.shape
    n = heads * hd
    out = torch.zeros(4 * n, n)
    for g in range(4):
        for k in range(heads):
            rows = slice(g * n + k * hd, g * n + (k + 1) * hd)
            out[rows, k * hd : (k + 1) * hd] = R[k, :, g * hd : (g + 1) * hd].T
    return out


def _slstm_step(n: int) -> Step:
    """Beck et al. (2024), sLSTM without the stabiliser; state [h; c; n] (c, n unscaled)."""
    torch = _torch()

    def step(p: Params, s: Any, x: Any) -> Any:
        h, c, nrm = s[:n], s[n : 2 * n], s[2 * n :]
        raw = p["weight_ih"] @ x + _slstm_recurrent(p["recurrent_kernel"]) @ h + p["bias"]
        i_t, f_t, z_t, o_t = _chunks(_pre(raw), 4)
        i, f = torch.exp(i_t), torch.sigmoid(f_t)
        z, o = torch.tanh(z_t), torch.sigmoid(o_t)
        c_new = f * c + i * z
        n_new = f * nrm + i
        return torch.cat([o * c_new / n_new, c_new, n_new])

    return step


def _slstm_stabilised_step(n: int) -> Step:
    """xLSTM's vanilla ``slstm_forward_pointwise`` with its Ry; state [h; c; n; m] (stabilised).

    NX-AI/xlstm xlstm/blocks/slstm/src/vanilla/slstm.py: m_t = max(i~, log sigma(f~) + m),
    i' = exp(i~ - m_t), f' = exp(log sigma(f~) + m - m_t); on the first step (n == 0 for the
    whole batch) m_t = i~.
    """
    torch = _torch()

    def step(p: Params, s: Any, x: Any) -> Any:
        y, c, nrm, m = s[:n], s[n : 2 * n], s[2 * n : 3 * n], s[3 * n :]
        R = p["recurrent_kernel"]
        heads, hd = R.shape[0], R.shape[1]
        Ry = (
            y.reshape(1, heads, 1, hd)
            .matmul(R.unsqueeze(0))
            .reshape(1, heads, 4, hd)
            .transpose(1, 2)
            .reshape(-1)
        )
        raw = _pre(p["weight_ih"] @ x + Ry + p["bias"])
        iraw, fraw, zraw, oraw = raw.view(4, -1).unbind(0)
        logfplusm = m + torch.nn.functional.logsigmoid(fraw)
        if torch.all(nrm == 0.0):
            mnew = iraw
        else:
            mnew = torch.max(iraw, logfplusm)
        ogate = torch.sigmoid(oraw)
        igate = torch.exp(iraw - mnew)
        fgate = torch.exp(logfplusm - mnew)
        cnew = fgate * c + igate * torch.tanh(zraw)
        nnew = fgate * nrm + igate
        return torch.cat([ogate * cnew / nnew, cnew, nnew, mnew])

    return step


def _slstm_check(n: int) -> Callable[[Params, Any, Any], str]:
    stab = _slstm_stabilised_step(n)

    def check(p: Params, x: Any, states: Any) -> str:
        torch = _torch()
        out = torch.zeros(T + 1, B, 3 * n)
        for b in range(B):
            s = torch.zeros(4 * n)
            for t in range(T):
                s = stab(p, s, x[t, b])
                scale = torch.exp(s[3 * n :])  # c_bar = c e^m, n_bar = n e^m
                out[t + 1, b] = torch.cat([s[:n], s[n : 2 * n] * scale, s[2 * n : 3 * n] * scale])
        return _close(out, states, "slstm_forward_pointwise (NX-AI/xlstm, vanilla backend)")

    return check


# -- indrnn (existing catalogue cell; its label changes under docs §2) ---------------------
def _indrnn_params(
    n: int, d: int, t_max: int
) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {
            "weight_ih": _normal(rng, 0.5 / math.sqrt(d), n, d),
            "weight_hh": rng.uniform(0.0, 2.0 ** (1.0 / t_max), n),  # Li et al. (2018)
            "bias": np.full(n, 0.6),  # keeps every unit on: no exact zero in this fixture
        }

    return make


def _indrnn_torch_params(n: int, d: int) -> Callable[[np.random.Generator], dict[str, np.ndarray]]:
    def make(rng: np.random.Generator) -> dict[str, np.ndarray]:
        k = 1.0 / math.sqrt(n)  # every tensor U(-1/sqrt(n), 1/sqrt(n)), as nn.RNN's default
        return {
            "weight_ih": rng.uniform(-k, k, (n, d)),
            "weight_hh": rng.uniform(-k, k, n),
            "bias": rng.uniform(-k, k, n),
        }

    return make


def _indrnn_step(p: Params, h: Any, x: Any) -> Any:
    """Li et al. (2018): h_t = relu(W x_t + u * h_{t-1} + b)."""
    torch = _torch()
    return torch.relu(_pre(p["weight_ih"] @ x + p["weight_hh"] * h + p["bias"]))


# -- the cells ------------------------------------------------------------------------------
def specs() -> list[Spec]:
    """Every reference cell, in the order of docs/cells-2018-2026.md."""
    out = [
        Spec("gru-chung", 4, 3, ("h",), _gru_chung_params(4, 3), _gru_chung_step(4), seed=101),
        Spec(
            "janet",
            3,
            2,
            ("h",),
            _janet_params(3, 2),
            _janet_step(1.0),
            {"beta": 1.0},
            checks=(_janet_check(3),),
            seed=102,
        ),
        Spec(
            "ur-lstm",
            4,
            2,
            ("h", "c"),
            _ur_lstm_params(4, 2),
            _ur_lstm_step(4),
            checks=(_ur_lstm_check(4),),
            seed=103,
        ),
        Spec(
            "mingru",
            5,
            3,
            ("h",),
            _linear_params(("linear_z", "linear_h"), 5, 3),
            _mingru_step,
            checks=(_parallel_check("mingru"),),
            seed=104,
        ),
        Spec(
            "minlstm",
            4,
            3,
            ("h",),
            _linear_params(("linear_f", "linear_i", "linear_h"), 4, 3),
            _minlstm_step,
            checks=(_parallel_check("minlstm"),),
            seed=105,
        ),
        Spec(
            "rglru",
            4,
            4,
            ("h",),
            _rglru_params(4, 2),
            _rglru_step(8.0),
            {"c": 8.0, "heads": 2},
            checks=(_rglru_check(2, 8.0),),
            seed=106,
        ),
        Spec(
            "mamba-s6",
            3,
            3,
            ("h_0", "h_1"),
            _mamba_params(3, 2, 1),
            _mamba_step(3, 2, 1),
            {"d_state": 2, "dt_rank": 1},
            checks=(_mamba_check(3, 2, 1),),
            seed=107,
        ),
    ]
    cornn = {"dt": 0.4, "gamma": 2.7, "epsilon": 4.7}
    out += [
        Spec(
            "cornn",
            3,
            2,
            ("y", "z"),
            _cornn_params(3, 2),
            _cornn_step(3, 2, cornn["dt"], cornn["gamma"], cornn["epsilon"], imex=True),
            cornn,
            seed=108,
        ),
        Spec(
            "cornn-explicit",
            3,
            2,
            ("y", "z"),
            _cornn_params(3, 2),
            _cornn_step(3, 2, cornn["dt"], cornn["gamma"], cornn["epsilon"], imex=False),
            cornn,
            checks=(_cornn_check(3, cornn["dt"], cornn["gamma"], cornn["epsilon"]),),
            seed=108,
        ),
        Spec(
            "lem",
            3,
            2,
            ("y", "z"),
            _lem_params(3, 2),
            _lem_step(3, 0.5),
            {"dt": 0.5},
            checks=(_lem_check(3, 0.5),),
            seed=109,
        ),
    ]
    asym = {"epsilon": 0.3, "gamma": 0.05}
    lip = {"beta": 0.75, "gamma": 0.1, "epsilon": 0.3}
    out += [
        Spec(
            "antisymmetric-rnn",
            4,
            2,
            ("h",),
            _asym_params(4, 2, gated=False),
            _asym_step(4, asym["epsilon"], asym["gamma"], gated=False),
            asym,
            checks=(_asym_check(4, asym["epsilon"], asym["gamma"]),),
            seed=110,
        ),
        Spec(
            "antisymmetric-rnn-gated",
            4,
            2,
            ("h",),
            _asym_params(4, 2, gated=True),
            _asym_step(4, asym["epsilon"], asym["gamma"], gated=True),
            asym,
            seed=111,
        ),
        Spec(
            "lipschitz-rnn",
            4,
            3,
            ("h",),
            _lip_params(4, 3),
            _lip_step(lip["beta"], lip["gamma"], lip["epsilon"]),
            lip,
            checks=(_lip_check(4, lip["beta"], lip["gamma"], lip["epsilon"]),),
            seed=112,
        ),
        Spec(
            "slstm",
            4,
            3,
            ("h", "c", "n"),
            _slstm_params(4, 3, 2),
            _slstm_step(4),
            {"heads": 2},
            checks=(_slstm_check(4),),
            seed=113,
        ),
        Spec(
            "slstm-stabilised",
            4,
            3,
            ("h", "c", "n", "m"),
            _slstm_params(4, 3, 2),
            _slstm_stabilised_step(4),
            {"heads": 2},
            seed=113,
        ),
        Spec("indrnn", 4, 2, ("h",), _indrnn_params(4, 2, T), _indrnn_step, {"t_max": T}, seed=114),
        # the repro: PyTorch-style initialisation, units switch off, products hit 0
        Spec("indrnn-torch-init", 4, 2, ("h",), _indrnn_torch_params(4, 2), _indrnn_step, seed=115),
    ]
    return out


# -- the reference numbers ------------------------------------------------------------------
def _log10(value: float) -> float | None:
    """log10 of a norm; ``None`` (JSON ``null``) for an exact zero (all units off, issue item 5)."""
    return None if value == 0.0 else math.log10(value)


def _log10_norms(jac: Any, n_first: int) -> tuple[float | None, float | None, float | None]:
    torch = _torch()
    spec = torch.linalg.matrix_norm(jac, ord=2).item()
    fro = torch.linalg.matrix_norm(jac, ord="fro").item()
    hid = torch.linalg.matrix_norm(jac[:n_first, :n_first], ord=2).item()
    return _log10(spec), _log10(fro), _log10(hid)


def reference(
    spec: Spec,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any], dict[str, Any]]:
    """Parameters, inputs, stored arrays and the JSON record of one cell."""
    torch = _torch()
    rng = np.random.default_rng(spec.seed)
    params_np = spec.make_params(rng)
    inputs = rng.normal(0.0, spec.input_scale, size=(T, B, spec.d))
    p = {k: torch.from_numpy(v) for k, v in params_np.items()}
    x = torch.from_numpy(inputs)
    states = _rollout(spec, p, x)
    checked = [check(p, x, states) for check in spec.checks]
    m = spec.m
    step_j = torch.zeros(T, B, m, m)
    add_j = torch.zeros(T, B, m, m)
    input_j = torch.zeros(T, B, m, spec.d)
    input_only = True
    probe = torch.from_numpy(np.random.default_rng(spec.seed + 1).normal(0, 0.7, m))
    if spec.name.startswith("slstm"):
        probe[2 * spec.n : 3 * spec.n] = probe[2 * spec.n : 3 * spec.n].abs() + 0.5  # n > 0
    for t in range(T):
        for b in range(B):
            s_prev, x_t = states[t, b], x[t, b]
            step_j[t, b] = torch.autograd.functional.jacobian(
                lambda s, x_t=x_t: spec.step(p, s, x_t), s_prev
            )
            _FREEZE[0] = True
            try:
                add_j[t, b] = torch.autograd.functional.jacobian(
                    lambda s, x_t=x_t: spec.step(p, s, x_t), s_prev
                )
            finally:
                _FREEZE[0] = False
            input_j[t, b] = torch.autograd.functional.jacobian(
                lambda xx, s_prev=s_prev: spec.step(p, s_prev, xx), x_t
            )
            if t > 0:  # s_0 = 0 may sit on a special branch (sLSTM's n == 0)
                other = torch.autograd.functional.jacobian(
                    lambda s, x_t=x_t: spec.step(p, s, x_t), probe
                )
                if not torch.allclose(other, step_j[t, b], rtol=0, atol=1e-14):
                    input_only = False
    first = spec.state_sizes[0] if spec.state_sizes else spec.n
    spectral: list[list[float | None]] = [[0.0] * B]
    frobenius: list[list[float | None]] = [[math.log10(math.sqrt(m))] * B]
    hidden: list[list[float | None]] = [[0.0] * B]
    for k in range(1, T + 1):
        row_s: list[float | None] = []
        row_f: list[float | None] = []
        row_h: list[float | None] = []
        for b in range(B):

            def run(s: Any, k: int = k, b: int = b) -> Any:
                for t in range(T - k, T):
                    s = spec.step(p, s, x[t, b])
                return s

            jac = torch.autograd.functional.jacobian(run, states[T - k, b])
            ls, lf, lh = _log10_norms(jac, first)
            row_s.append(ls)
            row_f.append(lf)
            row_h.append(lh)
        spectral.append(row_s)
        frobenius.append(row_f)
        hidden.append(row_h)
    arrays = {
        "states": states.numpy(),
        "step_jacobians": step_j.numpy(),
        "additive_jacobians": add_j.numpy(),
        "input_jacobians": input_j.numpy(),
    }
    record = {
        "cell": spec.name,
        "hidden_size": spec.n,
        "input_size": spec.d,
        "state": list(spec.state),
        "state_size": m,
        "steps": T,
        "batch": B,
        "hyperparameters": spec.hyper,
        "parameters": {k: list(v.shape) for k, v in params_np.items()},
        "lags": list(range(T + 1)),
        "log10_spectral_norm": spectral,
        "log10_frobenius_norm": frobenius,
        "log10_spectral_norm_hidden": hidden,
        "final_hidden": states[T, :, :first].tolist(),
        # first lag whose product ds_T/ds_{T-k} is exactly zero, per sequence (None: never)
        "exact_zero_from_lag": [
            next((k for k in range(T + 1) if spectral[k][b] is None), None) for b in range(B)
        ],
        "input_only": input_only,
        "checked_against": checked,
        "seed": spec.seed,
        "generator": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "script": "tests/reference/make_modern_reference.py",
        },
    }
    return params_np, inputs, arrays, record


def _cross_checks(records: dict[str, dict[str, Any]]) -> None:
    """Facts that tie two cells' numbers together (asserted before anything is written)."""
    a, b = records["slstm"], records["slstm-stabilised"]
    # the stabiliser rescales c and n but not h: the h-block of every lag's product agrees
    err = np.abs(
        np.array(a["log10_spectral_norm_hidden"]) - np.array(b["log10_spectral_norm_hidden"])
    ).max()
    assert err < 1e-12, f"sLSTM h-block differs between the two state choices by {err}"
    assert np.allclose(a["final_hidden"], b["final_hidden"], rtol=0, atol=1e-14)


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.numpy import load_file
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored files")
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float64)
    results = {spec.name: reference(spec) for spec in specs()}
    _cross_checks({k: v[3] for k, v in results.items()})
    if args.check:
        worst = 0.0
        for name, (_params, _inputs, arrays, record) in results.items():
            stored = json.loads((DATA / f"{name}.json").read_text())
            for key in ("log10_spectral_norm", "log10_frobenius_norm"):
                a = np.array(stored[key], dtype=float)  # None (exact zero) -> nan
                b = np.array(record[key], dtype=float)
                if not np.array_equal(np.isnan(a), np.isnan(b)):
                    worst = math.inf
                worst = max(worst, float(np.nan_to_num(np.abs(a - b)).max()))
            saved = load_file(DATA / f"{name}_reference.safetensors")
            for key, value in arrays.items():
                worst = max(worst, float(np.abs(saved[key] - value).max()))
        print(f"largest difference from the stored reference: {worst:.2e}")
        return 0 if worst < 1e-12 else 1
    DATA.mkdir(parents=True, exist_ok=True)
    for name, (params, inputs, arrays, record) in results.items():
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
        save_file(tensors, str(DATA / f"{name}.safetensors"), metadata={"format": "pt"})
        np.save(DATA / f"{name}_inputs.npy", inputs)
        save_file(
            {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()},
            str(DATA / f"{name}_reference.safetensors"),
        )
        (DATA / f"{name}.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        spec_t = np.array(record["log10_spectral_norm"][-1], dtype=float)
        spec_t = spec_t[~np.isnan(spec_t)] if not np.isnan(spec_t).all() else np.zeros(1)
        print(
            f"{name:24s} m={record['state_size']:2d} input_only={record['input_only']!s:5s} "
            f"log10||ds_T/ds_0||_2 in [{np.nanmin(spec_t):+.3f}, {np.nanmax(spec_t):+.3f}]; "
            f"exact zero from lag {record['exact_zero_from_lag']}; "
            f"checked: {len(record['checked_against'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
