"""Make the PyTorch autograd references for stacked and bidirectional models (tests/data/stacks).

Runs only where torch is installed (development time; gradflow never imports torch)::

    PYTHONPATH=. python tests/reference/make_stack_engine_reference.py

For each model (``lstm2``, ``lstm3``: 2- and 3-layer ``nn.LSTM``; ``gru2``: 2-layer ``nn.GRU``;
``gru_bi``: 2-layer bidirectional ``nn.GRU``; ``rnn_nobias``: 2-layer ``nn.RNN(bias=False)``;
n = 5, d = 3, T = 10, B = 2, float64, weights from ``torch.manual_seed``) it saves the module's
``state_dict`` (``.safetensors``, PyTorch names) and the inputs ``(T, B, d)`` (``.npy``), and
computes with torch autograd, per sequence, nothing from gradflow:

* unidirectional stacks, joint state ``S_t = [s^1_t; ...; s^L_t]`` (``s = h`` or ``[h; c]``),
  the stack unrolled with ``nn.*Cell`` twins of each layer: for every lag, the Jacobian
  ``dS_T/dS_{T-k}`` (``torch.autograd.functional.jacobian``) and the spectral and Frobenius
  norms of it, of its block on every ``h``, of each layer's diagonal block and of the top
  row's blocks ``ds^L_T/ds^l_{T-k}``; the input Jacobian ``dS_T/dx_{T-k}`` (joint norms and
  each layer's rows); ``||dL/dS_{T-k}||`` (the joint state as a leaf) for ``L = sum h^L_T``
  and ``L = sum_t sum h^L_t``; the total derivatives ``||dL/ds^l_t||`` (``retain_grad`` on the
  unrolled graph) and ``||dL/dx_t||``;
* the parameter gradient of ``L = sum h^L_T`` and its split by lag: every step gets its own
  leaf copy of the weights (``torch.func.functional_call``), so the gradient of the copy used
  at step ``T-k`` is ``G_k``; ``sum_k G_k`` is checked against the module's own autograd
  gradient; stored per gradflow parameter name (PyTorch's gate blocks split);
* bidirectional: each direction's own chain (its cell over its own input sequence, reversed
  for the reverse direction), the total derivatives of both losses (``L`` on the top layer's
  output ``[h_fwd; h_rev]`` at position ``T``, or summed over positions) with respect to
  every layer's and direction's state at every position, ``||dL/dx_t||``, and the parameter
  gradient.

Norms are stored as log10, per lag ``k`` (row) and sequence (column).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data" / "stacks"
N, D, T, B = 5, 3, 10, 2
MODELS = {
    "lstm2": ("lstm", 2, False, True),
    "lstm3": ("lstm", 3, False, True),
    "gru2": ("gru", 2, False, True),
    "gru_bi": ("gru", 2, True, True),
    "rnn_nobias": ("rnn", 2, False, False),
}
GATES = {"lstm": "ifgo", "gru": "rzn", "rnn": ""}


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else -math.inf


def _norms(torch, J):
    return _log10(torch.linalg.matrix_norm(J, ord=2).item()), _log10(
        torch.linalg.matrix_norm(J, ord="fro").item()
    )


def _module(name: str):
    import torch

    kind, layers, bidir, bias = MODELS[name]
    torch.manual_seed(1000 + list(MODELS).index(name))
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
    module = cls(D, N, num_layers=layers, bidirectional=bidir, bias=bias, dtype=torch.float64)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(1.6)  # default init U(-1/sqrt(n), 1/sqrt(n)), a little stronger
    rng = np.random.default_rng(2000 + list(MODELS).index(name))
    return module, rng.normal(0.0, 1.0, size=(T, B, D))


def _cells(module, kind: str, layers: int, bidir: bool, bias: bool):
    """One ``nn.*Cell`` per layer and direction, sharing the module's weights."""
    import torch

    cls = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}[kind]
    out = []
    for layer in range(layers):
        for suffix in ("", "_reverse") if bidir else ("",):
            d = D if layer == 0 else N * (2 if bidir else 1)
            cell = cls(d, N, bias=bias, dtype=torch.float64)
            with torch.no_grad():
                for p in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ()):
                    getattr(cell, p).copy_(getattr(module, f"{p}_l{layer}{suffix}"))
            out.append(cell)
    return out


