"""Train the small checkpoints of gradflow/data/trained/ and their autograd references.

Development time only (gradflow never imports torch)::

    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python tests/reference/make_trained.py

The task is the adding problem (Hochreiter & Schmidhuber 1997, experiment 4; Le et al. 2015,
sec. 4.1) of length ``T = 100``, with the sequences of :func:`gradflow.analysis.adding.
adding_problem` (NumPy, seeded: training batch ``s`` uses seed ``TRAIN_SEED + s``, the test
set ``TEST_SEED``). Models: a 1-layer ``nn.RNN`` (tanh), ``nn.LSTM`` and ``nn.GRU`` with
n = 64, and a 2-layer ``nn.LSTM`` with n = 32 (the stack views), each followed by a linear
read-out of the top layer's last ``h``, trained with Adam on the mean squared error, gradients
clipped to norm 1. Deterministic: ``torch.manual_seed``, ``torch.use_deterministic_algorithms``,
one thread. Every model takes well under a minute of one CPU core.

For each model ``NAME`` it writes, into gradflow/data/trained/:

* ``NAME_init.safetensors`` and ``NAME_trained.safetensors``: the module's ``state_dict``
  under the prefix ``rnn.`` (PyTorch names) and the read-out as ``head.weight``/``head.bias``
  (unrelated tensors, which gradflow's loader lists and skips), float32 as trained;
* ``NAME.json``: the configuration, the training curve (loss per step), the final test MSE
  against the baseline 1/6 of always predicting 1, and the SHA-256 of both weight files;

and ``provenance.json`` (script, torch version, seeds, task, metric, files). Into
tests/data/trained/ it writes ``reference.json``: for the single-layer models, at
initialisation and after training, ``log10 ||ds_T/ds_{T-k}||_2`` (and Frobenius) at the lags
``REF_LAGS`` for each sequence of ``adding_problem(ANALYSIS_STEPS, ANALYSIS_BATCH,
ANALYSIS_SEED)``, computed in float64 from the stored float32 weights by
``torch.autograd.functional.jacobian`` of the ``k``-step map ``s_{T-k} -> s_T`` (``s = h``, or
``[h; c]`` for the LSTM), nothing from gradflow but the inputs.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gradflow.analysis.adding import BASELINE_MSE, adding_problem  # noqa: E402

OUT = ROOT / "gradflow" / "data" / "trained"
REF = ROOT / "tests" / "data" / "trained"
STEPS = 100  # sequence length of the task
BATCH = 64
TRAIN_SEED, TEST_SEED, TORCH_SEED = 10_000, 999, 0
TEST_BATCH = 1000
ANALYSIS_STEPS, ANALYSIS_BATCH, ANALYSIS_SEED = 100, 4, 7
REF_LAGS = (1, 10, 50, 100)
#: name -> (torch module, hidden size, layers, training steps, learning rate)
MODELS = {
    "rnn": ("RNN", 64, 1, 2000, 1e-3),
    "lstm": ("LSTM", 64, 1, 2000, 1e-2),
    "gru": ("GRU", 64, 1, 2000, 1e-2),
    "lstm2": ("LSTM", 32, 2, 2000, 1e-2),
}


def _net(kind: str, n: int, layers: int):
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(2, n, num_layers=layers)
            self.head = torch.nn.Linear(n, 1)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[-1])[:, 0]

    return Net()


def _state(net) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float32).copy() for k, v in net.state_dict().items()}


def _save(path: Path, tensors: dict[str, np.ndarray]) -> str:
    from safetensors.numpy import save_file

    save_file(dict(sorted(tensors.items())), str(path), metadata={"format": "pt"})
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(name: str) -> dict:
    import torch

    kind, n, layers, steps, lr = MODELS[name]
    torch.manual_seed(TORCH_SEED + list(MODELS).index(name))
    net = _net(kind, n, layers)
    init = _state(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = adding_problem(STEPS, TEST_BATCH, TEST_SEED)
    x_test, y_test = torch.from_numpy(xt).float(), torch.from_numpy(yt).float()
    losses = []
    started = time.process_time()
    for s in range(steps):
        x, y = adding_problem(STEPS, BATCH, TRAIN_SEED + s)
        loss = torch.mean((net(torch.from_numpy(x).float()) - torch.from_numpy(y).float()) ** 2)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    seconds = time.process_time() - started
    with torch.no_grad():
        mse = float(torch.mean((net(x_test) - y_test) ** 2))
    trained = _state(net)
    hashes = {
        "init": _save(OUT / f"{name}_init.safetensors", init),
        "trained": _save(OUT / f"{name}_trained.safetensors", trained),
    }
    print(f"{name}: test MSE {mse:.4f} (baseline {BASELINE_MSE:.4f}), {seconds:.0f} s CPU")
    return {
        "name": name,
        "module": f"torch.nn.{kind}",
        "cell": kind.lower(),
        "hidden_size": n,
        "input_size": 2,
        "num_layers": layers,
        "prefix": "rnn",
        "readout": "head: Linear(n, 1) on the top layer's h_T",
        "optimizer": "Adam",
        "learning_rate": lr,
        "gradient_clip_norm": 1.0,
        "batch": BATCH,
        "training_steps": steps,
        "sequence_length": STEPS,
        "loss": "mean squared error",
        "training_loss": [round(v, 6) for v in losses],
        "test_sequences": TEST_BATCH,
        "test_mse": round(mse, 6),
        "baseline_mse": BASELINE_MSE,
        "files": {
            stage: {"file": f"{name}_{stage}.safetensors", "sha256": h}
            for stage, h in hashes.items()
        },
        "shapes": {k: list(v.shape) for k, v in sorted(trained.items())},
    }


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else -math.inf


def reference(name: str, stage: str) -> dict:
    """Autograd norms of ``ds_T/ds_{T-k}`` for the stored (float32) weights, in float64."""
    import torch
    from safetensors.numpy import load_file

    kind, n, layers, _, _ = MODELS[name]
    assert layers == 1
    w = load_file(str(OUT / f"{name}_{stage}.safetensors"))
    cell = getattr(torch.nn, kind + "Cell")(2, n, dtype=torch.float64)
    with torch.no_grad():
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, p).copy_(torch.from_numpy(w[f"rnn.{p}_l0"].astype(np.float64)))
    x, _ = adding_problem(ANALYSIS_STEPS, ANALYSIS_BATCH, ANALYSIS_SEED)
    xs = torch.from_numpy(x)

    def step(s, xt):
        if kind == "LSTM":
            h, c = cell(xt[None], (s[None, :n], s[None, n:]))
            return torch.cat([h[0], c[0]])
        return cell(xt[None], s[None])[0]

    m = 2 * n if kind == "LSTM" else n
    out: dict[str, list[list[float]]] = {"log10_spectral_norm": [], "log10_frobenius_norm": []}
    for b in range(ANALYSIS_BATCH):
        states = [torch.zeros(m, dtype=torch.float64)]
        with torch.no_grad():
            for t in range(ANALYSIS_STEPS):
                states.append(step(states[-1], xs[t, b]))
        spec, frob = [], []
        for k in REF_LAGS:
            start = ANALYSIS_STEPS - k

            def run(s, start=start, b=b):
                for t in range(start, ANALYSIS_STEPS):
                    s = step(s, xs[t, b])
                return s

            J = torch.autograd.functional.jacobian(run, states[start])
            spec.append(_log10(torch.linalg.matrix_norm(J, ord=2).item()))
            frob.append(_log10(torch.linalg.matrix_norm(J, ord="fro").item()))
        out["log10_spectral_norm"].append(spec)
        out["log10_frobenius_norm"].append(frob)
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    REF.mkdir(parents=True, exist_ok=True)
    models = {}
    for name in MODELS:
        cfg = train(name)
        (OUT / f"{name}.json").write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
        models[name] = {
            "config": f"{name}.json",
            "files": cfg["files"],
            "test_mse": cfg["test_mse"],
        }
    provenance = {
        "script": "tests/reference/make_trained.py",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "seeds": {"torch": TORCH_SEED, "train_batches": TRAIN_SEED, "test": TEST_SEED},
        "deterministic": "torch.use_deterministic_algorithms(True), torch.set_num_threads(1)",
        "task": {
            "name": "adding problem",
            "generator": "gradflow.analysis.adding.adding_problem",
            "sequence_length": STEPS,
            "input_size": 2,
            "references": ["hochreiter1997", "le2015irnn"],
        },
        "metric": {
            "name": "test mean squared error",
            "test_sequences": TEST_BATCH,
            "baseline": "always predict 1: 1/6",
            "baseline_mse": BASELINE_MSE,
        },
        "dtype": "float32 (as trained)",
        "models": models,
    }
    (OUT / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n", "utf-8")
    ref = {
        "script": "tests/reference/make_trained.py",
        "torch_version": torch.__version__,
        "inputs": {
            "generator": "gradflow.analysis.adding.adding_problem",
            "steps": ANALYSIS_STEPS,
            "batch": ANALYSIS_BATCH,
            "seed": ANALYSIS_SEED,
        },
        "lags": list(REF_LAGS),
        "layout": "per model and stage: [sequence][lag index]",
        "models": {
            name: {stage: reference(name, stage) for stage in ("init", "trained")}
            for name in ("rnn", "lstm", "gru")
        },
    }
    (REF / "reference.json").write_text(json.dumps(ref, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
