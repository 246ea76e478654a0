"""Tests of :mod:`mmv.official.unpickle`, the restricted reader of DeepMind's MMV checkpoints.

The real checkpoints cannot be downloaded here, so every file is written by the test: real numpy arrays pickled at
several protocols, and objects of fake ``haiku`` / ``jax`` / ``dill`` classes that live in ``sys.modules`` only
while they are pickled (:func:`fake_modules`), so the reader has to rebuild them without importing anything.
Malicious pickles carry real payloads (``os.system``, ``exec``, ``Path.touch``); the tests check both the refusal
and that the payload's side effect never happened.
"""

from __future__ import annotations

import builtins
import collections
import copyreg
import gzip
import os
import pathlib
import pickle
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmv.official.unpickle import OfficialCheckpointError, load_official, load_official_npz, load_official_pickle

S3D = "text_audio_video/visual_module/~/S3D/Conv2d_1a_7x7/~"
TEXT = "text_audio_video/text_module/~/linear"
AUDIO = "text_audio_video/audio_module/~/conv2_d"


def _tree() -> dict[str, dict[str, dict[str, Any]]]:
    """A small checkpoint shaped like the official ones: float32 leaves of several shapes (one Fortran-ordered),
    BatchNorm state with an int32 0-d counter."""
    rng = np.random.default_rng(0)
    ema = {
        "average": rng.standard_normal((1, 1, 1, 1, 4)).astype(np.float32),
        "counter": np.array(7, dtype=np.int32),
        "hidden": rng.standard_normal((1, 1, 1, 1, 4)).astype(np.float32),
    }
    return {
        "params": {
            f"{S3D}/conv3_d": {"w": rng.standard_normal((3, 3, 3, 2, 4)).astype(np.float32)},
            f"{S3D}/batch_norm": {"offset": np.zeros((1, 1, 1, 1, 4), np.float32)},
            TEXT: {"w": rng.standard_normal((5, 3)).astype(np.float32), "b": np.arange(3, dtype=np.float32)},
            AUDIO: {"w": np.asfortranarray(rng.standard_normal((3, 3, 2, 6)).astype(np.float32))},
        },
        "state": {f"{S3D}/batch_norm/~/mean_ema": ema, f"{S3D}/batch_norm/~/var_ema": dict(ema)},
    }


def _flat(tree: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, np.ndarray]:
    return {
        f"{module}:{leaf}": value for part in tree.values() for module, d in part.items() for leaf, value in d.items()
    }


def _assert_flat_equal(got: dict[str, np.ndarray], expected: dict[str, Any]) -> None:
    assert sorted(got) == sorted(expected)
    for key, want in expected.items():
        want = np.asarray(want)
        assert type(got[key]) is np.ndarray, key
        assert got[key].dtype == want.dtype, key
        assert got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


def _write(path: Path, obj: object, protocol: int) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class _Reduce:
    """Pickles as ``func(*args)``: how a malicious (or merely foreign) pickle calls a global while it loads."""

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args

    def __call__(self, *args: Any) -> Any:
        """Only so that pickle accepts a ``_Reduce`` as the function of another one (``f(x)(y)``)."""
        raise AssertionError("never called by the tests")


@pytest.fixture
def fake_modules() -> Iterator[types.SimpleNamespace]:
    """``install(name, **attrs)`` puts a fake module (and its missing parents) into ``sys.modules`` with ``attrs``
    renamed to live there, so ``pickle`` can reference them; ``remove()`` takes them all out again, and runs at
    teardown too, so a failing test never leaves a fake ``haiku`` or ``jax`` behind."""
    added: list[str] = []

    def install(name: str, **attrs: Any) -> types.ModuleType:
        if name in sys.modules:
            pytest.skip(f"a real {name} is imported; the fake would shadow it")
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if sub not in sys.modules:
                sys.modules[sub] = types.ModuleType(sub)
                added.append(sub)
                if i > 1:
                    setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], sys.modules[sub])
        module = sys.modules[name]
        for attr, value in attrs.items():
            value.__module__, value.__name__, value.__qualname__ = name, attr, attr
            setattr(module, attr, value)
        return module

    def remove() -> None:
        for sub in reversed(added):
            sys.modules.pop(sub, None)
        added.clear()

    yield types.SimpleNamespace(install=install, remove=remove)
    remove()


def _assert_gone(*roots: str) -> None:
    assert not [m for m in sys.modules if m.split(".")[0] in roots]