def _advance(kind, cell, s, x, params=None):
    """One step on a stacked state (``[h; c]`` for lstm), optionally with other weights."""
    import torch
    from torch.func import functional_call

    def call(*args):
        return cell(*args) if params is None else functional_call(cell, params, args)

    if kind == "lstm":
        h, c = call(x[None], (s[None, :N], s[None, N:]))
        return torch.cat([h[0], c[0]])
    return call(x[None], s[None])[0]


def _split(kind: str, tensor_name: str, grad: np.ndarray) -> dict[str, np.ndarray]:
    """PyTorch gate blocks -> gradflow parameter names (``W_ii`` ... / ``W_ih`` for rnn)."""
    base = tensor_name.split("_l")[0]  # weight_ih, weight_hh, bias_ih, bias_hh
    prefix = {"weight_ih": "W_i", "weight_hh": "W_h", "bias_ih": "b_i", "bias_hh": "b_h"}[base]
    if kind == "rnn":
        return {prefix + base[-1]: grad}  # W_ih, W_hh, b_ih, b_hh
    blocks = np.split(grad, len(GATES[kind]), axis=0)
    return {prefix + g: b for g, b in zip(GATES[kind], blocks, strict=True)}


def unidirectional(name: str) -> dict:
    import torch

    kind, layers, _, bias = MODELS[name]
    module, inputs = _module(name)
    cells = _cells(module, kind, layers, False, bias)
    m = 2 * N if kind == "lstm" else N
    M = layers * m
    hidx = [lay * m + i for lay in range(layers) for i in range(N)]
    x = torch.from_numpy(inputs)

    def step(S, xt, params=None):
        out, inp = [], xt
        for lay, cell in enumerate(cells):
            s = _advance(
                kind, cell, S[lay * m : (lay + 1) * m], inp, None if params is None else params[lay]
            )
            out.append(s)
            inp = s[:N]
        return torch.cat(out)

    keys = [
        "joint_spectral",
        "joint_frobenius",
        "joint_hidden",
        "layer_spectral",
        "layer_frobenius",
        "cross_spectral",
        "cross_frobenius",
        "input_spectral",
        "input_frobenius",
        "layer_input_spectral",
        "grad_last",
        "grad_sum",
        "layer_grad_last",
        "layer_grad_sum",
        "input_grad_last",
        "input_grad_sum",
        "lag_norm",
        "tail_fraction",
        "parameter_gradient",
    ]
    res: dict = {k: [] for k in keys}
    res["lag_norm"], res["tail_fraction"], res["parameter_gradient"] = {}, {}, {}
    final = []
    for b in range(B):
        xb = x[:, b]
        states = [torch.zeros(M, dtype=torch.float64)]
        with torch.no_grad():
            for t in range(T):
                states.append(step(states[-1], xb[t]))
        final.append(states[-1][(layers - 1) * m : (layers - 1) * m + N].tolist())

        def run(S, t0, t1, xb=xb):
            for t in range(t0, t1):
                S = step(S, xb[t])
            return S

        js, jf, jh = [0.0], [_log10(math.sqrt(M))], [0.0]
        ls = [[0.0] for _ in range(layers)]
        lf = [[_log10(math.sqrt(m))] for _ in range(layers)]
        cs = [[-math.inf] for _ in range(layers)]
        cf = [[-math.inf] for _ in range(layers)]
        cs[-1][0], cf[-1][0] = 0.0, _log10(math.sqrt(m))
        ins, inf_, lins = [], [], [[] for _ in range(layers)]
        for k in range(1, T + 1):
            J = torch.autograd.functional.jacobian(lambda S, k=k: run(S, T - k, T), states[T - k])
            a, f = _norms(torch, J)
            js.append(a), jf.append(f)
            jh.append(_norms(torch, J[hidx][:, hidx])[0])
            for lay in range(layers):
                a, f = _norms(torch, J[lay * m : (lay + 1) * m, lay * m : (lay + 1) * m])
                ls[lay].append(a), lf[lay].append(f)
                a, f = _norms(torch, J[(layers - 1) * m :, lay * m : (lay + 1) * m])
                cs[lay].append(a), cf[lay].append(f)
        for k in range(T):
            t = T - k  # x_t is xb[t - 1]
            K = torch.autograd.functional.jacobian(
                lambda xt, t=t, states=states: run(step(states[t - 1], xt), t, T), xb[t - 1]
            )
            a, f = _norms(torch, K)
            ins.append(a), inf_.append(f)
            for lay in range(layers):
                lins[lay].append(_norms(torch, K[lay * m : (lay + 1) * m])[0])
        for key, val in (
            ("joint_spectral", js),
            ("joint_frobenius", jf),
            ("joint_hidden", jh),
            ("layer_spectral", ls),
            ("layer_frobenius", lf),
            ("cross_spectral", cs),
            ("cross_frobenius", cf),
            ("input_spectral", ins),
            ("input_frobenius", inf_),
            ("layer_input_spectral", lins),
        ):
            res[key].append(val)
        # gradient vectors, joint state as a leaf
        top = slice((layers - 1) * m, (layers - 1) * m + N)
        for loss in ("last", "sum"):
            out = []
            for k in range(T + 1):
                S = states[T - k].clone().requires_grad_(True)
                if loss == "last":
                    total = run(S, T - k, T)[top].sum()
                else:  # h^L_tau for tau = T-k+1..T, and h^L_{T-k} itself unless it is h_0
                    total = sum(
                        (run(S, T - k, tau)[top].sum() for tau in range(T - k + 1, T + 1)),
                        S[top].sum() if T - k >= 1 else torch.zeros((), dtype=torch.float64),
                    )
                (g,) = torch.autograd.grad(total, S)
                out.append(_log10(torch.linalg.vector_norm(g).item()))
            res[f"grad_{loss}"].append(out)
            # total derivatives per layer state, and input gradients, on the unrolled graph
            xl = xb.clone().requires_grad_(True)
            S = torch.zeros(M, dtype=torch.float64)
            per = [[None] * (T + 1) for _ in range(layers)]
            S_parts: list = []
            lossv = 0.0
            hs = []
            for t in range(T + 1):
                if t > 0:
                    outs, inp = [], xl[t - 1]
                    for lay, cell in enumerate(cells):
                        s = _advance(kind, cell, S_parts[lay], inp)
                        outs.append(s)
                        inp = s[:N]
                    S_parts = outs
                else:
                    S_parts = [
                        torch.zeros(m, dtype=torch.float64, requires_grad=True) for _ in cells
                    ]
                for lay in range(layers):
                    S_parts[lay].retain_grad()
                    per[lay][t] = S_parts[lay]
                if t >= 1:
                    hs.append(S_parts[-1][:N].sum())
            lossv = hs[-1] if loss == "last" else sum(hs)
            lossv.backward()
            res[f"layer_grad_{loss}"].append(
                [
                    [
                        _log10(torch.linalg.vector_norm(per[lay][T - k].grad).item())
                        for k in range(T + 1)
                    ]
                    for lay in range(layers)
                ]
            )
            res[f"input_grad_{loss}"].append(
                [_log10(torch.linalg.vector_norm(xl.grad[T - k - 1]).item()) for k in range(T)]
            )
        # parameter gradient split by lag, L = sum h^L_T
        names = [(lay, p) for lay in range(layers) for p, _ in cells[lay].named_parameters()]
        copies = [
            [
                {
                    p: t.detach().clone().requires_grad_(True)
                    for p, t in cells[lay].named_parameters()
                }
                for lay in range(layers)
            ]
            for _ in range(T)
        ]
        S = torch.zeros(M, dtype=torch.float64)
        for t in range(T):
            S = step(S, xb[t], copies[t])
        S[top].sum().backward()
        module.zero_grad()
        module(x[:, b : b + 1])[0][-1].sum().backward()
        for lay, p in names:
            tname = f"{p}_l{lay}"
            per_step = np.stack([copies[t][lay][p].grad.numpy() for t in range(T)])  # time order
            total = per_step.sum(axis=0)
            autograd = getattr(module, tname).grad.numpy()
            assert np.allclose(total, autograd, rtol=1e-12, atol=1e-14), tname
            for gname, blocks in _split(
                kind, tname, per_step.transpose(1, 0, *range(2, per_step.ndim))
            ).items():
                G = np.moveaxis(blocks, 1, 0)[::-1]  # lag order: G_k is step T-k
                key = f"l{lay}.{gname}"
                flat = G.reshape(T, -1)
                tot = flat.sum(axis=0)
                res["lag_norm"].setdefault(key, []).append(
                    [_log10(np.linalg.norm(g)) for g in flat]
                )
                res["tail_fraction"].setdefault(key, []).append(
                    [
                        float(np.linalg.norm(flat[k + 1 :].sum(axis=0)) / np.linalg.norm(tot))
                        for k in range(T)
                    ]
                )
                res["parameter_gradient"].setdefault(key, []).append(G.sum(axis=0).tolist())
    with torch.no_grad():
        out = module(x)[0][-1].numpy()
    assert np.allclose(out, np.array(final), rtol=0, atol=1e-14), "cells and module disagree"
    res["final_hidden"] = final
    return _finish(name, res)


