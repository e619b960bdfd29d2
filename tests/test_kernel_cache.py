"""The disk cache of generated kernel source (gradflow.kernel_cache, used by codegen).

References: a cache hit is checked against the kernels generated afresh in the same process
(``generate_source``, the printer itself) and run on the same arrays, to the bit
(``np.array_equal``, tolerance 0: the same source must give the same numbers); and against the
source other processes print under other hash seeds (what a cached entry was made by). Corrupt
and foreign entries are built by hand from a valid one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gradflow import codegen, kernel_cache
from gradflow.cells import define_cell, get_cell
from gradflow.codegen import Kernels, generate_source
from gradflow.symbolic.jacobian import state_jacobian

ROOT = Path(__file__).resolve().parent.parent
CELLS = ["rnn", "lstm", "gru", "lstm-proj", "indrnn"]
USER = define_cell("cached-user", ["h"], {"a": "W @ x + U @ h + b", "h_new": "tanh(a) + 0.5*h"})


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "kernels"
    monkeypatch.setenv("GRADFLOW_CACHE_DIR", str(folder))
    monkeypatch.delenv("GRADFLOW_CACHE", raising=False)
    return folder


def _fresh(cell_name: str, path: str) -> Kernels:
    """Kernels built past the per-process cache (the lru_cache), so the disk cache is asked."""
    cell = USER if cell_name == USER.name else get_cell(cell_name)
    kern: Kernels = codegen._compile.__wrapped__(cell, path, "numpy")  # type: ignore[attr-defined]
    return kern


def _source(name: str, path: str) -> str:
    """The source the printer makes in this process, past every cache."""
    cell = get_cell(name)
    jac = state_jacobian(cell)
    jac = {"full": jac, "additive": jac.additive(), "multiplicative": jac.multiplicative()}[path]
    return generate_source(cell, jac)[0]


def _no_printing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the kernels were printed although a valid entry exists")

    monkeypatch.setattr(codegen, "generate_source", refuse)


def _outputs(kern: Kernels, seed: int = 0) -> list[np.ndarray]:
    """Every kernel's output on one random case (n = 3, d = 2, B = 4, 5 rows)."""
    cell = kern.cell
    rng = np.random.default_rng(seed)
    n, d, B = 3, 2, 4
    p = 2 if cell.has_second_size else None
    params = {q.name: rng.standard_normal(q.numeric_shape(n, d, p)) for q in cell.parameters}
    q = kern.pack(params)
    m = cell.state_size(n, p)
    s = rng.uniform(-0.9, 0.9, (B, m))
    s1, V = kern.step(s, kern.input_projection(rng.standard_normal((B, d)), q), q)
    F = kern.factors(V, q, (B, n))
    P = rng.standard_normal((B, 5, m))
    return [s1, *V, *F, kern.apply(P, F, q), kern.apply_vec(P, F, q), kern.jacobian(F, q, (B,))]


@pytest.mark.parametrize("name", [*CELLS, USER.name])
@pytest.mark.parametrize("path", ["full", "multiplicative"])
def test_a_hit_equals_the_freshly_generated_kernels_to_the_bit(
    name: str, path: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _fresh(name, path)  # a miss: printed and stored
    assert len(list(cache.glob("*.json"))) == 1
    with monkeypatch.context() as patch:
        _no_printing(patch)
        hit = _fresh(name, path)
    jac = state_jacobian(made.cell)
    jac = jac if path == "full" else jac.multiplicative()
    assert hit.source == made.source == generate_source(made.cell, jac)[0]
    assert hit.layout == made.layout
    for a, b in zip(_outputs(hit), _outputs(made), strict=True):
        assert np.array_equal(a, b)  # tolerance 0: the same source


def test_other_processes_print_the_same_source(tmp_path: Path) -> None:
    # what another process stored is what this one would print: the printer does not depend
    # on the hash seed (set iteration order), so an entry made elsewhere is the same text
    code = (
        "import hashlib\n"
        "from gradflow.codegen import compile_cell\n"
        "from gradflow.cells import get_cell\n"
        f"for name in {CELLS!r}:\n"
        "    for path in ('full', 'additive'):\n"
        "        src = compile_cell(get_cell(name), path=path).source\n"
        "        print(hashlib.sha256(src.encode()).hexdigest())\n"
    )
    seen = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed, "GRADFLOW_CACHE": "0"}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        seen.append(done.stdout.split())
    here = [
        hashlib.sha256(_source(name, path).encode()).hexdigest()
        for name in CELLS
        for path in ("full", "additive")
    ]
    assert seen[0] == seen[1] == here


def _entry(cache: Path) -> Path:
    (path,) = cache.glob("*.json")
    return path


