"""Reading a pretraining recipe: YAML files with ``extends:`` and dotted command-line overrides, type-checked into
a :class:`training.config.Config` (the schema).

A recipe is a YAML file whose keys are the fields of :class:`~training.config.Config` (every section is
optional; missing keys take the defaults). ``extends: base.yaml`` (a path relative to the extending file, or a
list of them) merges the file over its base(s): mappings merge key by key, lists and scalars replace.
Command-line flags then override any key with a dotted path, parsed as YAML::

    python -m training.main --config training/configs/demo_cpu.yaml \\
        --optim.lr 0.001 --data.batch_size 8 --model.name tiny_fac \\
        --model.overrides.video.num_frames 4 --train.compile true --resume latest

``--key=value`` works too, a bare ``--flag`` means ``true``, hyphens in keys read as underscores and a list
item is addressed by its index (``--data.train.0.proportion 0.7``). A key outside the schema is an error that
names it; so is a value of the wrong type. ``model.overrides`` is free-form: it is passed to
:func:`mmv.factory.create_model`, whose config validation names a bad field.

Relative paths in a recipe (manifests, ``run_dir``) are relative to the working directory, i.e. recipes in
``training/configs/`` assume the repository root. The resolved config is written to ``<run_dir>/config.yaml``
and stored in every training checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from training.config import Config, ConfigError

# ---------------------------------------------------------------------------------------------------
# Building a Config from plain data, with type checks
# ---------------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked (and, for numbers given as strings like ``1e-3``, converted) against ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"config {key}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config {key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config {key}: expected a mapping, got {value!r}")
        return copy.deepcopy(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"config {key}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Builds the dataclass ``cls`` from a mapping; unknown keys and wrong types raise ``ValueError``."""
    where = prefix or "<root>"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"config {dotted}: unknown key (known in {where}: {', '.join(names)})")
        kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------
# Files, extends, overrides
# ---------------------------------------------------------------------------------------------------


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``: mappings merge recursively, everything else replaces. Returns a new dict."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipe(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Reads a YAML recipe and resolves its ``extends:`` chain (bases first); returns plain data."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"config extends: cycle {chain}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: not valid YAML ({err})") from err
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    bases = data.pop("extends", None)
    if bases is None:
        return data
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged = deep_merge(merged, load_recipe(path.parent / base, (*_seen, path)))
    return deep_merge(merged, data)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Sets ``data[a][b][c] = value`` for ``key = 'a.b.c'``, creating mappings; digits index lists."""
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"config {'.'.join(parts[: i + 1])}: no such list item (length {len(node)})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"config {'.'.join(parts[:i])}: is not a mapping, cannot set {part!r}")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                if parts[i + 1].isdigit():
                    raise ConfigError(f"config {'.'.join(parts[: i + 2])}: no such list item ({part} is not set)")
                node[part] = {}
            node = node[part]


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """``['--a.b', '1', '--c=x', '--flag']`` -> ``[('a.b', 1), ('c', 'x'), ('flag', True)]`` (YAML values)."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"expected --key value, got {arg!r}")
        key, eq, text = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                text = args[i + 1]
                i += 1
            else:
                text = "true"
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"config {key}: cannot parse {text!r} as YAML ({err})") from err
        out.append((key.replace("-", "_"), value))
        i += 1
    return out


def resolve(config_path: str | Path | None, overrides: list[tuple[str, Any]] = ()) -> Config:
    """The validated :class:`Config` of a recipe file (or the defaults) plus overrides."""
    data = load_recipe(config_path) if config_path else {}
    for key, value in overrides:
        set_dotted(data, key, value)
    return from_dict(Config, data).validate()


def parse_args(argv: list[str]) -> Config:
    """``--config PATH`` plus dotted overrides, in any order (``--config=PATH`` too)."""
    rest: list[str] = []
    config_path = None
    i = 0
    while i < len(argv):
        if argv[i] == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a path")
            config_path, i = argv[i + 1], i + 2
        elif argv[i].startswith("--config="):
            config_path, i = argv[i].split("=", 1)[1], i + 1
        else:
            rest.append(argv[i])
            i += 1
    return resolve(config_path, parse_overrides(rest))