def bidirectional(name: str) -> dict:
    import torch

    kind, layers, _, bias = MODELS[name]
    module, inputs = _module(name)
    cells = _cells(module, kind, layers, True, bias)  # l0, l0_reverse, l1, l1_reverse
    x = torch.from_numpy(inputs)
    res: dict = {"chain_spectral": [], "chain_frobenius": [], "parameter_gradient": {}}
    for loss in ("last", "sum"):
        res[f"layer_grad_{loss}"], res[f"input_grad_{loss}"] = [], []

    def forward(xb, record=False):
        """Per layer and direction, the states at positions 1..T (list index t-1)."""
        inp, states = xb, []
        for lay in range(layers):
            f_cell, r_cell = cells[2 * lay], cells[2 * lay + 1]
            hf, hr = [], [None] * T
            s = torch.zeros(N, dtype=torch.float64)
            for t in range(T):
                s = _advance(kind, f_cell, s, inp[t])
                hf.append(s)
            s = torch.zeros(N, dtype=torch.float64)
            for t in range(T - 1, -1, -1):
                s = _advance(kind, r_cell, s, inp[t])
                hr[t] = s
            if record:
                for s in hf + hr:
                    s.retain_grad()
            states += [hf, hr]
            inp = torch.stack([torch.cat([hf[t], hr[t]]) for t in range(T)])
        return states, inp

    final = []
    for b in range(B):
        xb = x[:, b]
        with torch.no_grad():
            states, out = forward(xb)
        final.append(out[-1].tolist())
        spec, frob = [], []
        inp = xb
        for lay in range(layers):
            for direction in (0, 1):
                cell = cells[2 * lay + direction]
                seq = inp if direction == 0 else inp.flip(0)
                own = states[2 * lay + direction] if direction == 0 else states[2 * lay + 1][::-1]
                own = [torch.zeros(N, dtype=torch.float64)] + list(own)
                sp_, fr_ = [0.0], [_log10(math.sqrt(N))]
                for k in range(1, T + 1):

                    def run(s, k=k, cell=cell, seq=seq):
                        for t in range(T - k, T):
                            s = _advance(kind, cell, s, seq[t])
                        return s

                    a, f = _norms(torch, torch.autograd.functional.jacobian(run, own[T - k]))
                    sp_.append(a), fr_.append(f)
                spec.append(sp_), frob.append(fr_)
            inp = torch.stack(
                [torch.cat([states[2 * lay][t], states[2 * lay + 1][t]]) for t in range(T)]
            )
        res["chain_spectral"].append(spec)
        res["chain_frobenius"].append(frob)
        for loss in ("last", "sum"):
            xl = xb.clone().requires_grad_(True)
            st, out = forward(xl, record=True)
            (out[-1].sum() if loss == "last" else out.sum()).backward()
            # row k: the state at position T-k (k = 0..T-1), per layer and direction
            res[f"layer_grad_{loss}"].append(
                [
                    [_log10(torch.linalg.vector_norm(s[T - 1 - k].grad).item()) for k in range(T)]
                    for s in st
                ]
            )
            res[f"input_grad_{loss}"].append(
                [_log10(torch.linalg.vector_norm(xl.grad[T - 1 - k]).item()) for k in range(T)]
            )
        module.zero_grad()
        module(x[:, b : b + 1])[0][-1].sum().backward()
        for tname, p in module.named_parameters():
            lay = int(tname.split("_l")[1][0])
            for gname, g in _split(kind, tname, p.grad.numpy()).items():
                key = f"l{lay}{'_reverse' if tname.endswith('_reverse') else ''}.{gname}"
                res["parameter_gradient"].setdefault(key, []).append(g.tolist())
    with torch.no_grad():
        out = module(x)[0][-1].numpy()
    assert np.allclose(out, np.array(final), rtol=0, atol=1e-14), "cells and module disagree"
    res["final_hidden"] = final
    return _finish(name, res)


