"""Read PyTorch checkpoints (``.pth``, ``.pth.tar``) into numpy arrays without importing torch.

Both ``torch.save`` formats are supported:

* the zip format (torch >= 1.6): ``<archive>/data.pkl`` plus one raw ``<archive>/data/<key>``
  entry per storage (``<archive>`` is any top-level directory name);
* the legacy format (``_use_new_zipfile_serialization=False``, e.g. the 2019 ECA-Net releases):
  magic-number, protocol and sys-info pickles, the main pickle, a pickle of the storage keys,
  then each storage as an 8-byte little-endian element count followed by its raw bytes.

Pickles are read by a restricted unpickler. Only the globals in ``_ALLOWED_GLOBALS`` (tensor
reconstruction, ``OrderedDict``, ``torch.Size``, a few inert builtins, numpy scalars) plus the
torch storage classes and dtypes in ``_STORAGE_DTYPES`` / ``_NUMPY_DTYPES`` can be resolved; the
torch and numpy names map to this module's own validating re-implementations, never to torch's
or numpy's functions. The BUILD opcode is only honoured for ``OrderedDict`` attributes (such as
``state_dict()._metadata``) and numpy dtypes. Anything else raises :class:`UnsafeCheckpointError`
before it can run; ``argparse.Namespace`` (often stored as ``args``) is deliberately refused.

Allocations are bounded by the file's size: a storage or a ``bytearray`` holds bytes the file
contains, and tensors copied out of shared or expanded storages may together take at most
:data:`COPY_BUDGET_FACTOR` times the file's size plus :data:`COPY_BUDGET_SLACK` bytes; a tiny
file claiming gigabytes is refused before anything is allocated.

Tensors become C-contiguous, writeable ``np.ndarray`` objects that never share memory with each
other. numpy has no bfloat16, so bfloat16 tensors are widened to float32 (exactly, by shifting
the 16 stored bits into the high half of a float32); bool tensors become ``np.bool_`` arrays.
"""

from __future__ import annotations

import _compat_pickle
import collections
import dataclasses
import io
import math
import operator
import os
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping

import numpy as np

__all__ = [
    "CheckpointFormatError",
    "UnsafeCheckpointError",
    "load_torch_checkpoint",
    "read_state_dict",
]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch dtype name -> numpy dtype of the stored bytes (bfloat16 and bool are decoded afterwards).
_NUMPY_DTYPES = {
    "float64": "f8",
    "float32": "f4",
    "float16": "f2",
    "bfloat16": "u2",
    "complex128": "c16",
    "complex64": "c8",
    "int64": "i8",
    "int32": "i4",
    "int16": "i2",
    "int8": "i1",
    "uint64": "u8",
    "uint32": "u4",
    "uint16": "u2",
    "uint8": "u1",
    "bool": "u1",
}
# torch storage class -> torch dtype name. UntypedStorage holds bytes; torch >= 2 writes it
# together with _rebuild_tensor_v3, which names the tensor dtype (e.g. ``torch.uint16``).
_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}
_TORCH_DTYPE_LIKE = re.compile(r"(b?float|complex|q?u?int|bits|bool)\w*|\w*Storage")
# (module, name) -> the object it resolves to; a str names a method of ``_Unpickler``.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): "_bytearray",
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): "_latin1_encode",  # how protocol 2 stores bytes
    ("torch._utils", "_rebuild_tensor"): "_rebuild_tensor",
    ("torch._utils", "_rebuild_tensor_v2"): "_rebuild_tensor_v2",
    ("torch._utils", "_rebuild_tensor_v3"): "_rebuild_tensor_v3",
    ("torch._utils", "_rebuild_parameter"): "_rebuild_parameter",
    ("torch._utils", "_rebuild_parameter_with_state"): "_rebuild_parameter",
    ("numpy.core.multiarray", "scalar"): "_numpy_scalar",
    ("numpy._core.multiarray", "scalar"): "_numpy_scalar",
    ("numpy", "dtype"): "_numpy_dtype",
}


