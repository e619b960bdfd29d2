"""gradflow against the autodiff computation a user would write with PyTorch and with JAX.

The task: for a batch of sequences, the log10 spectral norm of ``ds_T/ds_{T-k}`` for every lag
``k = 0..T`` (issue 14's peers table). What a user writes without gradflow:

PyTorch
    the rollout with the cell's step (PyTorch's own equations and gate orders), then, step by
    step backwards, ``torch.func.vmap(torch.func.jacrev(step))`` for the batch's Jacobians,
    the product ``P @ J_t``, renormalised by its Frobenius norm (a user who skips this gets 0
    or inf after a few hundred steps), and ``torch.linalg.matrix_norm(P, ord=2)`` per lag.
JAX
    the same with ``jax.vmap(jax.jacrev(step))``, the whole backward chain in one
    ``jax.lax.scan`` under ``jax.jit`` (compiled once, before timing), and
    ``jnp.linalg.norm(P, ord=2, axis=(1, 2))`` per lag.
gradflow
    ``analyze(cell, params, x, threads=1)``: Frobenius and certified spectral norms of every lag
    and the h block's (more than the peers compute); the compiled backend where it qualifies
    (the ``kernels`` column). ``--kernel``: the compiled Krylov kernel of the spectral norms
    (:mod:`gradflow.spectral_kernels`, numba) at any size, as a long run or a process analysing
    many cases gets it (``numpy+kernel``).

Same machine, same process, same run, one thread each (``torch.set_num_threads(1)``; XLA with
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``; one BLAS thread),
float64, process CPU time, best of ``--repeat`` (the first, compiling call excluded). The
peers' norms are checked against gradflow's: ``agree`` is the largest |difference| in log10
over every lag and sequence (1e-8 is the bar). PyTorch and JAX are optional: a missing one is
skipped; neither is a gradflow dependency.

Run: ``python benchmarks/peers.py [--configs 32:1000:16,...] [--markdown OUT.md]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from gradflow.cells import get_cell  # noqa: E402
from gradflow.engine import analyze  # noqa: E402
from gradflow.weights import to_torch_tensors  # noqa: E402

CONFIGS = [(32, 1000, 16), (128, 500, 8), (512, 100, 2)]
CELLS = ["rnn", "lstm", "gru"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def problem(name: str, n: int, steps: int, batch: int) -> tuple[Any, dict[str, Any], Any]:
    """The weights and inputs of ``benchmarks/engine_vs_floor.py`` (same seed and scales)."""
    rng = np.random.default_rng(0)
    cell = get_cell(name)
    d = 16
    params = {
        p.name: rng.standard_normal(p.numeric_shape(n, d))
        / (np.sqrt(p.numeric_shape(n, d)[-1]) if p.kind == "weight" else 10.0)
        for p in cell.parameters
    }
    return cell, params, rng.standard_normal((steps, batch, d))


def step_fn(name: str, w: dict[str, Any], lib: Any) -> Callable[[Any, Any], Any]:
    """One step ``s_t = f(s_{t-1}, x_t)`` for one sequence, PyTorch's equations, in ``lib``
    (``torch`` or ``jax.numpy``); the LSTM's state is ``[h; c]``."""
    wih, whh = w["weight_ih_l0"], w["weight_hh_l0"]
    bih, bhh = w["bias_ih_l0"], w["bias_hh_l0"]
    sig = (lambda v: 1 / (1 + lib.exp(-v))) if lib.__name__ != "torch" else lib.sigmoid
    n = whh.shape[1]

    def rnn(s: Any, x: Any) -> Any:
        return lib.tanh(wih @ x + bih + whh @ s + bhh)

    def lstm(s: Any, x: Any) -> Any:
        h, c = s[:n], s[n:]
        a = wih @ x + bih + whh @ h + bhh
        i, f, g, o = sig(a[:n]), sig(a[n : 2 * n]), lib.tanh(a[2 * n : 3 * n]), sig(a[3 * n :])
        c2 = f * c + i * g
        return lib.concatenate([o * lib.tanh(c2), c2])

    def gru(s: Any, x: Any) -> Any:
        gi, gh = wih @ x + bih, whh @ s + bhh
        r = sig(gi[:n] + gh[:n])
        z = sig(gi[n : 2 * n] + gh[n : 2 * n])
        m = lib.tanh(gi[2 * n :] + r * gh[2 * n :])
        return (1 - z) * m + z * s

    return {"rnn": rnn, "lstm": lstm, "gru": gru}[name]


