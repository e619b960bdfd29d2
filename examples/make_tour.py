"""Execute ``gradflow_tour.ipynb`` and store it with its outputs, so a code host shows them.

Run from the repository root::

    PYTHONPATH=$PWD python examples/make_tour.py          # rewrite the notebook in place
    PYTHONPATH=$PWD python examples/make_tour.py --check  # exit 1 if the stored outputs are stale

The kernel runs *this* interpreter (a temporary kernelspec put first on ``JUPYTER_PATH``), so
the outputs come from the gradflow being developed. Volatile metadata (execution timestamps,
the kernel's Python version) is stripped and the kernelspec fixed, so two runs write the same
bytes with one matplotlib. Needs the ``notebook`` extra (nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

NOTEBOOK = Path(__file__).with_name("gradflow_tour.ipynb")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def execute(path: Path = NOTEBOOK, timeout: int = 300) -> Any:
    """The notebook at ``path``, executed top to bottom; raises on the first failing cell."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "jupyter" / "kernels" / "python3"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "gradflow", "language": "python"})
        )
        env = {
            "JUPYTER_PATH": str(Path(tmp) / "jupyter"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONHASHSEED": "0",
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            client = nbclient.NotebookClient(
                nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": tmp}}
            )
            client.execute()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return clean(nb)


def clean(nb: Any) -> Any:
    """``nb`` without volatile metadata: timestamps, kernel versions, widget state."""
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            out.get("metadata", {}).pop("execution", None)
    return nb


def text(nb: Any) -> str:
    """The notebook as the bytes ``nbformat`` writes."""
    import nbformat

    return nbformat.writes(nb) + "\n"


def main(argv: list[str]) -> int:
    nb = execute()
    new = text(nb)
    if "--check" in argv:
        stale = NOTEBOOK.read_text(encoding="utf-8") != new
        if stale:
            print(f"{NOTEBOOK} is stale: run python examples/make_tour.py", file=sys.stderr)
        return int(stale)
    NOTEBOOK.write_text(new, encoding="utf-8")
    print(NOTEBOOK)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