# ---------------------------------------------------------------------------------------------------------------
# Plain numpy pickles


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_round_trip_of_numpy_tree(tmp_path: Path, protocol: int) -> None:
    tree = _tree()
    path = _write(tmp_path / "ckpt.pkl", tree, protocol)
    flat = load_official_pickle(path)
    _assert_flat_equal(flat, _flat(tree))
    assert f"{S3D}/batch_norm/~/mean_ema:counter" in flat and f"{S3D}/conv3_d:w" in flat
    assert all(a.flags.writeable for a in flat.values())
    if protocol >= 2:  # load_official dispatches on the 0x80 PROTO byte
        _assert_flat_equal(load_official(path), _flat(tree))


def test_python_numbers_and_scalars_become_0d_arrays(tmp_path: Path) -> None:
    tree = {"params": {TEXT: {"w": np.ones((2, 2), np.float32)}}, "state": {"m": {"counter": 3, "s": np.float32(2)}}}
    flat = load_official(_write(tmp_path / "c.pkl", tree, 4))
    assert flat["m:counter"].shape == () and flat["m:counter"].dtype.kind == "i" and int(flat["m:counter"]) == 3
    assert flat["m:s"].shape == () and flat["m:s"].dtype == np.float32 and float(flat["m:s"]) == 2.0


def test_bare_module_tree_is_read_as_params_and_big_endian_becomes_native(tmp_path: Path) -> None:
    big = np.arange(6, dtype=">f4").reshape(2, 3)
    flat = load_official(_write(tmp_path / "bare.pkl", collections.OrderedDict({TEXT: {"w": big}}), 2))
    assert list(flat) == [f"{TEXT}:w"]
    assert flat[f"{TEXT}:w"].dtype == np.dtype("=f4")
    np.testing.assert_array_equal(flat[f"{TEXT}:w"], big)


# ---------------------------------------------------------------------------------------------------------------
# Haiku / jax / dill containers, rebuilt from stand-ins without the real packages


def _haiku_classes() -> dict[str, type]:
    class frozendict(Mapping):  # Haiku 0.0.2: slotted, pickled as (frozendict, (storage,))
        __slots__ = ("_storage",)

        def __init__(self, *args: Any) -> None:
            self._storage = dict(*args)

        def __getitem__(self, key: str) -> Any:
            return self._storage[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._storage)

        def __len__(self) -> int:
            return len(self._storage)

        def __reduce__(self) -> tuple[Any, ...]:
            return frozendict, (self._storage,)

    class FlatMapping(Mapping):  # default object protocol: NEWOBJ/_reconstructor, then __dict__ with _mapping
        def __init__(self, mapping: Mapping[str, Any]) -> None:
            self._mapping = dict(mapping)

        def __getitem__(self, key: str) -> Any:
            return self._mapping[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._mapping)

        def __len__(self) -> int:
            return len(self._mapping)

    class FlatMap(FlatMapping):  # later Haiku: (FlatMap, (plain dict,))
        def __reduce__(self) -> tuple[Any, ...]:
            return FlatMap, (dict(self._mapping),)

    return {"frozendict": frozendict, "FlatMapping": FlatMapping, "FlatMap": FlatMap}


@pytest.mark.parametrize("protocol", [1, 2, 4, 5])
def test_haiku_mappings_become_plain_dicts(tmp_path: Path, fake_modules: types.SimpleNamespace, protocol: int) -> None:
    hk = _haiku_classes()
    fake_modules.install("haiku._src.data_structures", **hk)
    tree = _tree()
    wrapped = {
        "params": hk["frozendict"]({m: hk["frozendict"](leaves) for m, leaves in tree["params"].items()}),
        "state": hk["FlatMapping"]({m: hk["FlatMap"](leaves) for m, leaves in tree["state"].items()}),
    }
    data = pickle.dumps(wrapped, protocol=protocol)
    assert b"haiku._src.data_structures" in data  # the file really names the Haiku classes
    fake_modules.remove()
    _assert_gone("haiku")
    path = tmp_path / "hk.pkl"
    path.write_bytes(data)
    _assert_flat_equal(load_official_pickle(path), _flat(tree))


def test_flatmapping_of_leaves_and_structure_asks_for_npz(tmp_path: Path, fake_modules: types.SimpleNamespace) -> None:
    class FlatMapping:  # the intermediate Haiku FlatMapping: only (leaves, structure), rebuilt by jax
        __slots__ = ("_structure", "_leaves", "_mapping")

        def __init__(self) -> None:
            self._structure, self._leaves, self._mapping = "PyTreeDef(dict[['w']])", (np.ones(2),), None

    fake_modules.install("haiku._src.data_structures", FlatMapping=FlatMapping)
    data = pickle.dumps({"params": {TEXT: FlatMapping()}}, protocol=4)
    fake_modules.remove()
    path = tmp_path / "fm.pkl"
    path.write_bytes(data)
    with pytest.raises(OfficialCheckpointError, match=r"without jax|does without") as err:
        load_official(path)
    assert ".npz" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("module", ["jax._src.device_array", "jax.interpreters.xla"])
