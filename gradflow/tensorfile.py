r"""Size-bounded, lazy readers for named-tensor files (``.safetensors``, ``.npz``).

A :class:`TensorFile` lists a file's tensor names, shapes and dtypes from its directory alone
(the safetensors JSON header, the zip central directory plus each ``.npy`` member's header) and
reads a tensor only when asked. Nothing is unpickled, and nothing is decompressed before its
size is known: a zip member whose declared size exceeds :data:`MAX_TENSOR_BYTES`, or whose
``.npy`` header claims more data than the member holds, is refused before a byte of it is
inflated, and members nobody asks for are never read (issue 13: a 4 MB ``.npz`` zip bomb used
to take 4.1 GB before it was refused, even as an unused member).

Examples:
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "t.npz")
    >>> np.savez(path, a=np.ones((2, 3)), b=np.zeros(4))
    >>> tf = open_tensor_file(path)
    >>> tf.format, tf.names, tf.shape("a"), tf.dtype("b")
    ('npz', ('a', 'b'), (2, 3), 'float64')
    >>> float(tf.read("a").sum())
    6.0
"""

from __future__ import annotations

import os
import stat
import tokenize
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UsageError, WeightsError

#: Largest file any reader opens (bytes).
MAX_FILE_BYTES = 16 * 2**30
#: Largest single tensor read from a file (bytes, uncompressed).
MAX_TENSOR_BYTES = 2 * 2**30
#: Largest ``.npy`` header accepted inside an ``.npz`` archive.
MAX_NPY_HEADER = 10_000

# What damaged files make the readers raise.
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
    MemoryError,
    UnicodeError,
    SyntaxError,
    tokenize.TokenError,
)


def corrupt(path: Path, exc: BaseException, err: type[UsageError] = WeightsError) -> UsageError:
    """The one-line error for a file a library could not parse."""
    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    return err(f"{path}: truncated or corrupt file, cannot be read ({detail})")


def check_regular_file(
    path: str | os.PathLike[str],
    err: type[UsageError] = WeightsError,
    *,
    what: str = "",
    note: str = "",
    max_bytes: int | None = None,
    too_big: str = "",
) -> os.stat_result:
    """Refuse, before any open, what is missing, unreadable, not a regular file (a FIFO would
    block, a device never end, a directory) or too big: the one check every reader of a user's
    file makes (weights, inputs, results, configs, cell files), one line naming the file.

    Args:
        path: the file.
        err: the error class raised.
        what: the kind of file (``"config"``), named in ``no such config file`` and ``cannot
            read the config file (reason)``; empty: ``no such file``, ``cannot be read
            (reason)``.
        note: added to ``not a regular file`` in parentheses (``a config must be a TOML file``).
        max_bytes: the size limit; None: the weight and input files' :data:`MAX_FILE_BYTES`.
        too_big: the message above the limit, formatted with ``path``, ``size`` and ``limit``
            (bytes); empty: ``{size} bytes is above the N GiB limit for a weight or input file``.

    Returns:
        The file's ``os.stat`` result.

    Raises:
        ``err``: as above.

    Examples:
        >>> check_regular_file("/nonexistent.toml", UsageError, what="config")
        Traceback (most recent call last):
        gradflow.errors.UsageError: /nonexistent.toml: no such config file
    """
    label = os.fspath(path)
    label = label if label.isprintable() else repr(label)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise err(f"{label}: no such {what + ' ' if what else ''}file") from None
    except (OSError, ValueError) as exc:  # symlink loop, permission, name too long, a NUL
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        read = f"cannot read the {what} file" if what else "cannot be read"
        raise err(f"{label}: {read} ({reason})") from None
    if not stat.S_ISREG(st.st_mode):
        raise err(f"{label}: not a regular file" + (f" ({note})" if note else ""))
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    if st.st_size > limit:
        raise err(
            too_big.format(path=label, size=st.st_size, limit=limit)
            if too_big
            else f"{label}: {st.st_size} bytes is above the {limit // 2**30} GiB limit "
            "for a weight or input file"
        )
    return st


@dataclass
class TensorFile:
    """A file's tensors by name: metadata up front, data on demand.

    Attributes:
        path: the file.
        format: ``"safetensors"`` or ``"npz"``.
        names: tensor names in file order.
    """

    path: Path
    format: str
    names: tuple[str, ...]
    _shapes: dict[str, tuple[int, ...]] = field(repr=False)
    _dtypes: dict[str, str] = field(repr=False)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def dtype(self, name: str) -> str:
        """NumPy's dtype name (``float32``), or safetensors' code for what NumPy lacks."""
        return self._dtypes[name]

    def read(self, name: str) -> np.ndarray:
        """One tensor's data (the file's dtype); raises :class:`WeightsError` if damaged."""
        if self.format == "safetensors":
            return _read_safetensors_tensor(self.path, name)
        return _read_npz_member(self.path, name)

    def lazy(self) -> LazyTensors:
        """A read-on-access mapping of every tensor."""
        return LazyTensors(self)