def _tampered(text: str) -> dict[str, str]:
    """Ways an entry can go wrong, from a valid entry's text."""
    entry = json.loads(text)
    wrong_source = json.loads(text)
    wrong_source["payload"]["source"] += "\nraise SystemExit('foreign code ran')\n"
    wrong_key = json.loads(text)
    wrong_key["key"] = "0" * 64
    wrong_key["sha256"] = kernel_cache._digest(wrong_key["key"], wrong_key["payload"])
    # a correctly hashed entry whose metadata does not fit the cell: not trusted either
    bad_needed = json.loads(text)
    bad_needed["payload"]["needed"] = ["__import__"]
    bad_needed["sha256"] = kernel_cache._digest(entry["key"], bad_needed["payload"])
    return {
        "truncated": text[: len(text) // 2],
        "not json": "\x00\xff garbage",
        "source changed, old hash": json.dumps(wrong_source),
        "another key's entry": json.dumps(wrong_key),
        "metadata that does not fit": json.dumps(bad_needed),
        "a list": "[]",
    }


@pytest.mark.parametrize(
    "how",
    [
        "truncated",
        "not json",
        "source changed, old hash",
        "another key's entry",
        "metadata that does not fit",
        "a list",
    ],
)
def test_a_corrupt_or_foreign_entry_is_ignored_and_regenerated(how: str, cache: Path) -> None:
    made = _fresh("gru", "full")
    path = _entry(cache)
    good = path.read_text("utf-8")
    path.write_text(_tampered(good)[how], "utf-8")
    again = _fresh("gru", "full")  # regenerated (never exec'd: it would raise SystemExit)
    assert again.source == made.source
    assert path.read_text("utf-8") == good  # and stored again, valid


def test_an_unwritable_folder_works_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GRADFLOW_CACHE_DIR", str(blocker / "kernels"))
    kern = _fresh("lstm", "full")
    assert kern.source == _source("lstm", "full")
    assert kernel_cache.store("0" * 64, {"source": ""}) is False
    assert blocker.read_text() == "not a folder"
    # an entry path taken by a folder: neither read nor written over
    monkeypatch.setenv("GRADFLOW_CACHE_DIR", str(tmp_path / "k"))
    key = kernel_cache.entry_key(codegen.definition(get_cell("lstm"), "full"))
    (tmp_path / "k" / f"{key[:32]}.json").mkdir(parents=True)
    assert _fresh("lstm", "full").source == kern.source


def test_gradflow_cache_0_turns_it_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh("rnn", "full")
    assert len(list(cache.glob("*.json"))) == 1
    monkeypatch.setenv("GRADFLOW_CACHE", "0")
    key = kernel_cache.entry_key(codegen.definition(get_cell("rnn"), "full"))
    assert kernel_cache.load(key) is None
    _fresh("rnn", "additive")
    assert len(list(cache.glob("*.json"))) == 1  # nothing written
    monkeypatch.delenv("GRADFLOW_CACHE")
    assert kernel_cache.load(key) is not None
    # a package whose generator code cannot be read (a zip install) has no keys: cache off
    monkeypatch.setattr(kernel_cache, "generator_hash", lambda: "")
    assert not kernel_cache.enabled() and kernel_cache.load(key) is None


def test_the_key_follows_the_cell_the_path_and_the_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def key(cell: object, path: str = "full") -> str:
        return kernel_cache.entry_key(codegen.definition(cell, path))  # type: ignore[arg-type]

    other = define_cell("cached-user", ["h"], {"a": "W @ x + U @ h + b", "h_new": "tanh(a) + h/4"})
    keys = {key(USER), key(other), key(USER, "additive"), key(get_cell("rnn"))}
    assert len(keys) == 4
    assert key(USER) == key(
        define_cell(USER.name, ["h"], {"a": "W @ x + U @ h + b", "h_new": "tanh(a) + 0.5*h"})
    )
    monkeypatch.setattr(kernel_cache, "generator_hash", lambda: "edited generator")
    assert key(USER) not in keys


def test_with_a_warm_cache_analyze_prints_no_kernel_and_gives_the_same_numbers(
    tmp_path: Path,
) -> None:
    # end to end, in fresh processes: the first fills the cache, the second may not print
    code = (
        "import json, numpy as np, gradflow\n"
        "from gradflow import codegen\n"
        "if WARM:\n"
        "    def refuse(*a):\n"
        "        raise AssertionError('printed with a warm cache')\n"
        "    codegen.generate_source = refuse\n"
        "rng = np.random.default_rng(5)\n"
        "cell = gradflow.get_cell('lstm')\n"
        "p = gradflow.initialise(cell, 4, 2, gradflow.Init(), rng)\n"
        "r = gradflow.analyze(cell, p, rng.standard_normal((30, 2, 2)), paths=True,"
        " compiled=False)\n"
        "print(json.dumps(r.log10_spectral_norm.tolist()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADFLOW_CACHE_DIR": str(tmp_path / "k")}
    outs = [
        subprocess.run(
            [sys.executable, "-c", f"WARM = {warm}\n{code}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for warm in (False, True)
    ]
    assert len(list((tmp_path / "k").glob("*.json"))) == 3  # full, additive, multiplicative
    assert outs[0] == outs[1]  # to the bit: the same source
