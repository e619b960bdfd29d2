"""The package version, in a leaf module that any layer may import."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gradflow")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
