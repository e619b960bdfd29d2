"""Make the PyTorch state_dict fixtures of ``tests/test_formats.py`` (tests/data/formats/torch_*).

Development time only (torch is not a gradflow dependency)::

    python tests/reference/make_format_fixtures.py

For each case it builds a float64 ``torch.nn`` module with weights from ``torch.manual_seed``,
saves ``safetensors.torch.save_file(model.state_dict())`` (with a prefix and unrelated tensors
where the case says so), the inputs ``(T, B, d)`` as ``.npy`` and the module's own output
(``nn.RNN/LSTM/GRU``: ``output`` of shape ``(T, B, dirs * h_out)``; ``nn.*Cell``: the hidden
state after each step, ``(T, B, n)``), all in one small ``.npz``. The tests roll out the loaded
:class:`gradflow.formats.Model` and compare with these outputs to 1e-10.

References:
    [pytorch-rnn] PyTorch documentation of ``torch.nn.RNN/LSTM/GRU``, their ``*Cell`` variants
    and ``torch.nn.utils.parametrizations``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "data" / "formats"
T, B = 7, 2


def main() -> None:
    import torch
    from safetensors.torch import save_file
    from torch import nn
    from torch.nn.utils import parametrizations

    torch.set_default_dtype(torch.float64)
    OUT.mkdir(parents=True, exist_ok=True)

    class Wrapped(nn.Module):
        """A model with the RNN under a prefix and an unrelated head beside it."""

        def __init__(self, rnn: nn.Module) -> None:
            super().__init__()
            self.encoder = nn.Linear(2, 2)
            self.rnn = rnn
            self.head = nn.Linear(3, 1)

    cases: dict[str, tuple[nn.Module, int, bool]] = {}  # name -> (module, d, wrapped)

    def add(name: str, seed: int, make: object, d: int, wrapped: bool = False) -> None:
        torch.manual_seed(seed)
        cases[name] = (make(), d, wrapped)  # type: ignore[operator]

    add("lstm2", 1, lambda: nn.LSTM(3, 4, num_layers=2), 3, wrapped=True)
    add("gru_bi", 2, lambda: nn.GRU(3, 4, bidirectional=True), 3)
    add("gru2_bi", 3, lambda: nn.GRU(3, 3, num_layers=2, bidirectional=True), 3)
    add("lstm_proj", 4, lambda: nn.LSTM(3, 5, num_layers=2, proj_size=2), 3)
    add("rnn_nobias", 5, lambda: nn.RNN(3, 4, num_layers=2, bias=False), 3)
    add("rnn_relu", 6, lambda: nn.RNN(3, 4, nonlinearity="relu"), 3)
    add("lstmcell", 7, lambda: nn.LSTMCell(3, 4), 3)
    add("grucell", 8, lambda: nn.GRUCell(3, 4), 3)
    add("rnncell", 9, lambda: nn.RNNCell(3, 4), 3)

    def weight_norm() -> nn.Module:
        m = nn.RNN(3, 4)
        parametrizations.weight_norm(m, "weight_hh_l0")
        return m

    def spectral() -> nn.Module:
        m = nn.GRU(3, 4)
        parametrizations.spectral_norm(m, "weight_hh_l0")
        for _ in range(3):  # a few training-mode power iterations move u, v
            m(torch.randn(T, B, 3))
        m.eval()
        return m

    add("rnn_weightnorm", 10, weight_norm, 3)
    add("gru_spectral", 11, spectral, 3)

    for name, (module, d, wrapped) in cases.items():
        torch.manual_seed(100)
        x = torch.randn(T, B, d)
        with torch.no_grad():
            if isinstance(module, nn.RNNCellBase):
                state = None
                outs = []
                for t in range(T):
                    state = module(x[t], state)
                    outs.append(state[0] if isinstance(state, tuple) else state)
                out = torch.stack(outs)
            else:
                out = module(x)[0]
        if wrapped:
            holder = Wrapped(module)
            sd = {k: v.contiguous() for k, v in holder.state_dict().items()}
        else:
            sd = {k: v.contiguous() for k, v in module.state_dict().items()}
        save_file(sd, str(OUT / f"torch_{name}.safetensors"))
        np.savez(OUT / f"torch_{name}_io.npz", inputs=x.numpy(), outputs=out.numpy())
        print(f"{name}: {sorted(sd)}")


if __name__ == "__main__":
    main()
