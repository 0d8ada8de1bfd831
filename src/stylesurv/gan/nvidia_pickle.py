"""Read NVIDIA StyleGAN `.pkl` snapshots as data: a restricted unpickler that never runs code from the file.

NVIDIA snapshots are pickles of `torch_utils.persistence` objects. Each network pickles as
`_reconstruct_persistent_obj(meta)` with `meta = {type, version, module_src, class_name, state}`, where
`module_src` is the Python source of the defining module and `state` the module's `__dict__` (parameters,
buffers, sub-modules, `_init_kwargs`). Loading such a file with `pickle.load` executes `module_src`. Here
every global the pickle names is looked up in an exact allowlist of data constructors and replaced by our
own safe stand-in; `module_src` is kept as an inert string; tensor storages (the legacy `torch.save` blobs
inside `torch.storage._load_from_bytes`, or the records of a zip file) are parsed by us.
Anything else is refused with a CheckpointError naming the global.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stylesurv.core.errors import CheckpointError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first pickle of a legacy (non-zip) torch.save file
LEGACY_PROTOCOL = 1001
MAX_STORAGE_ELEMENTS = 1 << 34  # 64 GB of float32: more than any StyleGAN2 holds, checked before allocating

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


@dataclass
class PersistentObject:
    """One `torch_utils.persistence` object read as data. `module_src` is text and is never executed."""

    class_name: str
    version: int
    module_src: str
    state: dict[str, Any] = field(repr=False)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor keyword arguments recorded by the persistence decorator."""
        return dict(self.state.get("_init_kwargs") or {})

    @property
    def init_args(self) -> tuple[Any, ...]:
        return tuple(self.state.get("_init_args") or ())

    @property
    def children(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The module's state dict: parameters, persistent buffers and those of all sub-modules."""
        out: dict[str, torch.Tensor] = {}
        skip = set(self.state.get("_non_persistent_buffers_set") or ())
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is None or (group == "_buffers" and name in skip):
                    continue
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"{prefix}{name} is not a tensor in the pickle")
                out[prefix + name] = value
        for name, child in self.children.items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise CheckpointError(f"sub-module {prefix}{name} is not a persistent StyleGAN object")
            out.update(child.tensors(f"{prefix}{name}."))
        return out


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict (attributes set by BUILD land in `__dict__`)."""


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for `torch.FloatStorage` etc.: only says which dtype a storage holds."""

    name: str

    @property
    def dtype(self) -> torch.dtype:
        return STORAGE_DTYPES[self.name]


def _version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise CheckpointError(f"a persistent object's version is {value!r}, not a number")
    return int(value)