def test_jax_device_arrays(tmp_path: Path, fake_modules: types.SimpleNamespace, module: str) -> None:
    def reconstruct_device_array(fun: Any, args: Any, arr_state: Any, aval_state: Any) -> Any:
        raise AssertionError("the reader must never call the real function")

    class DeviceArray:
        def __init__(self, value: np.ndarray) -> None:
            self._value = value

        def __reduce__(self) -> tuple[Any, ...]:  # as jax's _DeviceArray.__reduce__
            fun, args, arr_state = self._value.__reduce__()
            return reconstruct_device_array, (fun, args, arr_state, {"weak_type": False, "named_shape": {}})

    fake_modules.install(module, reconstruct_device_array=reconstruct_device_array)
    tree = _tree()
    jax_tree = {
        part: {m: {k: DeviceArray(v) for k, v in d.items()} for m, d in sub.items()} for part, sub in tree.items()
    }
    data = pickle.dumps(jax_tree, protocol=4)
    fake_modules.remove()
    _assert_gone("jax")
    path = tmp_path / "jax.pkl"
    path.write_bytes(data)
    _assert_flat_equal(load_official(path), _flat(tree))


def test_jax_numpy_array_over_lists_and_arrays(tmp_path: Path, fake_modules: types.SimpleNamespace) -> None:
    def array(obj: Any, dtype: Any = None) -> Any:
        raise AssertionError("the reader must never call the real function")

    def asarray(obj: Any, dtype: Any = None) -> Any:
        raise AssertionError("the reader must never call the real function")

    fake_modules.install("jax.numpy", array=array, asarray=asarray)
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    tree = {
        "params": {TEXT: {"w": _Reduce(array, (w,)), "b": _Reduce(asarray, ([1.5, 2.5], np.dtype("float32")))}},
        "state": {"m": {"counter": _Reduce(asarray, ([[1, 2], [3, 4]],))}},
    }
    data = pickle.dumps(tree, protocol=2)
    fake_modules.remove()
    path = tmp_path / "jnp.pkl"
    path.write_bytes(data)
    flat = load_official(path)
    _assert_flat_equal(
        flat,
        {f"{TEXT}:w": w, f"{TEXT}:b": np.array([1.5, 2.5], np.float32), "m:counter": np.array([[1, 2], [3, 4]])},
    )


def test_dill_helpers_without_dill(tmp_path: Path, fake_modules: types.SimpleNamespace) -> None:
    """The two helpers dill writes for numpy data, rebuilt by stand-ins; any other type name is refused."""

    def _create_array(f: Any, args: Any, state: Any, npdict: Any = None) -> Any:
        raise AssertionError("the reader must never call the real function")

    def _load_type(name: str) -> Any:
        raise AssertionError("the reader must never call the real function")

    fake_modules.install("dill._dill", _create_array=_create_array, _load_type=_load_type)
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    fun, args, state = w.__reduce__()
    good = pickle.dumps(
        {
            "params": _Reduce(
                _Reduce(_load_type, ("dict",)), ({TEXT: {"w": _Reduce(_create_array, (fun, args, state, None))}},)
            )
        },
        3,
    )
    bad = pickle.dumps({"params": {TEXT: {"t": _Reduce(_load_type, ("FunctionType",))}}}, 3)
    fake_modules.remove()
    _assert_gone("dill")
    (tmp_path / "good.pkl").write_bytes(good)
    (tmp_path / "bad.pkl").write_bytes(bad)
    _assert_flat_equal(load_official(tmp_path / "good.pkl"), {f"{TEXT}:w": w})
    with pytest.raises(OfficialCheckpointError, match="FunctionType"):
        load_official(tmp_path / "bad.pkl")


def test_real_dill_pickle(tmp_path: Path) -> None:
    dill = pytest.importorskip("dill")
    tree = _tree()
    path = tmp_path / "dill.pkl"
    path.write_bytes(dill.dumps(tree))
    _assert_flat_equal(load_official(path), _flat(tree))


# ---------------------------------------------------------------------------------------------------------------
# Refusals: nothing named by the file is called, and the message says what to do