class LazyTensors(Mapping[str, np.ndarray]):
    """``Mapping`` view of a :class:`TensorFile` that reads a tensor when it is looked up."""

    def __init__(self, tf: TensorFile) -> None:
        self.file = tf
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            if key not in self.file._shapes:
                raise KeyError(key)
            self._cache[key] = self.file.read(key)
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.file.names)

    def __len__(self) -> int:
        return len(self.file.names)

    def __contains__(self, key: object) -> bool:
        return key in self.file._shapes


_ST_TO_NUMPY = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
    "C64": "complex64",
}


def open_tensor_file(path: str | os.PathLike[str]) -> TensorFile:
    """List a ``.safetensors`` or ``.npz`` file's tensors without reading their data.

    Raises:
        WeightsError: missing, not a regular file, too big, unknown suffix, or corrupt.
    """
    p = Path(path)
    check_regular_file(p)
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return _open_safetensors(p)
    if suffix == ".npz":
        return _open_npz(p)
    raise WeightsError(f"{p}: unknown tensor file extension {suffix!r}; use .safetensors or .npz")


def _errors(*extra: Any) -> tuple[type[BaseException], ...]:
    return (*extra, *READ_ERRORS)


def _open_safetensors(path: Path) -> TensorFile:
    from safetensors import SafetensorError, safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    try:
        with safe_open(str(path), framework="np") as fh:
            for key in fh.keys():
                sl = fh.get_slice(key)
                code = sl.get_dtype()
                shapes[key] = tuple(int(s) for s in sl.get_shape())
                dtypes[key] = _ST_TO_NUMPY.get(code, code)
    except _errors(SafetensorError) as exc:
        raise corrupt(path, exc) from None
    return TensorFile(path, "safetensors", tuple(shapes), shapes, dtypes)


def _read_safetensors_tensor(path: Path, name: str) -> np.ndarray:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as fh:
            return np.asarray(fh.get_tensor(name))
    except _errors(SafetensorError, TypeError, AttributeError) as exc:
        raise corrupt(path, exc) from None


def _npy_header(member: Any, path: Path, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    version = fmt.read_magic(member)
    if version == (1, 0):
        return fmt.read_array_header_1_0(member, max_header_size=MAX_NPY_HEADER)
    if version in ((2, 0), (3, 0)):
        return fmt.read_array_header_2_0(member, max_header_size=MAX_NPY_HEADER)
    raise WeightsError(f"{path}: {name} has .npy format version {version}, which is unknown")


def _members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {info.filename[:-4]: info for info in zf.infolist() if info.filename.endswith(".npy")}


def _check_member(
    info: zipfile.ZipInfo, header: tuple[tuple[int, ...], bool, np.dtype], path: Path, name: str
) -> None:
    shape, _, dtype = header
    if dtype.hasobject:
        raise WeightsError(
            f"{path}: {name} is an object array, which needs pickle and is never loaded; "
            "store float arrays"
        )
    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if nbytes > info.file_size:
        raise WeightsError(
            f"{path}: {name} claims shape {shape} ({nbytes} bytes) but its member holds "
            f"{info.file_size} bytes; the archive is corrupt"
        )


def _open_npz(path: Path) -> TensorFile:
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04" and path.stat().st_size > 0:
                fh.seek(0)
                head = fh.read(64)
                if head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
                    raise WeightsError(
                        f"{path}: not an .npz archive (it holds pickled data, which is never "
                        "loaded); convert with `safetensors.torch.save_file(model.state_dict(), "
                        "'w.safetensors')`"
                    )
                if head.startswith(b"\x93NUMPY"):
                    raise WeightsError(
                        f"{path}: holds a single array, not an .npz archive of named "
                        "tensors; save with np.savez(path, weight_ih_l0=..., ...)"
                    )
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                for name, info in _members(zf).items():
                    # Only the .npy header is inflated here: a few hundred bytes.
                    with zf.open(info) as member:
                        header = _npy_header(member, path, name)
                    _check_member(info, header, path, name)
                    shapes[name] = tuple(int(s) for s in header[0])
                    dtypes[name] = header[2].name
    except WeightsError:
        raise
    except READ_ERRORS as exc:
        raise corrupt(path, exc) from None
    return TensorFile(path, "npz", tuple(shapes), shapes, dtypes)


def _read_npz_member(path: Path, name: str) -> np.ndarray:
    try:
        with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
            info = _members(zf)[name]
            if info.file_size > MAX_TENSOR_BYTES:
                raise WeightsError(
                    f"{path}: {name} declares {info.file_size} bytes uncompressed, above the "
                    f"{MAX_TENSOR_BYTES // 2**20} MiB limit for one tensor; it is not read"
                )
            with zf.open(info) as member:
                header = _npy_header(member, path, name)
            _check_member(info, header, path, name)
            with zf.open(info) as member:
                return np.asarray(np.lib.format.read_array(member, allow_pickle=False))
    except WeightsError:
        raise
    except READ_ERRORS as exc:
        raise corrupt(path, exc) from None