def lag_split(name: str, loss: str) -> dict:
    """The parameter gradient split by lag for ``L = sum_t L_t`` (``loss="sum"``, every
    position) or ``L = L_T`` (``"last"``), ``L_t = sum(y_t)``, ``y_t`` the top layer's output.

    Every layer, direction and position gets its own leaf copy of the weights; the gradient of
    ``L_t`` with respect to the copy used at position ``p`` is the contribution ``g_{t,p}``,
    and ``G_k = sum_{|t - p| = k} g_{t,p}`` (for a forward direction ``t >= p`` always: the
    lag is how far back the contribution travelled; for a reverse direction ``p >= t``, the
    distance in its own time). ``sum_k G_k`` is checked against the module's own gradient.
    """
    import torch
    from torch.func import functional_call

    kind, layers, bidir, bias = MODELS[name]
    module, inputs = _module(name)
    cells = _cells(module, kind, layers, bidir, bias)
    dirs = (0, 1) if bidir else (0,)
    x = torch.from_numpy(inputs)
    lag_norm: dict = {}
    tail: dict = {}
    total_grad: dict = {}
    for b in range(B):
        xb = x[:, b]
        copies = [
            [
                {p: t.detach().clone().requires_grad_(True) for p, t in c.named_parameters()}
                for c in cells
            ]
            for _ in range(T)
        ]

        def adv(ci, s, xt, p, copies=copies):
            cell = cells[ci]
            if kind == "lstm":
                h, c = functional_call(cell, copies[p][ci], (xt[None], (s[None, :N], s[None, N:])))
                return torch.cat([h[0], c[0]])
            return functional_call(cell, copies[p][ci], (xt[None], s[None]))[0]

        inp = xb
        for lay in range(layers):
            outs = []
            for direction in dirs:
                ci = len(dirs) * lay + direction
                m = 2 * N if kind == "lstm" else N
                s = torch.zeros(m, dtype=torch.float64)
                hs = [None] * T
                for t in range(T - 1, -1, -1) if direction else range(T):
                    s = adv(ci, s, inp[t], t)
                    hs[t] = s[:N]
                outs.append(torch.stack(hs))
            inp = torch.cat(outs, dim=1)
        terms = range(T) if loss == "sum" else (T - 1,)
        G: dict = {}
        for t in terms:
            leaves = [
                (p, ci, pn, v)
                for p in range(T)
                for ci in range(len(cells))
                for pn, v in copies[p][ci].items()
            ]
            grads = torch.autograd.grad(
                inp[t].sum(), [v for *_, v in leaves], retain_graph=True, allow_unused=True
            )
            for (p, ci, pn, _), g in zip(leaves, grads, strict=True):
                if g is None:
                    continue
                lay, direction = divmod(ci, len(dirs))
                tname = f"{pn}_l{lay}{'_reverse' if direction else ''}"
                for gname, blk in _split(kind, f"{pn}_l{lay}", g.numpy()).items():
                    key = f"l{lay}{'_reverse' if direction else ''}.{gname}"
                    G.setdefault(key, np.zeros((T,) + blk.shape))[abs(t - p)] += blk
        module.zero_grad()
        out = module(x[:, b : b + 1])[0]
        (out.sum() if loss == "sum" else out[-1].sum()).backward()
        auto = {}
        for tname, prm in module.named_parameters():
            lay = int(tname.split("_l")[1][0])
            for gname, g in _split(kind, tname, prm.grad.numpy()).items():
                auto[f"l{lay}{'_reverse' if tname.endswith('_reverse') else ''}.{gname}"] = g
        for key, Gk in G.items():
            flat = Gk.reshape(T, -1)
            tot = flat.sum(axis=0)
            assert np.allclose(tot, auto[key].ravel(), rtol=1e-12, atol=1e-14), key
            lag_norm.setdefault(key, []).append([_log10(np.linalg.norm(g)) for g in flat])
            ntot = np.linalg.norm(tot)
            tail.setdefault(key, []).append(
                [
                    float(np.linalg.norm(flat[k + 1 :].sum(axis=0)) / ntot) if ntot > 0 else None
                    for k in range(T)
                ]
            )
            total_grad.setdefault(key, []).append(tot.reshape(Gk.shape[1:]).tolist())

    def batch_last(v):
        return np.moveaxis(np.array(v, dtype=float), 0, -1).tolist()

    return {
        f"lag_norm_{loss}": {k: batch_last(v) for k, v in lag_norm.items()},
        f"tail_fraction_{loss}": {k: batch_last(v) for k, v in tail.items()},
        f"parameter_gradient_{loss}": total_grad,
    }


