"""gradflow: exact symbolic Jacobians and log-domain products for recurrent cells."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gradflow")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