def _payloads(target: Path) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    return [
        (os.system, (f"touch {target}",)),
        (builtins.exec, (f"open({str(target)!r}, 'w').write('x')",)),
        (pathlib.Path.touch, (pathlib.Path(target),)),
    ]


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_code_in_the_file_is_never_run(tmp_path: Path, which: int, protocol: int) -> None:
    target = tmp_path / "pwned"
    func, args = _payloads(target)[which]
    path = _write(tmp_path / "evil.pkl", {"params": {TEXT: {"w": np.ones(2), "x": _Reduce(func, args)}}}, protocol)
    if func is pathlib.Path.touch and protocol < 4:
        expected = "builtins.getattr"  # protocols < 4 spell a method as getattr(pathlib.Path, 'touch')
    else:
        expected = f"{func.__module__}.{func.__qualname__}"
    assert expected.rsplit(".", 1)[-1].encode() in path.read_bytes()  # the payload really is in the file
    with pytest.raises(OfficialCheckpointError) as err:
        load_official(path)
    message = str(err.value)
    assert f"`{expected}`" in message and "not in the allow list" in message
    assert "never runs code" in message and "np.savez" in message
    assert not target.exists()


@pytest.mark.parametrize(
    ("reduce", "protocol", "needle"),
    [
        ((copyreg._reconstructor, (collections.OrderedDict, object, None)), 2, "_reconstructor"),
        ((copyreg._reconstructor, (np.ndarray, object, None)), 4, "_reconstructor"),
        ((copyreg.__newobj__, (collections.OrderedDict,)), 1, "__newobj__"),
        ((np.ndarray.__reduce__(np.ones(1))[0], (np.dtype, (0,), b"b")), 4, "numpy.ndarray"),
        ((np.ndarray.__reduce__(np.ones(1))[0], (np.matrix, (0,), b"b")), 4, "numpy.matrix"),
    ],
)
def test_allowed_helpers_refuse_foreign_arguments(
    tmp_path: Path, reduce: tuple[Any, Any], protocol: int, needle: str
) -> None:
    path = _write(tmp_path / "x.pkl", {"params": {TEXT: {"w": _Reduce(*reduce)}}}, protocol)
    with pytest.raises(OfficialCheckpointError, match=needle):
        load_official_pickle(path)


@pytest.mark.parametrize(
    ("tree", "needle"),
    [
        ([np.ones(2)], "top level is a list"),
        ({"params": [np.ones(2)]}, "'params' is a list"),
        ({"params": {TEXT: np.ones(2)}}, "is a ndarray; expected a mapping"),
        ({"params": {TEXT: {"w": "hello"}}}, r"\['w'\] is a str"),
        ({"params": {TEXT: {"w": {"deeper": np.ones(2)}}}}, r"\['w'\] is a dict"),
        ({"params": {TEXT: {"w": np.array([1, "a"], dtype=object)}}}, "dtype object"),
        ({"params": {TEXT: {"w": np.array(["a"])}}}, "dtype <U1"),
        ({"params": {TEXT: {"w": np.ones(1)}}, "state": {TEXT: {"w": np.ones(1)}}}, "both params and state"),
        ({"params": {}, "state": {}}, "no arrays"),
    ],
)
def test_unexpected_structure_is_named(tmp_path: Path, tree: object, needle: str) -> None:
    with pytest.raises(OfficialCheckpointError, match=needle):
        load_official(_write(tmp_path / "s.pkl", tree, 4))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"garbage bytes", r"b'garbage "),
        (b"", "empty file"),
        (gzip.compress(b"x"), "gzip"),
        (b"version https://git-lfs.github.com/spec/v1\n", "Git LFS"),
        (pickle.dumps(_tree(), protocol=4)[:40], "not a readable checkpoint pickle"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(content)
    with pytest.raises(OfficialCheckpointError, match=needle):
        load_official(path)


# ---------------------------------------------------------------------------------------------------------------
# Flat .npz exports


def test_npz_round_trip(tmp_path: Path) -> None:
    flat = _flat(_tree())
    path = tmp_path / "export.npz"
    np.savez(path, **flat)
    _assert_flat_equal(load_official_npz(path), flat)
    _assert_flat_equal(load_official(path), flat)


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"no_colon": np.ones(2)}, "not of the form 'module/path:leaf'"),
        ({f"{TEXT}:": np.ones(2)}, "not of the form"),
        ({f"{TEXT}:w": np.array([1, None], dtype=object)}, "could not be read"),
    ],
)
def test_npz_refusals(tmp_path: Path, arrays: dict[str, np.ndarray], needle: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(OfficialCheckpointError, match=needle):
        load_official(path)


def test_single_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.npy"
    np.save(path, np.ones(3))
    with pytest.raises(OfficialCheckpointError, match="single .npy"):
        load_official(path)
    with pytest.raises(OfficialCheckpointError, match="single .npy"):
        load_official_npz(path)
