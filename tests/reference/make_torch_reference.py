"""Make the stored PyTorch autograd reference for ``gradflow analyze`` (tests/data/ref_*).

Runs only where torch is installed (it is not a gradflow dependency)::

    python3 -m venv /work/torchenv
    /work/torchenv/bin/pip install torch numpy safetensors
    /work/torchenv/bin/python tests/reference/make_torch_reference.py

For each cell (``rnn``, ``lstm``, ``gru``) and regime it builds ``torch.nn.RNN/LSTM/GRU``
(``batch_first=False``, float64) with weights from a seeded NumPy generator, saves them with
``safetensors.torch.save_file`` (PyTorch names ``weight_ih_l0`` ...) and the inputs as
``(T, B, d)`` ``.npy``, then computes, with torch autograd and nothing from gradflow:

* for every lag ``k = 1..T`` and batch member, the Jacobian ``ds_T/ds_{T-k}`` of the map that
  runs ``nn.RNNCell/LSTMCell/GRUCell`` (sharing the module's weights) from step ``T-k+1`` to
  ``T`` with the true inputs, via ``torch.autograd.functional.jacobian``; the state is ``h``
  (rnn, gru) or ``[h; c]`` (lstm), starting from zero. Stored: log10 of its spectral norm
  (``torch.linalg.matrix_norm(J, ord=2)``), Frobenius norm and the spectral norm of the ``h``
  block. Lag 0 is the identity: ``0``, ``log10(sqrt(m))`` and ``0``.
* ``log10 ||dL/ds_{T-k}||`` for ``L = sum(h_T)`` and ``k = 0..T`` via ``torch.autograd.grad``.
* ``h_T`` (``final_hidden``), checked against the module's own full-sequence output.

References:
    [pytorch-rnn] PyTorch documentation of ``torch.nn.RNN``, ``torch.nn.LSTM``,
    ``torch.nn.GRU`` and ``torch.autograd.functional.jacobian``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "data"
N, D, B = 4, 3, 3
#: regime -> (steps T, scale of the recurrent weights, scale of the other weights and biases)
REGIMES = {"vanishing": (40, 0.25, 0.5), "moderate": (25, 1.2, 0.8)}
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}  # cell -> number of gates G


def _seed(cell: str, regime: str) -> int:
    return 1000 * list(CELLS).index(cell) + 10 * list(REGIMES).index(regime) + 7


def _module(cell: str, regime: str):
    import torch

    gates = CELLS[cell]
    _, rec_scale, scale = REGIMES[regime]
    rng = np.random.default_rng(_seed(cell, regime))
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    module = cls(D, N, num_layers=1, batch_first=False, dtype=torch.float64)
    values = {
        # recurrent rows ~ N(0, rec_scale^2 / n): spectral radius about rec_scale per gate
        "weight_hh_l0": rng.normal(0.0, rec_scale / math.sqrt(N), size=(gates * N, N)),
        "weight_ih_l0": rng.normal(0.0, scale / math.sqrt(D), size=(gates * N, D)),
        "bias_ih_l0": rng.normal(0.0, scale / 2, size=gates * N),
        "bias_hh_l0": rng.normal(0.0, scale / 2, size=gates * N),
    }
    with torch.no_grad():
        for name, value in values.items():
            getattr(module, name).copy_(torch.from_numpy(value))
    steps = REGIMES[regime][0]
    inputs = rng.normal(0.0, 1.0, size=(steps, B, D))
    return module, inputs


def _step_cell(cell: str, module):
    import torch

    cls = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell]
    step = cls(D, N, dtype=torch.float64)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(step, name).copy_(getattr(module, name + "_l0"))
    return step


def _advance(cell: str, step, s, x):
    """One step on a stacked state ``s`` (length n, or 2n = [h; c] for lstm)."""
    import torch

    if cell == "lstm":
        h, c = step(x[None], (s[None, :N], s[None, N:]))
        return torch.cat([h[0], c[0]])
    return step(x[None], s[None])[0]


def reference(cell: str, regime: str) -> dict:
    import torch

    module, inputs = _module(cell, regime)
    step = _step_cell(cell, module)
    steps = inputs.shape[0]
    m = 2 * N if cell == "lstm" else N
    x = torch.from_numpy(inputs)
    spectral = [[0.0] * B]
    frobenius = [[math.log10(math.sqrt(m))] * B]
    hidden = [[0.0] * B]
    grads: list[list[float]] = [[] for _ in range(steps + 1)]
    final = []
    for b in range(B):
        states = [torch.zeros(m, dtype=torch.float64)]
        with torch.no_grad():
            for t in range(steps):
                states.append(_advance(cell, step, states[-1], x[t, b]))
        final.append(states[-1][:N].tolist())
        for k in range(steps + 1):

            def run(s, k=k, b=b):
                for t in range(steps - k, steps):
                    s = _advance(cell, step, s, x[t, b])
                return s

            start = states[steps - k].clone().requires_grad_(True)
            (g,) = torch.autograd.grad(run(start)[:N].sum(), start)
            grads[k].append(math.log10(torch.linalg.vector_norm(g).item()))
            if k == 0:
                continue
            jac = torch.autograd.functional.jacobian(run, states[steps - k])
            for rows, value in (
                (spectral, torch.linalg.matrix_norm(jac, ord=2)),
                (frobenius, torch.linalg.matrix_norm(jac, ord="fro")),
                (hidden, torch.linalg.matrix_norm(jac[:N, :N], ord=2)),
            ):
                if len(rows) <= k:
                    rows.append([])
                rows[k].append(math.log10(value.item()))
    with torch.no_grad():  # the module over the whole sequence must give the same h_T
        out = module(x)[0][-1].numpy()
    assert np.allclose(out, np.array(final), rtol=0, atol=1e-14), "cell and module disagree"
    return {
        "cell": cell,
        "hidden_size": N,
        "input_size": D,
        "steps": steps,
        "batch": B,
        "lags": list(range(steps + 1)),
        "log10_spectral_norm": spectral,
        "log10_frobenius_norm": frobenius,
        "log10_spectral_norm_hidden": hidden,
        "final_hidden": final,
        "log10_gradient_norm": grads,
        "gradient_loss": "last",
        "regime": regime,
        "seed": _seed(cell, regime),
        "generator": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "script": "tests/reference/make_torch_reference.py",
        },
    }


def main() -> None:
    import torch
    from safetensors.torch import save_file

    torch.set_default_dtype(torch.float64)
    DATA.mkdir(parents=True, exist_ok=True)
    for cell in CELLS:
        for regime in REGIMES:
            stem = DATA / f"ref_{cell}_{regime}"
            module, inputs = _module(cell, regime)
            state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
            save_file(state, f"{stem}.safetensors", metadata={"format": "pt"})
            np.save(f"{stem}_inputs.npy", inputs)
            ref = reference(cell, regime)
            Path(f"{stem}.json").write_text(json.dumps(ref, sort_keys=True) + "\n")
            spec = np.array(ref["log10_spectral_norm"])
            print(
                f"{stem.name}: T={ref['steps']}, log10 ||ds_T/ds_0||_2 in "
                f"[{spec[-1].min():.2f}, {spec[-1].max():.2f}]"
            )


if __name__ == "__main__":
    main()
