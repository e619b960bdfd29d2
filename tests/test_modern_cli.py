"""The command line on the catalogue of issue 11: ``gradflow cells`` lists at least 24 cells,
``derive`` shows the matrix definitions (F4) and the additive path they sit on, and a cell file
with a ``[matrices]`` table runs through ``derive`` and ``analyze``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from gradflow.cells import CATALOGUE, load_cell_file
from gradflow.cells.catalogue import FAMILIES
from gradflow.cli import cli
from gradflow.engine import analyze

NEW = ("antisymmetric-rnn", "lipschitz-rnn", "mamba-s6")


def test_cells_lists_at_least_24_cells_with_the_new_ones() -> None:
    out = CliRunner().invoke(cli, ["cells", "-n", "8", "-d", "8"])
    assert out.exit_code == 0, out.output
    rows = [line.split()[0] for line in out.output.splitlines()[3:] if line.strip()]
    assert rows == list(CATALOGUE) and len(rows) >= 24  # issue 11: "at least 24 cells"
    assert set(NEW) <= set(rows)
    # every catalogue cell is in exactly one family (the report groups them by family)
    listed = [c for cells in FAMILIES.values() for c in cells]
    assert sorted(listed) == sorted(CATALOGUE) and len(listed) == len(set(listed))


def test_derive_shows_matrix_definitions_and_the_additive_path() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["derive", "antisymmetric-rnn", "--equations", "--paths"])
    assert out.exit_code == 0, out.output
    assert "M_h = W_h - transpose(W_h) - 0.01*I" in out.output
    add, mul = out.output.split("multiplicative path:")
    assert add.strip().endswith("dh_t/dh_{t-1} = I")  # docs §3.10: A_t = I
    assert "@ M_h" in mul
    out = runner.invoke(cli, ["derive", "lipschitz-rnn", "--paths"])
    add, mul = out.output.split("multiplicative path:")
    assert "@ A" in add and "@ W" in mul  # docs §3.11: I + eps A is additive
    # beta = 0.8: (1 - beta)(M + M^T) + beta (M - M^T) = M - 0.6 M^T
    out = runner.invoke(cli, ["derive", "lipschitz-rnn", "--equations"])
    assert "A = M_A - 0.6*transpose(M_A) - 0.01*I" in out.output


def test_cell_file_with_matrices_runs_through_analyze(tmp_path: Path) -> None:
    path = tmp_path / "my-asym.toml"
    path.write_text(
        'state = ["h"]\nconstants = {eps = 0.1, gamma = 0.05}\n'
        '[matrices]\nM = "W - transpose(W) - gamma * I"\n'
        '[equations]\na = "M @ h + V @ x + b"\nh_new = "h + eps * tanh(a)"\n',
        "utf-8",
    )
    runner = CliRunner()
    out = runner.invoke(cli, ["derive", "--cell-file", str(path)])
    assert out.exit_code == 0, out.output
    assert "dh_t/dh_{t-1} = I + diag(0.1*(1 - tanh(a)**2)) @ M" in out.output
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((6, 6)), "V": rng.standard_normal((6, 2)), "b": np.zeros(6)}
    x = rng.standard_normal((20, 2, 2))
    np.savez(tmp_path / "w.npz", **params)
    np.save(tmp_path / "x.npy", x)
    result = tmp_path / "out.json"
    args = ["analyze", "--cell-file", str(path), "--weights", str(tmp_path / "w.npz")]
    out = runner.invoke(cli, [*args, "--inputs", str(tmp_path / "x.npy"), "--output", str(result)])
    assert out.exit_code == 0, out.output
    # the CLI's JSON holds what the Python API computes (same code path: 1e-12 in log10)
    data = json.loads(result.read_text())
    want = analyze(load_cell_file(path), params, x).log10_spectral_norm
    got = np.array(_find(data, "log10_spectral_norm"), dtype=float)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def _find(data: object, key: str) -> object:
    """The first value stored under ``key`` anywhere in a JSON document."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for v in data.values():
            if (found := _find(v, key)) is not None:
                return found
    if isinstance(data, list):
        for v in data:
            if (found := _find(v, key)) is not None:
                return found
    return None


def test_bad_matrix_in_a_cell_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'state = ["h"]\n[matrices]\nM = "W @ W"\n[equations]\na = "M @ h"\nh_new = "tanh(a)"\n',
        "utf-8",
    )
    out = CliRunner().invoke(cli, ["derive", "--cell-file", str(path)])
    assert out.exit_code != 0
    assert "bad.toml:3: matrix 'M': products of two matrices" in out.output
    assert "Traceback" not in out.output


def test_heads_and_rows_cell_file_loads_its_weight_file(tmp_path: Path) -> None:
    # F2/F9 weights in a .npz: K (H, n/H, n/H) and w (n,) as stored; the CLI's result equals
    # the Python API's (same code path: 1e-12 in log10); n not a multiple of H is one line
    path = tmp_path / "hc.toml"
    path.write_text(
        'state = ["h"]\n[matrices]\nR = "heads(K, 2)"\nB = "rows(w)"\n'
        '[equations]\ns = "B @ h"\na = "R @ h + V @ x + b"\nh_new = "tanh(a) + 0.1 * s"\n',
        "utf-8",
    )
    rng = np.random.default_rng(0)
    params = {
        "K": rng.standard_normal((2, 2, 2)),
        "V": rng.standard_normal((4, 3)),
        "b": rng.standard_normal(4),
        "w": rng.standard_normal(4),
    }
    x = rng.standard_normal((10, 2, 3))
    np.savez(tmp_path / "w.npz", **params)
    np.save(tmp_path / "x.npy", x)
    args = ["analyze", "--cell-file", str(path), "--inputs", str(tmp_path / "x.npy")]
    out = CliRunner().invoke(
        cli, [*args, "--weights", str(tmp_path / "w.npz"), "--output", str(tmp_path / "o.json")]
    )
    assert out.exit_code == 0, out.output
    got = np.array(_find(json.loads((tmp_path / "o.json").read_text()), "log10_spectral_norm"))
    want = analyze(load_cell_file(path), params, x).log10_spectral_norm
    np.testing.assert_allclose(got.astype(float), want, rtol=0, atol=1e-12)
    params5 = {**params, "V": rng.standard_normal((5, 3)), "b": np.zeros(5), "w": np.zeros(5)}
    np.savez(tmp_path / "w5.npz", **params5)
    out = CliRunner().invoke(
        cli, [*args, "--weights", str(tmp_path / "w5.npz"), "--output", str(tmp_path / "5.json")]
    )
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "heads blocks must have shape (H, n/H, n/H) with H n/H = n = 5" in out.output
    assert not (tmp_path / "5.json").exists()