# Bytes that tensors copied out of shared or stride-0 storages may take in all, per file byte
# (plus a fixed slack): ties and views in real checkpoints copy a few times the file at most.
COPY_BUDGET_FACTOR = 4
COPY_BUDGET_SLACK = 256 * 2**20


class UnsafeCheckpointError(ValueError):
    """The checkpoint's pickle references a global or operation outside the allow-list."""


class CheckpointFormatError(ValueError):
    """The file is not a PyTorch checkpoint, is truncated, or uses an unsupported feature."""


@dataclasses.dataclass(frozen=True, slots=True)
class _DType:
    """Stand-in for a torch storage class or dtype global; ``name`` is a torch dtype name."""

    name: str


@dataclasses.dataclass(slots=True)
class _Budget:
    """Bytes left for copies of tensors (see :data:`COPY_BUDGET_FACTOR`)."""

    left: int

    @classmethod
    def for_file(cls, file_size: int) -> _Budget:
        return cls(COPY_BUDGET_FACTOR * file_size + COPY_BUDGET_SLACK)

    def spend(self, nbytes: int, path: str) -> None:
        if nbytes > self.left:
            raise CheckpointFormatError(
                f"{path}: its tensors would take {nbytes:,} more bytes than the file holds "
                "(expanded or overlapping views); refusing to allocate them"
            )
        self.left -= nbytes


@dataclasses.dataclass(eq=False, slots=True)
class _Storage:
    """Raw bytes of one torch storage."""

    data: np.ndarray  # 1-D uint8
    dtype: str  # torch dtype name of the storage elements
    handed_out: bool = False  # the buffer itself already backs a returned array


