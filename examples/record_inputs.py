"""Record the inputs a trained PyTorch model's recurrent layer actually sees, for gradflow.

gradflow analyses the gates driven by whatever inputs you give it; Gaussian noise is only a
stand-in. This script registers a forward pre-hook on the model's ``nn.RNN``/``nn.LSTM``/
``nn.GRU`` module, runs real data through the model, and writes what the recurrent module
received as a ``(T, B, d)`` float64 ``.npy`` (time first, as ``gradflow analyze --inputs``
takes it), beside the weights as a ``.safetensors`` state_dict.

It is an example, not part of gradflow (gradflow never imports torch). Adapt ``build_model``
and ``batches`` to your own model and data, then run::

    python examples/record_inputs.py --out recorded/
    gradflow inspect recorded/weights.safetensors
    gradflow analyze --weights recorded/weights.safetensors --cell lstm \\
        --inputs recorded/inputs.npy --output result.json

Notes:
    * A pre-hook sees the recurrent module's *input*: after embeddings, dropout (call
      ``model.eval()`` so that dropout is off) and whatever the model does before it. For a
      stack, that is the first layer's input; gradflow computes the deeper layers' inputs
      itself.
    * ``batch_first=True`` modules get ``(B, T, d)``: the hook transposes to ``(T, B, d)``.
    * Packed sequences (``nn.utils.rnn.pack_padded_sequence``) are unpacked to padded
      ``(T, B, d)``; the padding steps are recorded too, so prefer equal-length batches.
    * To record a layer inside a stack (e.g. a separate ``nn.LSTM`` per layer), hook that
      module instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def build_model():  # type: ignore[no-untyped-def]
    """Your trained model; here a small classifier with an embedding and a 2-layer LSTM."""
    import torch
    from torch import nn

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
            self.head = nn.Linear(16, 2)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(self.embed(tokens))
            return self.head(out[:, -1])

    torch.manual_seed(0)
    return Classifier().double()  # float64 throughout; load your checkpoint here


def batches() -> Iterator[object]:
    """Your data; here two batches of random token sequences of 20 steps."""
    import torch

    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        yield torch.randint(0, 50, (4, 20), generator=gen)


def record(model, module, data: Iterator[object]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Run ``data`` through ``model``; return what ``module`` received, as (T, B, d)."""
    import torch
    from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

    seen: list[np.ndarray] = []

    def hook(mod, args):  # type: ignore[no-untyped-def]
        x = args[0]
        if isinstance(x, PackedSequence):
            x, _ = pad_packed_sequence(x, batch_first=mod.batch_first)
        if x.dim() == 2:  # unbatched (T, d)
            x = x.unsqueeze(1 if not mod.batch_first else 0)
        if mod.batch_first:
            x = x.transpose(0, 1)
        seen.append(x.detach().to(torch.float64).cpu().numpy())

    handle = module.register_forward_pre_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            for batch in data:
                model(batch)
    finally:
        handle.remove()
    return np.concatenate(seen, axis=1)  # batches side by side: (T, B_total, d)


def main() -> None:
    from safetensors.torch import save_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("recorded"))
    args = parser.parse_args()
    model = build_model()
    inputs = record(model, model.lstm, batches())
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "inputs.npy", inputs)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out / "weights.safetensors"))
    print(f"inputs {inputs.shape} -> {args.out / 'inputs.npy'}")
    print(f"weights ({len(state)} tensors) -> {args.out / 'weights.safetensors'}")


if __name__ == "__main__":
    main()
