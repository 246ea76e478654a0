"""Read DeepMind's released MMV checkpoints into a flat ``{"module/path:leaf": np.ndarray}`` dict, without jax.

The official checkpoints (``mmv_s3d.pkl``, ``mmv_tsm_resnet_x1.pkl``, ``mmv_tsm_resnet_x2.pkl``) are ``dill``
pickles, written around October 2020 with Haiku ~0.0.2 and jax ~0.2, of ``{"params": ..., "state": ...}``,
each a Haiku mapping ``{module_path: {leaf_name: array}}``. We cannot rely on jax, Haiku or dill being
installed, and a pickle can call any importable function while it loads, so a plain ``pickle.load`` is out
of the question. :class:`_RestrictedUnpickler` instead answers every global the file asks for from a short
allow list (:data:`_ALLOWED`): numpy's array/dtype rebuilders (wrapped so their arguments are checked first),
plain containers, and small stand-ins for the Haiku/jax/dill helpers that turn into plain dicts and numpy
arrays. Anything else is refused *before* it could be called. The file's contents are then validated (a
mapping of mappings of numeric arrays) and flattened; every later step works on plain numpy data.

A checkpoint this reader refuses can still be converted: export it to a flat ``.npz`` from a Python that
has jax/Haiku (see :data:`NPZ_EXPORT_COMMAND`) and read that with :func:`load_official_npz`.
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.multiarray import scalar as _np_scalar
    from numpy._core.numeric import _frombuffer as _np_frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
    from numpy.core.multiarray import scalar as _np_scalar
    from numpy.core.numeric import _frombuffer as _np_frombuffer

PathLike = str | os.PathLike[str]
FlatTree = dict[str, np.ndarray]

NPZ_EXPORT_COMMAND = (
    "python -c \"import pickle, numpy as np; c = pickle.load(open('mmv_s3d.pkl', 'rb')); "
    "np.savez('mmv_s3d.npz', **{f'{m}:{k}': np.asarray(v) for t in (c['params'], c.get('state', {})) "
    'for m, d in t.items() for k, v in d.items()})"'
)
"""One line that exports an official checkpoint to the flat ``.npz`` that :func:`load_official_npz` reads.
Run it where jax, Haiku and dill are installed: it unpickles the file the ordinary (trusting) way."""

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = 0x80  # PROTO opcode: every pickle of protocol >= 2 starts with it
_NUMERIC_KINDS = frozenset("biufc")  # bool, signed, unsigned, float, complex
_COLLECTIONS = ("params", "state")
# Python 3 writes protocol < 3 pickles with Python 2 module names (``fix_imports``); the stock find_class
# maps them back, ours has to do it itself.
_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# What a file that failed the magic-byte check most likely is, to make the error actionable.
_KNOWN_SIGNATURES = {
    b"\x1f\x8b": "a gzip file (decompress it first)",
    b"\x89HDF": "an HDF5 file",
    b"\x93NUMPY": "a single .npy array (expected an .npz of all leaves)",
    b"version ": "a Git LFS pointer, not the checkpoint itself",
    b"<": "an HTML/XML page (a failed download?)",
}


class OfficialCheckpointError(ValueError):
    """An official checkpoint could not be read safely: wrong format, unexpected content, or a pickle that asks
    for something outside the allow list. The message says what was found and what to do about it."""


def _type_name(obj: object) -> str:
    return getattr(type(obj), "haiku_name", type(obj).__name__)


def _needs_jax(what: str) -> str:
    return (
        f"{what} was pickled as (leaves, PyTreeDef); rebuilding that needs jax's pytree machinery, which this "
        f"reader deliberately does without. Export the checkpoint to a flat .npz instead: {NPZ_EXPORT_COMMAND}"
    )


# ---------------------------------------------------------------------------------------------------------------
# numpy rebuilders: the real functions, called only after their arguments are checked.


def _check_dtype(dtype: object) -> np.dtype:
    """Object dtypes are refused everywhere: their payload would be arbitrary Python objects, not numbers."""
    if not isinstance(dtype, np.dtype):
        raise OfficialCheckpointError(f"expected a numpy dtype, found a {_type_name(dtype)}")
    if dtype.hasobject:
        raise OfficialCheckpointError(f"refusing a numpy array/scalar of object dtype {dtype}")
    return dtype


def _check_shape(shape: object) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise OfficialCheckpointError(f"expected an array shape (tuple of ints), found {shape!r:.80}")
    return shape


def _safe_reconstruct(cls: object, shape: object, typecode: object) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` for plain ``np.ndarray`` only (no subclasses: their state could
    carry anything); the array's contents arrive afterwards through ``ndarray.__setstate__``."""
    if cls is not np.ndarray:
        raise OfficialCheckpointError(f"_reconstruct may only build numpy.ndarray, not {cls!r:.80}")
    if not isinstance(typecode, bytes | str):
        raise OfficialCheckpointError(f"_reconstruct expects a typecode, found a {_type_name(typecode)}")
    return _np_reconstruct(np.ndarray, _check_shape(shape), typecode)