def _finish(name: str, res: dict) -> dict:
    import torch

    kind, layers, bidir, bias = MODELS[name]

    def batch_last(v):  # per-sequence lists -> lag (and layer) first, batch last
        a = np.array(v, dtype=float)
        return np.moveaxis(a, 0, -1).tolist()

    out = {k: batch_last(v) for k, v in res.items() if isinstance(v, list)}
    for k, v in res.items():
        if isinstance(v, dict):
            out[k] = {
                key: (np.array(val).tolist() if k == "parameter_gradient" else batch_last(val))
                for key, val in v.items()
            }
    out["final_hidden"] = res["final_hidden"]
    out.update(
        model=name,
        cell=kind,
        layers=layers,
        bidirectional=bidir,
        bias=bias,
        hidden_size=N,
        input_size=D,
        steps=T,
        batch=B,
        generator={
            "torch": torch.__version__,
            "numpy": np.__version__,
            "script": "tests/reference/make_stack_engine_reference.py",
        },
    )
    return out


def main() -> None:
    import torch
    from safetensors.torch import save_file

    torch.set_default_dtype(torch.float64)
    DATA.mkdir(parents=True, exist_ok=True)
    for name, (_, _, bidir, _) in MODELS.items():
        module, inputs = _module(name)
        state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(DATA / f"{name}.safetensors"), metadata={"format": "pt"})
        np.save(DATA / f"{name}_inputs.npy", inputs)
        ref = bidirectional(name) if bidir else unidirectional(name)
        for loss in ("last", "sum") if bidir else ("sum",):
            ref.update(lag_split(name, loss))
        text = json.dumps(ref, sort_keys=True).replace("-Infinity", "null")
        (DATA / f"{name}.json").write_text(text + "\n")
        print(f"{name}: written")


if __name__ == "__main__":
    main()
