r"""PyTorch autograd reference numbers for whole stacks (tests/data/stacks/): the engine's contract.

Development time only (torch is not a gradflow dependency)::

    python tests/reference/make_stack_reference.py

Models (float64, ``torch.manual_seed``, weights uniform in +-1/sqrt(n) as PyTorch initialises
them, then scaled by ``SCALE`` so that products neither vanish nor explode within T steps):

========== ================================================= ==== === === ===
name       module                                            n    d   T   B
========== ================================================= ==== === === ===
lstm2      nn.LSTM(3, 5, num_layers=2)                       5    3   10  2
lstm3      nn.LSTM(3, 4, num_layers=3)                       4    3   9   2
gru2       nn.GRU(3, 5, num_layers=2)                        5    3   10  2
gru_bi     nn.GRU(3, 4, bidirectional=True)                  4    3   8   2
lstm_proj  nn.LSTM(3, 6, num_layers=2, proj_size=3)          6    3   10  2
rnn_nobias nn.RNN(3, 4, num_layers=2, bias=False)            4    3   12  2
========== ================================================= ==== === === ===

Files per model: ``stack_{name}.safetensors`` (the module's ``state_dict``, PyTorch names),
``stack_{name}_inputs.npy`` ``(T, B, d)``, ``stack_{name}.json`` (configuration and these
definitions in short) and ``stack_{name}_ref.npz`` (the numbers below).

Definitions (the contract for the stack engine)
-----------------------------------------------
Steps are ``t = 1..T``; step ``t`` reads ``x_t = inputs[t-1]``; every state starts at zero.

* **Layer state** ``s^l_t``: ``h_t`` (RNN, GRU) or ``[h_t; c_t]`` (LSTM; with ``proj_size = p``,
  ``h_t = W_hr (o_t * tanh(c_t))`` has size ``p`` and ``c_t`` size ``n``). Layer ``l``'s output
  at step ``t`` is its ``h_t`` and is layer ``l+1``'s input at step ``t``.
* **Joint state** (unidirectional stacks only) ``S_t = [s^0_t; s^1_t; ...; s^{L-1}_t]``. The
  joint step ``S_t = F_t(S_{t-1})`` is causal and its Jacobian is block lower-triangular;
  ``dS_T/dS_{T-k}`` is the Jacobian of running steps ``T-k+1..T`` from ``S_{T-k}`` (the
  components of ``S_{T-k}`` are independent variables; inputs fixed).
  - ``joint_log10_spectral[k, b]``, ``joint_log10_frobenius[k, b]``: ``log10 ||dS_T/dS_{T-k}||``
    for ``k = 0..T`` (lag 0 is the identity: 0 and ``log10 sqrt(m)``).
  - ``chain_log10_spectral_l{l}[k, b]`` (and ``_frobenius``): the ``(l, l)`` block of that
    product, which is the product of layer ``l``'s own step Jacobians (each layer's own chain).
  - ``cross_log10_spectral_l{l}[k, b]`` (and ``_frobenius``): the ``(L-1, l)`` block,
    ``||ds^{L-1}_T/ds^l_{T-k}||``: how much of the top layer's state at ``T`` depends on layer
    ``l``'s state ``k`` steps back. At lag 0 it is exactly zero for ``l < L-1``: stored as
    ``-inf``; ``l = L-1`` repeats the top layer's own chain.
  - ``input_log10_spectral_joint[k, b]`` (and ``_frobenius``): ``||dS_T/dx_{T-k}||`` for
    ``k = 0..T-1``; ``input_log10_spectral_top[k, b]``: ``||ds^{L-1}_T/dx_{T-k}||``.
* **Bidirectional layers.** The reverse direction runs its own clock ``u = 1..T`` reading
  ``x_{T+1-u}``; its output at time ``t`` is its state after ``u = T+1-t`` steps, and layer
  outputs are ``[h^fwd_t; h^rev_t]``. A stacked bidirectional model has no causal joint state,
  so only per-direction quantities are stored (for ``gru_bi``, one layer):
  ``chain_log10_spectral_l0`` / ``chain_log10_spectral_l0_reverse`` (own clock: lag ``k`` is
  ``||ds_U/ds_{U-k}||`` with ``U = T``) and ``input_log10_spectral_l0[_reverse]``
  (``||ds_U/dx^{own}_{U-k}||`` where ``x^{own}_u`` is the input the direction reads at its step
  ``u``), ``k = 0..T-1``.
* **Loss** ``L = sum(h_n)``, the sum over the batch and units of the top layer's final hidden
  state(s), as ``nn.RNN/LSTM/GRU`` return them in ``h_n`` (forward: ``h_T``; reverse: its state
  after its ``T``-th step, at time 1). For unidirectional models ``L = sum(h^{L-1}_T)``.
  - ``grad_norm_state_l{l}[_reverse][t, b]`` for ``t = 0..T`` (own clock): ``||dL/ds^l_t||``, the
    total derivative (all paths, including the same-step path into the layer above; what torch
    gives for ``retain_grad`` on that state).
  - ``grad_norm_joint[t, b]`` (unidirectional): ``||(dS_T/dS_t)^T dL/dS_T||``, the joint-state
    gradient (the components of ``S_t`` independent: no same-step path).
  - ``grad_norm_input[t-1, b]``: ``||dL/dx_t||`` for ``t = 1..T``.
  - ``grad/{tensor}``: ``dL/dtheta`` for every tensor of the state_dict (PyTorch layout).
  - ``lag_grad/{tensor}[k]`` for ``k = 0..T-1``: ``G_k``, the contribution to ``dL/dtheta`` of
    the parameter's use at (own-clock) step ``T-k``, i.e. the part of the gradient that
    travelled ``k`` steps back in time (Pascanu et al. 2013, sec. 2). Computed with per-step
    copies of every parameter: ``G_k = dL/dtheta_{T-k}``; ``sum_k G_k = grad`` (checked here to
    1e-12). With the joint state, ``G_k = (dF_{T-k}/dtheta)^T (dS_T/dS_{T-k})^T dL/dS_T``.
  - ``lag_log10_norm/{tensor}[k]``: ``log10 ||G_k||_F``.
* ``outputs``: the module's own output ``(T, B, dirs * h_out)``; ``loss``: ``L``.

The step functions below are PyTorch's documented equations; the script checks them against
the module's own outputs (1e-12) and its own autograd gradient (1e-12) before saving.

References:
    [pytorch-rnn] PyTorch documentation of ``torch.nn.RNN``/``LSTM``/``GRU``.
    [pascanu2013] Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent
    neural networks, ICML, sec. 2 (the gradient as a sum of temporal contributions).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "data" / "stacks"
B = 2
SCALE = 1.6  # times PyTorch's default init range
#: name -> (kind, input size, hidden size, layers, bidirectional, proj_size, bias, T, seed)
MODELS: dict[str, tuple[str, int, int, int, bool, int, bool, int, int]] = {
    "lstm2": ("lstm", 3, 5, 2, False, 0, True, 10, 21),
    "lstm3": ("lstm", 3, 4, 3, False, 0, True, 9, 22),
    "gru2": ("gru", 3, 5, 2, False, 0, True, 10, 23),
    "gru_bi": ("gru", 3, 4, 1, True, 0, True, 8, 24),
    "lstm_proj": ("lstm", 3, 6, 2, False, 3, True, 10, 25),
    "rnn_nobias": ("rnn", 3, 4, 2, False, 0, False, 12, 26),
}


def main() -> None:
    import torch

    torch.set_default_dtype(torch.float64)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in MODELS.items():
        make_one(name, spec)


def make_one(name: str, spec: tuple[str, int, int, int, bool, int, bool, int, int]) -> None:
    """Build one model, check the equations, compute and save its reference numbers."""
    import torch
    from safetensors.torch import save_file
    from torch import nn

    def log10(x: Any) -> float:
        v = float(x)
        return -math.inf if v == 0.0 else math.log10(v)

    def norms(J: Any) -> tuple[float, float]:
        return log10(torch.linalg.matrix_norm(J, ord=2)), log10(torch.linalg.matrix_norm(J))

    kind, d, n, layers, bi, proj, bias, T, seed = spec
    torch.manual_seed(seed)
    cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
    extra = {"proj_size": proj} if proj else {}
    module = cls(d, n, num_layers=layers, bidirectional=bi, bias=bias, **extra)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(SCALE)
    x = torch.randn(T, B, d)
    dirs = 2 if bi else 1
    hout = proj or n
    ssize = hout + n if kind == "lstm" else n
    sfx = ["", "_reverse"][:dirs]
    tensor_names = [k for k, _ in module.named_parameters()]

    def tensors_of(li: int, r: int, source: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
            key = f"{base}_l{li}{sfx[r]}"
            out[base] = source.get(key)
        return out

    def step(p: dict[str, Any], xt: Any, s: Any) -> Any:
        """One step of PyTorch's documented equations; s is (batch, state)."""
        if kind == "lstm":
            h, c = s[..., :hout], s[..., hout:]
            g = xt @ p["weight_ih"].T + h @ p["weight_hh"].T
            if p["bias_ih"] is not None:
                g = g + p["bias_ih"] + p["bias_hh"]
            i, f, gg, o = g.chunk(4, dim=-1)
            c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h2 = torch.sigmoid(o) * torch.tanh(c2)
            if p["weight_hr"] is not None:
                h2 = h2 @ p["weight_hr"].T
            return torch.cat([h2, c2], dim=-1)
        if kind == "gru":
            gi = xt @ p["weight_ih"].T
            gh = s @ p["weight_hh"].T
            if p["bias_ih"] is not None:
                gi, gh = gi + p["bias_ih"], gh + p["bias_hh"]
            ir, iz, in_ = gi.chunk(3, dim=-1)
            hr, hz, hn = gh.chunk(3, dim=-1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            nn_ = torch.tanh(in_ + r * hn)
            return (1 - z) * nn_ + z * s
        a = xt @ p["weight_ih"].T + s @ p["weight_hh"].T
        if p["bias_ih"] is not None:
            a = a + p["bias_ih"] + p["bias_hh"]
        return torch.tanh(a)

    base = dict(module.named_parameters())

    def forward(xs: Any, par: Any, probes: Any = None) -> tuple[Any, list[list[list[Any]]], Any]:
        """Layer by layer over the whole sequence. Returns outputs, states[li][r][u], h_n."""
        inp = xs
        states: list[list[list[Any]]] = []
        finals = []
        for li in range(layers):
            outs, st_l = [], []
            for r in range(dirs):
                seq = inp.flip(0) if r else inp
                s = torch.zeros(xs.shape[1], ssize)
                if probes is not None:
                    s = s + probes[li][r][0]
                st = [s]
                for u in range(1, T + 1):
                    s = step(par(li, r, u), seq[u - 1], s)
                    if probes is not None:
                        s = s + probes[li][r][u]
                    st.append(s)
                hs = torch.stack([q[..., :hout] for q in st[1:]])
                outs.append(hs.flip(0) if r else hs)
                st_l.append(st)
                if li == layers - 1:
                    finals.append(st[-1][..., :hout])
            inp = torch.cat(outs, dim=-1)
            states.append(st_l)
        return inp, states, torch.stack(finals)

    # 1. the equations reproduce the module
    with torch.no_grad():
        ref_out, ref_hn = module(x)[0], module(x)[1]
        ref_hn = ref_hn[0] if isinstance(ref_hn, tuple) else ref_hn
        out, states, hn = forward(x, lambda li, r, u: tensors_of(li, r, base))
    assert torch.allclose(out, ref_out, rtol=0, atol=1e-12), name
    assert torch.allclose(hn, ref_hn[-dirs:], rtol=0, atol=1e-12), name

    # 2. gradients: per-step parameter copies, state probes, inputs
    copies = {
        (li, r, u): {
            k: (v.detach().clone().requires_grad_(True) if v is not None else None)
            for k, v in tensors_of(li, r, base).items()
        }
        for li in range(layers)
        for r in range(dirs)
        for u in range(1, T + 1)
    }
    probes = [
        [[torch.zeros(B, ssize, requires_grad=True) for _ in range(T + 1)] for _ in range(dirs)]
        for _ in range(layers)
    ]
    xg = x.clone().requires_grad_(True)
    _, _, hn_g = forward(xg, lambda li, r, u: copies[li, r, u], probes)
    loss = hn_g.sum()
    leaves = [xg] + [p for pl in probes for pr in pl for p in pr]
    flat = [(key, k, v) for key, c in copies.items() for k, v in c.items() if v is not None]
    grads = torch.autograd.grad(loss, leaves + [v for _, _, v in flat])
    gx, rest = grads[0], grads[1:]
    gprobe, gpar = rest[: len(leaves) - 1], rest[len(leaves) - 1 :]
    module.zero_grad()
    mh = module(x)[1]
    (mh[0] if isinstance(mh, tuple) else mh)[-dirs:].sum().backward()
    data: dict[str, np.ndarray] = {
        "outputs": ref_out.detach().numpy(),
        "loss": np.array(float(loss.detach())),
        "grad_norm_input": torch.linalg.vector_norm(gx, dim=-1).numpy(),
    }
    idx = 0
    for li in range(layers):
        for r in range(dirs):
            g = torch.stack(gprobe[idx : idx + T + 1])
            idx += T + 1
            data[f"grad_norm_state_l{li}{sfx[r]}"] = torch.linalg.vector_norm(g, dim=-1).numpy()
    lag: dict[str, np.ndarray] = {}
    for ((li, r, u), k, _), g in zip(flat, gpar, strict=True):
        tname = f"{k}_l{li}{sfx[r]}"
        lag.setdefault(tname, np.zeros((T, *g.shape)))
        lag[tname][T - u] = g.numpy()
    for tname in tensor_names:
        total = base[tname].grad.numpy()
        assert np.allclose(lag[tname].sum(axis=0), total, rtol=0, atol=1e-12), (name, tname)
        data[f"grad/{tname}"] = total
        data[f"lag_grad/{tname}"] = lag[tname]
        data[f"lag_log10_norm/{tname}"] = np.array([log10(np.linalg.norm(gk)) for gk in lag[tname]])

    # 3. Jacobian products
    par0 = lambda li, r, u: tensors_of(li, r, base)  # noqa: E731
    with torch.no_grad():
        _, states, _ = forward(x, par0)
    if not bi:
        m = layers * ssize

        def run_joint(S: Any, t0: int, t1: int, xs: Any) -> Any:
            """Steps t0+1..t1 of the joint map from S_{t0} (batch of 1)."""
            parts = list(S.reshape(1, layers, ssize).unbind(1))
            for t in range(t0 + 1, t1 + 1):
                inp = xs[t - 1]
                for li in range(layers):
                    parts[li] = step(par0(li, 0, t), inp, parts[li])
                    inp = parts[li][..., :hout]
            return torch.cat(parts, dim=-1).reshape(-1)

        keys = ["joint"] + [f"chain_l{li}" for li in range(layers)]
        keys += [f"cross_l{li}" for li in range(layers)]
        res = {k: np.zeros((2, T + 1, B)) for k in keys}
        inp_res = {k: np.zeros((2, T, B)) for k in ("joint", "top")}
        gjoint = np.zeros((T + 1, B))
        top = slice((layers - 1) * ssize, (layers - 1) * ssize + hout)
        for b in range(B):
            xb = x[:, b : b + 1]
            for k in range(T + 1):
                S0 = torch.cat([states[li][0][T - k][b] for li in range(layers)])
                J = torch.autograd.functional.jacobian(
                    lambda S, k=k, xb=xb: run_joint(S, T - k, T, xb), S0
                )
                res["joint"][:, k, b] = norms(J)
                for li in range(layers):
                    blk = slice(li * ssize, (li + 1) * ssize)
                    res[f"chain_l{li}"][:, k, b] = norms(J[blk, blk])
                    res[f"cross_l{li}"][:, k, b] = norms(J[(layers - 1) * ssize :, blk])
                # joint-state gradient: (dS_T/dS_{T-k})^T dL/dS_T, dL/dS_T = 1 on top h
                w = torch.zeros(m)
                w[top] = 1.0
                gjoint[T - k, b] = float(torch.linalg.vector_norm(J.T @ w))
            for k in range(T):
                t = T - k
                S_prev = torch.cat([states[li][0][t - 1][b] for li in range(layers)])

                def from_x(xt: Any, t: int = t, S_prev: Any = S_prev, xb: Any = xb) -> Any:
                    xs = xb.clone()
                    xs[t - 1, 0] = xt
                    return run_joint(S_prev, t - 1, T, xs)

                Jx = torch.autograd.functional.jacobian(from_x, xb[t - 1, 0])
                inp_res["joint"][:, k, b] = norms(Jx)
                inp_res["top"][:, k, b] = norms(Jx[(layers - 1) * ssize :])
        data["grad_norm_joint"] = gjoint
        for key, val in res.items():
            head, _, tail = key.partition("_")
            suffix = f"_{tail}" if tail else ""
            data[f"{head}_log10_spectral{suffix}"] = val[0]
            data[f"{head}_log10_frobenius{suffix}"] = val[1]
        for key, val in inp_res.items():
            data[f"input_log10_spectral_{key}"] = val[0]
            data[f"input_log10_frobenius_{key}"] = val[1]
    else:
        assert layers == 1, "per-direction chains are defined here for one layer"
        for r in range(dirs):
            seq_full = x.flip(0) if r else x
            chain = np.zeros((2, T + 1, B))
            inp = np.zeros((2, T, B))
            for b in range(B):
                seq = seq_full[:, b : b + 1]

                def run_dir(s: Any, u0: int, seq: Any = seq, r: int = r) -> Any:
                    s = s.reshape(1, -1)
                    for u in range(u0 + 1, T + 1):
                        s = step(par0(0, r, u), seq[u - 1], s)
                    return s.reshape(-1)

                for k in range(T + 1):
                    J = torch.autograd.functional.jacobian(
                        lambda s, k=k: run_dir(s, T - k), states[0][r][T - k][b]
                    )
                    chain[:, k, b] = norms(J)
                for k in range(T):
                    u = T - k

                    def from_x(xt: Any, u: int = u, seq: Any = seq, r: int = r, b: int = b) -> Any:
                        s = step(par0(0, r, u), xt.reshape(1, -1), states[0][r][u - 1][b : b + 1])
                        for v in range(u + 1, T + 1):
                            s = step(par0(0, r, v), seq[v - 1], s)
                        return s.reshape(-1)

                    inp[:, k, b] = norms(torch.autograd.functional.jacobian(from_x, seq[u - 1, 0]))
            data[f"chain_log10_spectral_l0{sfx[r]}"] = chain[0]
            data[f"chain_log10_frobenius_l0{sfx[r]}"] = chain[1]
            data[f"input_log10_spectral_l0{sfx[r]}"] = inp[0]
            data[f"input_log10_frobenius_l0{sfx[r]}"] = inp[1]

    sd = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    save_file(sd, str(OUT / f"stack_{name}.safetensors"))
    np.save(OUT / f"stack_{name}_inputs.npy", x.numpy())
    np.savez_compressed(OUT / f"stack_{name}_ref.npz", **data)
    config = {
        "module": f"nn.{ {'rnn': 'RNN', 'lstm': 'LSTM', 'gru': 'GRU'}[kind] }",
        "cell": kind,
        "input_size": d,
        "hidden_size": n,
        "num_layers": layers,
        "bidirectional": bi,
        "proj_size": proj,
        "bias": bias,
        "steps": T,
        "batch": B,
        "seed": seed,
        "weight_scale": SCALE,
        "state": "h (rnn, gru) or [h; c] (lstm; h of size proj_size if set)",
        "loss": "L = sum(h_n[-dirs:]) over batch and units",
        "definitions": "see the docstring of tests/reference/make_stack_reference.py",
        "keys": sorted(data),
    }
    (OUT / f"stack_{name}.json").write_text(json.dumps(config, indent=1) + "\n")
    print(name, "ok", f"joint lag T: {data.get('joint_log10_spectral', np.zeros((1, 1)))[-1]}")


if __name__ == "__main__":
    main()
