"""The shipped trained checkpoints: where they are, their provenance, and loading them.

``gradflow/data/trained/`` holds small PyTorch checkpoints trained at development time by
``tests/reference/make_trained.py`` (see :mod:`gradflow.analysis.trained`); every file's
SHA-256 is in its JSON and in ``provenance.json``, and a file that differs is refused.

Examples:
    >>> sorted(CHECKPOINTS)
    ['gru', 'lstm', 'lstm2', 'rnn']
    >>> checkpoint_path("rnn", "init").name
    'rnn_init.safetensors'
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import UsageError, WeightsError
from ..formats import load_model
from ..formats.model import Model
from ..results.trained import STAGES

#: Where the checkpoints live (package data).
TRAINED_DIR = Path(__file__).resolve().parent.parent / "data" / "trained"
#: The checkpoints, in report order.
CHECKPOINTS = ("rnn", "lstm", "gru", "lstm2")


def checkpoint_path(name: str, stage: str) -> Path:
    """The weight file of checkpoint ``name`` at ``stage`` (``init`` or ``trained``).

    Raises:
        UsageError: an unknown name or stage.
    """
    if name not in CHECKPOINTS:
        raise UsageError(f"unknown checkpoint {name!r}; choose one of {', '.join(CHECKPOINTS)}")
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; choose init or trained")
    return TRAINED_DIR / f"{name}_{stage}.safetensors"


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot read the checkpoint description ({exc})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a JSON object")
    return data


def provenance() -> dict[str, Any]:
    """``provenance.json``: script, torch version, seeds, task, metric and file hashes."""
    return _json(TRAINED_DIR / "provenance.json")


def checkpoint_config(name: str) -> dict[str, Any]:
    """The training configuration and curve of checkpoint ``name`` (its JSON)."""
    checkpoint_path(name, "init")  # validates the name
    return _json(TRAINED_DIR / f"{name}.json")


def verify_checkpoint(name: str, stage: str) -> Path:
    """The checkpoint's path, after checking its SHA-256 against the provenance.

    Raises:
        WeightsError: the file differs from the one the training script wrote.
    """
    path = checkpoint_path(name, stage)
    want = checkpoint_config(name)["files"][stage]["sha256"]
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != want:
        raise WeightsError(f"{path}: SHA-256 {got[:12]}... differs from the provenance's")
    return path


def load_checkpoint(name: str, stage: str) -> Model:
    """Checkpoint ``name`` at ``stage`` read by gradflow's own loader (hash checked)."""
    return load_model(verify_checkpoint(name, stage), prefix="rnn")