def _is_c_contiguous(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    expected = 1
    for n, s in zip(reversed(size), reversed(stride), strict=True):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


class _StrictReader:
    """File wrapper that turns short reads into EOFError, checking lengths before reading.

    Without it the pure-Python unpickler would hand a truncated GLOBAL name to ``find_class``
    and allocate whatever length a corrupt opcode claims.
    """

    def __init__(self, file):
        self._file = file
        position = file.tell()
        self._size = file.seek(0, io.SEEK_END)
        file.seek(position)

    def read(self, n: int) -> bytes:
        if n > self._size - self._file.tell():
            raise EOFError("pickle data was truncated")
        return self._file.read(n)

    def readline(self) -> bytes:
        line = self._file.readline()
        if not line.endswith(b"\n"):
            raise EOFError("pickle data was truncated")
        return line


class _Unpickler(pickle._Unpickler):
    """Pure-Python unpickler with an allow-list for globals and a restricted BUILD opcode.

    The pure-Python implementation is used because the C one cannot restrict BUILD, which
    would otherwise call ``__setstate__`` / ``setattr`` on any reachable object.
    ``get_storage(key, dtype_name, numel)`` resolves storage persistent ids; when it is None,
    storages are refused. With ``scan=True`` tensors are not built (they load as None).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(
        self,
        file,
        path: str,
        get_storage: Callable[[str, str, int], _Storage | None] | None = None,
        byteorder: str = "<",
        scan: bool = False,
        budget: _Budget | None = None,
    ):
        super().__init__(_StrictReader(file), encoding="utf-8")
        self._budget = budget or _Budget(COPY_BUDGET_SLACK)
        self._path = path
        self._get_storage = get_storage
        self._byteorder = byteorder
        self._scan = scan
        self._views: dict[str, _Storage] = {}

    # -- pickle hooks ---------------------------------------------------------------------

    def find_class(self, module: str, name: str):
        if self.proto < 3:  # Python 2 names, as pickle's own fix_imports would map them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[module, name]
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is not None:
            return getattr(self, found) if isinstance(found, str) else found
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _DType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _NUMPY_DTYPES:
            return _DType(name)
        if module == "torch" and _TORCH_DTYPE_LIKE.fullmatch(name):
            raise CheckpointFormatError(f"{self._path}: unsupported tensor type torch.{name}")
        raise UnsafeCheckpointError(
            f"{self._path}: refusing to load global '{module}.{name}', which is not on the "
            "allow-list of tensor reconstructors; the file may be malicious and was not loaded"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise CheckpointFormatError(f"{self._path}: unsupported persistent id {pid!r:.100}")
        _, storage_type, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) == 6 else None
        if self._get_storage is None:
            raise CheckpointFormatError(f"{self._path}: unexpected storage reference")
        if not (isinstance(storage_type, _DType) and isinstance(key, str)):
            raise CheckpointFormatError(f"{self._path}: malformed storage id {pid!r:.100}")
        storage = self._get_storage(key, storage_type.name, operator.index(numel))
        if view is None or storage is None:
            return storage
        # Storage views, written by torch < 0.4: (view_key, offset, size) in elements.
        view_key, offset, size = view
        if view_key not in self._views:
            itemsize = np.dtype(_NUMPY_DTYPES[storage.dtype]).itemsize
            start = operator.index(offset) * itemsize
            stop = start + operator.index(size) * itemsize
            if not 0 <= start <= stop <= storage.data.size:
                raise CheckpointFormatError(f"{self._path}: storage view {view!r} out of range")
            self._views[view_key] = _Storage(storage.data[start:stop], storage.dtype, True)
        return self._views[view_key]

    def _load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is collections.OrderedDict and type(state) is dict:
            vars(inst).update(state)  # e.g. state_dict()._metadata
        elif isinstance(inst, np.dtype) and type(state) is tuple:
            inst.__setstate__(state)
        else:
            raise UnsafeCheckpointError(
                f"{self._path}: refusing to restore the state of a {type(inst).__name__!r} "
                "object; the file may be malicious and was not loaded"
            )

    dispatch[pickle.BUILD[0]] = _load_build

    def _load_bytearray8(self):
        (size,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(size)))  # the stock version allocates before reading

    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8

    # -- allowed reconstructors -------------------------------------------------------------

    def _rebuild_tensor(self, storage, storage_offset, size, stride):
        if self._scan:
            return None
        if not isinstance(storage, _Storage):
            raise CheckpointFormatError(f"{self._path}: tensor without a storage")
        return self._make_array(storage, storage.dtype, storage_offset, size, stride)

    def _rebuild_tensor_v2(
        self, storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None
    ):
        return self._rebuild_tensor(storage, storage_offset, size, stride)

    def _rebuild_tensor_v3(
        self,
        storage,
        storage_offset,
        size,
        stride,
        requires_grad,
        backward_hooks,
        dtype,
        metadata=None,
    ):
        if self._scan:
            return None
        if not (isinstance(storage, _Storage) and isinstance(dtype, _DType)):
            raise CheckpointFormatError(f"{self._path}: malformed tensor record")
        return self._make_array(storage, dtype.name, storage_offset, size, stride)

    @staticmethod
    def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
        return data

    def _bytearray(self, *args):
        """``bytearray`` as pickles store one (its bytes, or latin-1 text), never from a size:
        ``bytearray(n)`` would allocate whatever a 30-byte file asks for."""
        if not args:
            return bytearray()
        if len(args) == 1 and isinstance(args[0], bytes):
            return bytearray(args[0])
        if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
            return bytearray(args[0].encode("latin-1"))
        raise UnsafeCheckpointError(
            f"{self._path}: refusing bytearray{tuple(type(a).__name__ for a in args)}: only "
            "bytes stored in the file may build one; the file may be malicious and was not loaded"
        )

    def _latin1_encode(self, text, encoding):
        if not (isinstance(text, str) and encoding in ("latin1", "latin-1")):
            raise UnsafeCheckpointError(f"{self._path}: unexpected _codecs.encode arguments")
        return text.encode("latin-1")

    def _numpy_dtype(self, spec, align=False, copy=False):
        if not isinstance(spec, str):
            raise UnsafeCheckpointError(f"{self._path}: unexpected numpy.dtype arguments")
        return np.dtype(spec, align=bool(align), copy=True)  # copy: never mutate numpy's own

    def _numpy_scalar(self, dtype, data):
        ok = isinstance(dtype, np.dtype) and dtype.kind in "biufc" and dtype.names is None
        if not (ok and isinstance(data, bytes) and len(data) == dtype.itemsize):
            raise CheckpointFormatError(f"{self._path}: unsupported numpy scalar")
        return np.frombuffer(data, dtype=dtype)[0]

    def _make_array(self, storage: _Storage, dtype_name: str, offset, size, stride) -> np.ndarray:
        dtype = np.dtype(_NUMPY_DTYPES[dtype_name]).newbyteorder(self._byteorder)
        offset = operator.index(offset)
        size = tuple(map(operator.index, size))
        stride = tuple(map(operator.index, stride))
        if storage.data.size % dtype.itemsize:
            raise CheckpointFormatError(f"{self._path}: storage size is not a multiple of dtype")
        flat = storage.data.view(dtype)
        if len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0:
            raise CheckpointFormatError(f"{self._path}: invalid tensor geometry")
        if 0 in size:
            array = np.empty(size, dtype)  # no elements: nothing is allocated
        elif offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= flat.size:
            raise CheckpointFormatError(f"{self._path}: tensor exceeds its storage (truncated?)")
        elif (
            not storage.handed_out
            and offset == 0
            and math.prod(size) == flat.size
            and _is_c_contiguous(size, stride)
        ):
            storage.handed_out = True  # the whole storage, in order: use the buffer itself
            array = flat.reshape(size)
        else:
            self._budget.spend(math.prod(size) * dtype.itemsize, self._path)
            view = np.lib.stride_tricks.as_strided(
                flat[offset:], size, [s * dtype.itemsize for s in stride], writeable=False
            )
            array = np.array(view, order="C")
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if dtype_name == "bfloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif dtype_name == "bool":
            array = array != 0
        return array


# -- file formats ---------------------------------------------------------------------------


def _load_zip(file, path: str):
    file_size = os.fstat(file.fileno()).st_size
    budget = _Budget.for_file(file_size)
    with zipfile.ZipFile(file) as archive:
        names = set(archive.namelist())
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointFormatError(
                f"{path}: zip file without a single '<archive>/data.pkl'; not a torch.save file"
            )
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "<"
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").strip()
            if order not in (b"little", b"big"):
                raise CheckpointFormatError(f"{path}: unknown byteorder {order!r}")
            byteorder = "<" if order == b"little" else ">"
        storages: dict[str, _Storage] = {}

        def get_storage(key: str, dtype: str, numel: int) -> _Storage:
            if key not in storages:
                try:
                    info = archive.getinfo(f"{prefix}data/{key}")
                except KeyError:
                    raise CheckpointFormatError(f"{path}: storage {key!r} is missing") from None
                if info.file_size < numel * np.dtype(_NUMPY_DTYPES[dtype]).itemsize:
                    raise CheckpointFormatError(f"{path}: storage {key!r} is truncated")
                _check_entry_size(info, file_size, path)
                data = np.empty(info.file_size, np.uint8)
                with archive.open(info) as entry:
                    if entry.readinto(data) != info.file_size:
                        raise CheckpointFormatError(f"{path}: storage {key!r} is truncated")
                storages[key] = _Storage(data, dtype)
            return storages[key]

        _check_entry_size(archive.getinfo(pickles[0]), file_size, path)
        main = io.BytesIO(archive.read(pickles[0]))
        return _Unpickler(main, path, get_storage, byteorder, budget=budget).load()


def _check_entry_size(info, file_size: int, path: str) -> None:
    """torch.save stores its entries uncompressed: one that claims more bytes than the whole
    file (a zip bomb, or a forged size) is refused before anything is allocated."""
    if info.file_size > file_size:
        raise CheckpointFormatError(
            f"{path}: entry {info.filename!r} claims {info.file_size:,} bytes, more than the "
            f"file's {file_size:,}; not a torch.save file"
        )


def _load_legacy(file, path: str):
    if _Unpickler(file, path).load() != _LEGACY_MAGIC:
        raise CheckpointFormatError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    protocol = _Unpickler(file, path).load()
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointFormatError(f"{path}: unsupported legacy protocol {protocol!r}")
    _Unpickler(file, path).load()  # sys_info; storages are always little-endian
    main_start = file.tell()

    # Storages follow the main pickle, so read it twice: first only to learn the storage
    # dtypes (the pickle is small; tensor data lives in the storages), then for real.
    dtypes: dict[str, str] = {}

    def record_dtype(key: str, dtype: str, numel: int) -> None:
        if dtypes.setdefault(key, dtype) != dtype:
            raise CheckpointFormatError(f"{path}: storage {key!r} used with two dtypes")

    _Unpickler(file, path, record_dtype, scan=True).load()
    keys = _Unpickler(file, path).load()
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise CheckpointFormatError(f"{path}: malformed storage key list")
    file_size = os.fstat(file.fileno()).st_size
    storages: dict[str, _Storage] = {}
    for key in keys:
        if key not in dtypes:
            raise CheckpointFormatError(f"{path}: storage {key!r} is never referenced")
        header = file.read(8)
        if len(header) != 8:
            raise CheckpointFormatError(f"{path}: truncated before storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * np.dtype(_NUMPY_DTYPES[dtypes[key]]).itemsize
        if not 0 <= nbytes <= file_size - file.tell():
            raise CheckpointFormatError(f"{path}: storage {key!r} is truncated")
        data = np.empty(nbytes, np.uint8)
        if file.readinto(data) != nbytes:
            raise CheckpointFormatError(f"{path}: storage {key!r} is truncated")
        storages[key] = _Storage(data, dtypes[key])

    def get_storage(key: str, dtype: str, numel: int) -> _Storage:
        if key not in storages:
            raise CheckpointFormatError(f"{path}: storage {key!r} is missing")
        return storages[key]

    file.seek(main_start)
    return _Unpickler(file, path, get_storage, budget=_Budget.for_file(file_size)).load()


_DECODE_ERRORS = (
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    struct.error,
    zlib.error,
    NotImplementedError,  # zipfile: unknown compression method
    RuntimeError,  # zipfile: encrypted entry
    OSError,  # zipfile: seek to a corrupt offset (FileNotFoundError is raised before this)
    MemoryError,  # a size no bound above caught; nothing is kept
)


def load_torch_checkpoint(path: str | os.PathLike) -> object:
    """Load a ``torch.save`` file and return its top-level object with tensors as ndarrays.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: the pickle needs a global outside the allow-list.
        CheckpointFormatError: not a PyTorch checkpoint, truncated, or unsupported.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        head = file.read(4)
        file.seek(0)
        if head.startswith(b"PK"):
            load = _load_zip
        elif head.startswith(b"\x80"):
            load = _load_legacy
        else:
            raise CheckpointFormatError(
                f"{path}: not a PyTorch checkpoint (neither a zip archive nor a legacy pickle)"
            )
        try:
            return load(file, path)
        except (UnsafeCheckpointError, CheckpointFormatError):
            raise
        except _DECODE_ERRORS as error:
            raise CheckpointFormatError(
                f"{path}: corrupt or unsupported PyTorch checkpoint ({type(error).__name__}: "
                f"{error})"
            ) from error


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load the state dict of a checkpoint as ``{name: ndarray}`` in file order.

    A top-level ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper (training checkpoints)
    is unwrapped, and a leading ``"module."`` (``DataParallel``) is stripped from every key.
    """
    obj = load_torch_checkpoint(path)
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    state: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not (isinstance(key, str) and isinstance(value, np.ndarray)):
            raise CheckpointFormatError(f"{path}: entry {key!r} is not a tensor")
        name = key.removeprefix("module.")
        if name in state:
            raise CheckpointFormatError(f"{path}: duplicate key {name!r} after stripping")
        state[name] = value
    return state