def _persistent_object(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise CheckpointError("a persistent object in the pickle has no class meta data")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise CheckpointError(f"persistent object {meta.get('class_name')!r} has a non-dict state")
    return PersistentObject(
        class_name=str(meta.get("class_name")),
        version=_version(meta.get("version", 0)),
        module_src=str(meta.get("module_src") or ""),
        state=state,
    )


def _rebuild_tensor(
    storage: torch.Tensor,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise CheckpointError("a tensor in the pickle does not refer to a storage")
    try:
        return torch.as_strided(storage, tuple(size), tuple(stride), int(storage_offset))
    except RuntimeError as exc:
        raise CheckpointError(f"a tensor in the pickle does not fit its storage: {exc}") from exc


def _rebuild_parameter(data: torch.Tensor, *flags_and_hooks: Any) -> torch.Tensor:
    return data


def _numpy_scalar(dtype: np.dtype, data: Any = None) -> Any:
    if dtype.hasobject:
        raise CheckpointError("the pickle holds a numpy object scalar; refusing it")
    return np.frombuffer(bytes(data), dtype=dtype)[0].item()


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise CheckpointError(f"the pickle asks for codec {encoding!r}; refusing it")
    return text.encode(encoding)


def _torch_size(dims: Any = ()) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


_NP_RECONSTRUCT = np.array(0).__reduce__()[0]  # numpy's own ndarray constructor (core or _core module)

# The exact allowlist: (module, name) -> the object the unpickler hands out. Each entry builds plain data.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_object,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("_codecs", "encode"): _codecs_encode,
    ("torch", "Size"): _torch_size,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose globals come only from `_ALLOWED`; storages come from `storage_loader`."""

    def __init__(
        self,
        file: io.BufferedIOBase,
        source: str,
        storage_loader: Callable[[tuple[Any, ...]], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(file)
        self._source = source
        self._storage_loader = storage_loader

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return lambda blob: read_legacy_torch(bytes(blob), self._source)
        raise CheckpointError(
            f"{self._source}: refusing to load: the pickle references the global {module}.{name}, which is "
            "not on the allowlist of data-only constructors (it could run code). Only StyleGAN network "
            "snapshots are supported."
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._storage_loader is None or not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise CheckpointError(
                f"{self._source}: unexpected persistent reference in the pickle: {pid!r:.80}"
            )
        return self._storage_loader(pid)


def _storage_spec(pid: tuple[Any, ...], source: str) -> tuple[torch.dtype, str, int]:
    """(dtype, key, numel) of a ('storage', type, key, location, numel[, view]) persistent id."""
    if len(pid) < 5 or not isinstance(pid[1], _StorageType):
        raise CheckpointError(f"{source}: malformed storage reference {pid!r:.80}")
    if len(pid) > 5 and pid[5] is not None:
        raise CheckpointError(f"{source}: storage views (pre-1.0 torch files) are not supported")
    numel = pid[4]
    if isinstance(numel, bool) or not isinstance(numel, int) or not 0 <= numel <= MAX_STORAGE_ELEMENTS:
        raise CheckpointError(f"{source}: a tensor storage claims {numel!r} elements; the file is damaged")
    return pid[1].dtype, str(pid[2]), numel


def read_legacy_torch(blob: bytes, source: str) -> Any:
    """Parse a legacy (non-zip) `torch.save` stream: magic, protocol, sys info, object pickle, storages."""
    f = io.BytesIO(blob)
    if _RestrictedUnpickler(f, source).load() != LEGACY_MAGIC:
        raise CheckpointError(f"{source}: a tensor storage blob has the wrong magic number")
    if _RestrictedUnpickler(f, source).load() != LEGACY_PROTOCOL:
        raise CheckpointError(f"{source}: unsupported legacy torch serialisation protocol")
    sys_info = _RestrictedUnpickler(f, source).load()
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise CheckpointError(f"{source}: big-endian tensor data is not supported")
    storages: dict[str, torch.Tensor] = {}

    def load_storage(pid: tuple[Any, ...]) -> torch.Tensor:
        dtype, key, numel = _storage_spec(pid, source)
        if key not in storages:
            storages[key] = torch.empty(numel, dtype=dtype)
        return storages[key]

    obj = _RestrictedUnpickler(f, source, load_storage).load()
    keys = _RestrictedUnpickler(f, source).load()
    for key in keys:
        if key not in storages:
            raise CheckpointError(f"{source}: storage {key} has data but no tensor")
        target = storages[key]
        numel = int.from_bytes(f.read(8), "little")
        raw = f.read(numel * target.element_size())
        if numel != target.numel() or len(raw) != numel * target.element_size():
            raise CheckpointError(f"{source}: truncated tensor data for storage {key}")
        if numel:
            target.copy_(torch.frombuffer(bytearray(raw), dtype=target.dtype))
    return obj


def _read_zip(path_or_bytes: bytes, source: str) -> Any:
    with zipfile.ZipFile(io.BytesIO(path_or_bytes)) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise CheckpointError(f"{source}: a zip checkpoint must hold exactly one data.pkl")
        root = pickles[0][: -len("data.pkl")]

        def load_storage(pid: tuple[Any, ...]) -> torch.Tensor:
            dtype, key, numel = _storage_spec(pid, source)
            try:
                raw = archive.read(f"{root}data/{key}")
            except KeyError as exc:
                raise CheckpointError(f"{source}: missing tensor record data/{key}") from exc
            itemsize = torch.empty(0, dtype=dtype).element_size()
            if len(raw) < numel * itemsize:
                raise CheckpointError(f"{source}: truncated tensor record data/{key}")
            return (
                torch.frombuffer(bytearray(raw[: numel * itemsize]), dtype=dtype) if numel else torch.empty(0)
            )

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), source, load_storage).load()


def read_nvidia_pickle(data: bytes, source: str) -> Any:
    """Unpickle an NVIDIA snapshot (plain pickle or torch zip) into plain data and PersistentObjects."""
    try:
        if data[:4] == b"PK\x03\x04":
            return _read_zip(data, source)
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except CheckpointError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
        MemoryError,
        RuntimeError,
        zipfile.BadZipFile,
    ) as exc:  # fmt: skip  (a hostile pickle can make the restricted reader fail in any of these ways)
        raise CheckpointError(
            f"{source}: not a readable StyleGAN pickle ({type(exc).__name__}: {exc})"
        ) from exc