def torch_norms(name: str, w: dict[str, Any], x: np.ndarray, m: int) -> np.ndarray:
    import torch
    from torch.func import jacrev, vmap

    tw = {k: torch.from_numpy(v) for k, v in w.items()}
    step = step_fn(name, tw, torch)
    xs = torch.from_numpy(x)
    T, B = x.shape[:2]
    with torch.no_grad():
        s = torch.zeros(B, m, dtype=torch.float64)
        states = [s]
        batched = vmap(step)
        for t in range(T):
            s = batched(s, xs[t])
            states.append(s)
        jac = vmap(jacrev(step))
        P = torch.eye(m, dtype=torch.float64).expand(B, m, m).clone()
        log_scale = torch.zeros(B, dtype=torch.float64)
        out = np.zeros((T + 1, B))
        for k in range(T):
            t = T - 1 - k
            P = P @ jac(states[t], xs[t])
            f = torch.linalg.matrix_norm(P)
            P = P / f[:, None, None]
            log_scale = log_scale + torch.log10(f)
            out[k + 1] = (torch.log10(torch.linalg.matrix_norm(P, ord=2)) + log_scale).numpy()
    return out


def jax_chain(name: str, w: dict[str, Any], m: int) -> Callable[[Any], Any]:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    step = step_fn(name, {k: jnp.asarray(v) for k, v in w.items()}, jnp)
    batched = jax.vmap(step)
    jac = jax.vmap(jax.jacrev(step))

    @jax.jit
    def run(xs: Any) -> Any:
        B = xs.shape[1]

        def forward(s: Any, x: Any) -> tuple[Any, Any]:
            s2 = batched(s, x)
            return s2, s

        _, before = jax.lax.scan(forward, jnp.zeros((B, m)), xs)  # s_{t-1} for every t

        def backward(carry: Any, sx: Any) -> tuple[Any, Any]:
            P, log_scale = carry
            P = P @ jac(*sx)
            f = jnp.sqrt(jnp.sum(P * P, axis=(1, 2)))
            P = P / f[:, None, None]
            log_scale = log_scale + jnp.log10(f)
            return (P, log_scale), jnp.log10(jnp.linalg.norm(P, ord=2, axis=(1, 2))) + log_scale

        P0 = jnp.broadcast_to(jnp.eye(m), (B, m, m))
        _, spec = jax.lax.scan(backward, (P0, jnp.zeros(B)), (before, xs), reverse=True)
        return spec[::-1]

    return run


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    out = fn()  # compiles (JAX, numba) and warms caches; not timed
    times = []
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        times.append(time.process_time() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--configs", help="n:T:B,... (default 32:1000:16,128:500:8,512:100:2)")
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--kernel", action="store_true", help="the compiled Krylov kernel forced")
    ap.add_argument("--no-peers", action="store_true", help="time gradflow only")
    args = ap.parse_args()
    if args.kernel:
        import gradflow.spectral as spectral

        spectral.COMPILED_WORK = 0
    configs = CONFIGS
    if args.configs:
        configs = [tuple(int(v) for v in c.split(":")) for c in args.configs.split(",")]
    have = {}
    try:
        if args.no_peers:
            raise ImportError
        import torch

        torch.set_num_threads(1)
        have["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        if args.no_peers:
            raise ImportError
        import jax

        have["jax"] = jax.__version__
    except ImportError:
        pass
    lines = [
        "one thread each (torch.set_num_threads(1); XLA single-threaded; one BLAS thread), "
        f"float64, process CPU time in s, best of {args.repeat} after a compiling call; "
        + ", ".join(f"{k} {v}" for k, v in have.items()),
        "",
        "| cell | n | T | B | gradflow s | kernels | PyTorch s | JAX s | faster peer / gradflow "
        "| agree (log10) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    with threadpool_limits(limits=1, user_api="blas"):
        for n, steps, batch in configs:
            for name in args.cells.split(","):
                cell, params, x = problem(name, n, steps, batch)
                m = cell.state_size(n)
                w = to_torch_tensors(cell, params)
                g_time, res = best(
                    lambda c=cell, p=params, x=x: analyze(c, p, x, threads=1), args.repeat
                )
                ref = np.asarray(res.log10_spectral_norm)
                peers: dict[str, float] = {}
                worst = 0.0
                if "torch" in have:
                    peers["torch"], got = best(
                        lambda c=name, w=w, x=x, m=m: torch_norms(c, w, x, m), args.repeat
                    )
                    worst = max(worst, float(np.abs(got[1:] - ref[1:]).max()))
                if "jax" in have:
                    run = jax_chain(name, w, m)
                    peers["jax"], got = best(lambda r=run, x=x: np.asarray(r(x)), args.repeat)
                    worst = max(worst, float(np.abs(got - ref[1:]).max()))
                fastest = min(peers.values()) if peers else float("nan")
                kernels = "compiled" if "compiled" in res.meta else "numpy"
                if kernels == "numpy" and "gradflow.spectral_kernels" in sys.modules:
                    kernels = "numpy+kernel"
                row = (
                    f"| {name} | {n} | {steps} | {batch} | {g_time:.3f} | {kernels} | "
                    + (f"{peers['torch']:.3f}" if "torch" in peers else "-")
                    + " | "
                    + (f"{peers['jax']:.3f}" if "jax" in peers else "-")
                    + f" | {fastest / g_time:.1f} | {worst:.1e} |"
                )
                lines.append(row)
                print(row, flush=True)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