def _safe_scalar(dtype: object, data: object = None) -> np.generic:
    """``numpy.core.multiarray.scalar``: a numpy scalar from its dtype and raw bytes (``str`` from a Python 2
    pickle read with ``encoding="latin1"``)."""
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(data, bytes):
        raise OfficialCheckpointError(f"numpy scalar data must be bytes, found a {_type_name(data)}")
    return _np_scalar(_check_dtype(dtype), data)


def _safe_frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """``numpy.core.numeric._frombuffer``, which numpy uses for pickle protocol 5."""
    if not isinstance(buf, bytes | bytearray):
        raise OfficialCheckpointError(f"numpy buffer must be bytes, found a {_type_name(buf)}")
    if order not in ("C", "F"):
        raise OfficialCheckpointError(f"numpy buffer order must be 'C' or 'F', found {order!r:.20}")
    return _np_frombuffer(buf, _check_dtype(dtype), _check_shape(shape), order)


def _safe_codecs_encode(text: object, encoding: object = "utf-8") -> bytes:
    """``_codecs.encode``: how Python 3 writes ``bytes`` (e.g. array data) into protocol-2 pickles."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise OfficialCheckpointError("_codecs.encode is only allowed for the latin1 text of a bytes object")
    return text.encode("latin1")


def _safe_bytes(*args: object) -> bytes:
    """``builtins.bytes``: protocol < 3 writes an empty ``bytes`` (a size-0 array's data) as ``bytes()``."""
    if args:
        raise OfficialCheckpointError("builtins.bytes is only allowed without arguments")
    return b""


# ---------------------------------------------------------------------------------------------------------------
# Stand-ins for Haiku's immutable mappings: plain dicts that accept the ways Haiku pickled them.


class _HaikuMapping(dict):
    """A ``dict`` standing in for a Haiku mapping class.

    Haiku pickled its mappings either through ``__reduce__`` as ``(cls, (mapping,))`` (frozendict in Haiku
    0.0.2, later FlatMap), or with the default object protocol: ``cls.__new__`` then ``__setstate__`` with the
    instance attributes (``__dict__``, or ``(None, slots)`` for slotted classes) holding the mapping under
    ``_mapping``, ``_dict`` or ``_storage``. The intermediate ``FlatMapping`` kept only ``(leaves, structure)``,
    which cannot be rebuilt without jax.
    """

    haiku_name = "Mapping"

    def __init__(self, data: object = None, *_flags: object) -> None:
        super().__init__()
        if data is not None:
            self._absorb(data)

    def __setstate__(self, state: object) -> None:
        attrs: dict[Any, Any] = {}
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
        for part in parts:
            if isinstance(part, Mapping):
                attrs.update(part)
            elif part is not None:
                raise OfficialCheckpointError(f"haiku {self.haiku_name} has state of type {_type_name(part)}")
        for name in ("_mapping", "_dict", "_storage"):
            if isinstance(attrs.get(name), Mapping):
                self._absorb(attrs[name])
                return
        if "_leaves" in attrs or "_structure" in attrs:
            raise OfficialCheckpointError(_needs_jax(f"haiku {self.haiku_name}"))
        raise OfficialCheckpointError(
            f"haiku {self.haiku_name} state has no mapping (attributes: {sorted(map(str, attrs))[:8]})"
        )

    def _absorb(self, data: object) -> None:
        if isinstance(data, Mapping):
            self.update(data)
        elif isinstance(data, tuple | list) and len(data) == 2:
            raise OfficialCheckpointError(_needs_jax(f"haiku {self.haiku_name}"))
        else:
            raise OfficialCheckpointError(f"haiku {self.haiku_name} was pickled with a {_type_name(data)}")


class _FrozenDict(_HaikuMapping):
    haiku_name = "frozendict"


class _FlatMapping(_HaikuMapping):
    haiku_name = "FlatMapping"


class _FlatMap(_HaikuMapping):
    haiku_name = "FlatMap"


_STAND_INS = (_FrozenDict, _FlatMapping, _FlatMap)


def _safe_reconstructor(cls: object, base: object, state: object) -> _HaikuMapping:
    """``copyreg._reconstructor``, how protocols 0/1 rebuild plain objects; only for the Haiku stand-ins."""
    if cls not in _STAND_INS or base is not object or state is not None:
        raise OfficialCheckpointError(f"copyreg._reconstructor is only allowed for Haiku mappings, not {cls!r:.80}")
    return cls.__new__(cls)


def _safe_newobj(cls: object, *args: object) -> _HaikuMapping:
    """``copyreg.__newobj__`` (protocols >= 2 normally use the NEWOBJ opcode instead); Haiku stand-ins only."""
    if cls not in _STAND_INS:
        raise OfficialCheckpointError(f"copyreg.__newobj__ is only allowed for Haiku mappings, not {cls!r:.80}")
    return cls.__new__(cls, *args)


# ---------------------------------------------------------------------------------------------------------------
# jax and dill helpers: rebuild the numpy array they wrap, and nothing else.


def _array_from_state(fun: object, args: object, state: object, who: str) -> np.ndarray:
    """The shared body of jax's ``reconstruct_device_array`` and dill's ``_create_array``: ``fun(*args)`` then
    ``__setstate__``, where ``fun`` must be our (already checked) ``_reconstruct``."""
    if fun is not _safe_reconstruct or not isinstance(args, tuple):
        raise OfficialCheckpointError(f"{who} may only rebuild arrays with numpy's _reconstruct")
    array = fun(*args)
    array.__setstate__(state)
    _check_dtype(array.dtype)
    return array


def _jax_reconstruct_device_array(fun: object, args: object, arr_state: object, aval_state: object) -> np.ndarray:
    """jax's DeviceArray pickles as its numpy value plus abstract-value flags (weak_type...), which don't matter
    for weights and are ignored."""
    return _array_from_state(fun, args, arr_state, "jax reconstruct_device_array")


def _jnp_array(obj: object, dtype: object = None, *_flags: object) -> np.ndarray:
    """``jax.numpy.array``/``asarray``/``ndarray`` over a numpy array or nested lists of numbers."""
    pending = [obj]
    while pending:
        item = pending.pop()
        if isinstance(item, list | tuple):
            pending.extend(item)
        elif not isinstance(item, np.ndarray | np.generic | bool | int | float | complex):
            raise OfficialCheckpointError(f"jax.numpy.array of a {_type_name(item)} is not allowed")
    if dtype is not None:
        _check_dtype(dtype)
    array = np.asarray(obj, dtype=dtype)
    _check_dtype(array.dtype)
    return array


def _dill_create_array(f: object, args: object, state: object, npdict: object = None) -> np.ndarray:
    """dill's ``_create_array``; ``npdict`` (attributes of ndarray subclasses) is dropped."""
    return _array_from_state(f, args, state, "dill _create_array")


_DILL_TYPES: dict[str, type] = {
    "dict": dict,
    "list": list,
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "DictType": dict,
    "ListType": list,
    "TupleType": tuple,
    "SetType": set,
    "FrozenSetType": frozenset,
    "OrderedDictType": collections.OrderedDict,
}


def _dill_load_type(name: object) -> type:
    """dill's ``_load_type``, limited to container types."""
    if not isinstance(name, str) or name not in _DILL_TYPES:
        raise OfficialCheckpointError(f"dill _load_type({name!r:.40}) is not allowed (only {sorted(_DILL_TYPES)})")
    return _DILL_TYPES[name]


# ---------------------------------------------------------------------------------------------------------------
# The allow list and the unpickler.


def _numpy_names(name: str, value: object) -> dict[tuple[str, str], object]:
    module = "numeric" if name == "_frombuffer" else "multiarray"
    return {(f"numpy.core.{module}", name): value, (f"numpy._core.{module}", name): value}


_ALLOWED: dict[tuple[str, str], object] = {
    **_numpy_names("_reconstruct", _safe_reconstruct),
    **_numpy_names("scalar", _safe_scalar),
    **_numpy_names("_frombuffer", _safe_frombuffer),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _safe_codecs_encode,
    ("builtins", "bytes"): _safe_bytes,
    ("builtins", "object"): object,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("copyreg", "__newobj__"): _safe_newobj,
    ("haiku._src.data_structures", "frozendict"): _FrozenDict,
    ("haiku._src.data_structures", "FlatMapping"): _FlatMapping,
    ("haiku._src.data_structures", "FlatMap"): _FlatMap,
    ("jax._src.device_array", "reconstruct_device_array"): _jax_reconstruct_device_array,
    ("jax.interpreters.xla", "reconstruct_device_array"): _jax_reconstruct_device_array,
    ("jax.numpy", "array"): _jnp_array,
    ("jax.numpy", "asarray"): _jnp_array,
    ("jax.numpy", "ndarray"): _jnp_array,
    ("dill._dill", "_create_array"): _dill_create_array,
    ("dill._dill", "_load_type"): _dill_load_type,
}
"""``(module, name)`` -> what the unpickler gets instead of importing it. Nothing outside this (and
:func:`_numeric_dtype_class`) is ever resolved."""


def _numeric_dtype_class(name: str) -> type | None:
    """``numpy.dtypes.Float32DType`` and friends (new numpy pickles dtype classes by name): numeric/bool only."""
    if not name.endswith("DType") or not name.isidentifier():
        return None
    cls = getattr(np.dtypes, name, None)
    if not (isinstance(cls, type) and issubclass(cls, np.dtype)):
        return None
    scalar = getattr(cls, "type", None)
    numeric = isinstance(scalar, type) and issubclass(scalar, np.bool_ | np.number)
    return cls if numeric and not issubclass(scalar, np.timedelta64) else None


def _refusal(module: str, name: str) -> str:
    hint = ""
    if "pytree" in module.lower() or name == "PyTreeDef":
        hint = " (a Haiku FlatMapping stored as (leaves, PyTreeDef) cannot be rebuilt without jax)"
    return (
        f"the file asks for `{module}.{name}`, which is not in the allow list{hint}. Converting never runs code "
        "from a file, so only numpy arrays, plain containers and the Haiku/jax/dill array containers are rebuilt. "
        "Workaround: export the checkpoint to a flat .npz with numpy from a Python that has jax/haiku (and dill) "
        f"installed, then load the .npz:  {NPZ_EXPORT_COMMAND}"
    )


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose every global comes from :data:`_ALLOWED`; it never imports a module."""

    def find_class(self, module: str, name: str) -> Any:
        module = _MODULE_ALIASES.get(module, module)
        found = _ALLOWED.get((module, name))
        if found is None and module == "numpy.dtypes":
            found = _numeric_dtype_class(name)
        if found is None:
            raise OfficialCheckpointError(_refusal(module, name))
        return found


def _unpickle(path: PathLike) -> object:
    with open(path, "rb") as f:
        unpickler = _RestrictedUnpickler(f, encoding="latin1")  # latin1: numpy's advice for Python 2 pickles
        try:
            return unpickler.load()
        except OfficialCheckpointError:
            raise
        except Exception as exc:  # a corrupt or truncated file raises anything from EOFError to TypeError
            raise OfficialCheckpointError(f"not a readable checkpoint pickle ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------------------------------------
# Validation and flattening.


def _leaf_array(value: object, where: str) -> np.ndarray:
    """A leaf as a plain, writable, native-byte-order numeric ``np.ndarray`` (Python numbers become 0-d)."""
    if isinstance(value, np.ndarray | np.generic | bool | int | float | complex):
        array = np.asarray(value)
        dtype = array.dtype
        if dtype.kind in _NUMERIC_KINDS and dtype.fields is None:
            if not dtype.isnative:
                array = array.astype(dtype.newbyteorder("="))
            return array if array.flags.writeable else array.copy()
        found = f"an array of dtype {dtype}"
    else:
        found = f"a {_type_name(value)}"
    raise OfficialCheckpointError(f"{where} is {found}; expected a numeric array or number")


def _mapping(value: object, where: str, expected: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise OfficialCheckpointError(f"{where} is a {_type_name(value)}; expected {expected}")
    return value


def _flatten_collection(tree: object, name: str) -> Iterator[tuple[str, np.ndarray]]:
    """``{module: {leaf: array}}`` -> ``("module:leaf", array)`` pairs, checking every level."""
    modules = _mapping({} if tree is None else tree, f"'{name}'", "a mapping {module path: {leaf: array}}")
    for module, leaves in modules.items():
        if not isinstance(module, str) or not module:
            raise OfficialCheckpointError(f"'{name}' has a module key {module!r:.80}; expected a module path")
        where = f"'{name}'[{module!r}]"
        for leaf, value in _mapping(leaves, where, "a mapping {leaf name: array}").items():
            if not isinstance(leaf, str) or not leaf or ":" in leaf:
                raise OfficialCheckpointError(f"{where} has a leaf key {leaf!r:.80}; expected a name without ':'")
            yield f"{module}:{leaf}", _leaf_array(value, f"{where}[{leaf!r}]")


def _flatten(tree: object) -> FlatTree:
    """The flat tree of ``{"params": ..., "state": ...}`` (other top-level keys are ignored), or of a bare
    ``{module: {leaf: array}}`` tree, read as params."""
    top = _mapping(tree, "the top level", "a mapping {'params': ..., 'state': ...}")
    found = [name for name in _COLLECTIONS if name in top]
    parts = [(name, top[name]) for name in found] if found else [("params", top)]
    flat: FlatTree = {}
    for name, collection in parts:
        for key, array in _flatten_collection(collection, name):
            if key in flat:
                raise OfficialCheckpointError(f"'{key}' appears in both params and state")
            flat[key] = array
    if not flat:
        raise OfficialCheckpointError("the checkpoint holds no arrays")
    return flat


# ---------------------------------------------------------------------------------------------------------------
# Public API.


def load_official_pickle(path: PathLike) -> FlatTree:
    """Read an official MMV ``.pkl`` (pickle or dill) without running code from it, as a flat tree.

    Returns ``{"<module path>:<leaf>": np.ndarray}`` over both collections, e.g.
    ``"text_audio_video/visual_module/~/S3D/Conv2d_1a_7x7/~/conv3_d:w"`` (params) and
    ``".../batch_norm/~/mean_ema:average"`` (state). A pickle whose top level is already
    ``{module: {leaf: array}}``, without ``params``/``state``, is read as params. Every leaf becomes a plain
    writable numeric ``np.ndarray`` in native byte order; Python numbers (an ``int`` counter) become 0-d arrays.

    Raises:
        OfficialCheckpointError: the file is not a pickle, asks for a global outside the allow list (nothing
            it names is ever called), or does not hold a mapping of mappings of numeric arrays.
    """
    try:
        return _flatten(_unpickle(path))
    except OfficialCheckpointError as exc:
        raise OfficialCheckpointError(f"{path}: {exc}") from exc


def load_official_npz(path: PathLike) -> FlatTree:
    """Read a flat ``.npz`` whose keys are ``"module/path:leaf"`` (as written by :data:`NPZ_EXPORT_COMMAND`)
    into the same flat tree as :func:`load_official_pickle`. Pickled (object) members are refused."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise OfficialCheckpointError(f"{path}: not a readable .npz ({exc})") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise OfficialCheckpointError(f"{path}: a single .npy array, expected an .npz of 'module:leaf' arrays")
    flat: FlatTree = {}
    with loaded:
        for key in loaded.files:
            module, sep, leaf = key.rpartition(":")
            if not (sep and module and leaf):
                raise OfficialCheckpointError(f"{path}: key {key!r} is not of the form 'module/path:leaf'")
            try:
                value = loaded[key]
            except Exception as exc:  # a corrupt member raises anything from zlib.error to ValueError
                raise OfficialCheckpointError(f"{path}: member {key!r} could not be read ({exc})") from exc
            flat[key] = _leaf_array(value, f"{path}: member {key!r}")
    if not flat:
        raise OfficialCheckpointError(f"{path}: the .npz holds no arrays")
    return flat


def _describe_start(head: bytes) -> str:
    for signature, what in _KNOWN_SIGNATURES.items():
        if head.startswith(signature):
            return what
    return f"bytes {head[:8]!r}" if head else "an empty file"


def load_official(path: PathLike) -> FlatTree:
    """Read an official checkpoint as a flat tree, choosing the reader by content, not by file name: an ``.npz``
    (zip) goes to :func:`load_official_npz`, a pickle (protocol >= 2) to :func:`load_official_pickle`."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC):
        return load_official_npz(path)
    if head[:1] == bytes([_PICKLE_MAGIC]):
        return load_official_pickle(path)
    raise OfficialCheckpointError(
        f"{path}: found {_describe_start(head)}; expected an official MMV checkpoint, either a pickle "
        "(starts with byte 0x80) or a flat .npz (starts with 'PK\\x03\\x04')"
    )
