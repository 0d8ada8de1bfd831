"""What every stage config shares: reading a TOML section into its dataclass, and naming a field in errors.

Each stage has one config dataclass (`faces.folder.AlignConfig`, `gan.train.TrainConfig`,
`invert.embed.EmbedConfig`, `survival.config.FitConfig`, `explain.config.ExplainConfig`): it is the stage's
TOML section, the source of its command's defaults, and checks itself with ``validate(names)``.  A library
error names the field as the config file spells it (``embed.project.steps``); a command passes ``names``,
its map from fields to flags, so that the same error names ``--steps`` there.  Reading checks each value's
type against the field's annotation, so ``seed = "zero"`` is refused where it is written, not deep in a
stage.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from stylesurv.core.errors import InputError

T = TypeVar("T")


class FieldNames:
    """How errors call a config's fields: a flag from ``names`` where given, else ``<section>.<field>``."""

    def __init__(self, section: str, names: Mapping[str, str] | None = None) -> None:
        self.section, self.names = section, dict(names or {})

    def __call__(self, field_name: str) -> str:
        return self.names.get(field_name, f"{self.section}.{field_name}" if self.section else field_name)


def _nested(kind: Any) -> type | None:
    """The dataclass a field holds (also through ``X | None``), else None."""
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return kind
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(inner) == 1:
            return _nested(inner[0])
    return None


def _is_tuple(kind: Any) -> bool:
    return kind is tuple or typing.get_origin(kind) is tuple


def _type_problem(kind: Any, value: Any) -> str | None:
    """Why ``value`` cannot be a field annotated ``kind`` (None: it can, or the annotation is not checked)."""
    if kind is Any:
        return None
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        problems = [_type_problem(option, value) for option in options if option is not type(None)]
        return None if None in problems else problems[0]
    if _is_tuple(kind):
        if not isinstance(value, (list, tuple)):
            return f"a list, got {value!r}"
        args = typing.get_args(kind)
        item = args[0] if args else Any
        bad = [_type_problem(item, v) for v in value]
        return next((f"a list of which each item is {p}" for p in bad if p), None)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if kind not in names:
        return None
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    return None if ok else f"{names[kind]}, got {value!r}"


def _as_field(kind: Any, value: Any) -> Any:
    """A checked value as the field holds it: a list as a tuple, an integer for a float field as a float
    (so ``kimg = 200`` and ``kimg = 200.0`` give the same config and the same stage key)."""
    if _is_tuple(kind):
        return tuple(value)
    if kind is float and isinstance(value, int):
        return float(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str, section: str = "") -> T:
    """``cls`` built from a TOML table (``section``, dotted, of the file ``where``): nested tables become
    nested configs, lists become tuples; unknown keys and values of the wrong type or range are an
    InputError that names the file and the key as ``section.key``."""
    label = f"[{section}] " if section else ""
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: {section or 'the config'} must be a table of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        known_list = ", ".join(sorted(known))
        raise InputError(f"{where}: {label}unknown setting(s) {', '.join(unknown)}; known: {known_list}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{section}.{name}" if section else name
        nested = _nested(hints[name])
        if nested is not None:
            kwargs[name] = from_dict(nested, value, where, key)
            continue
        problem = _type_problem(hints[name], value)
        if problem:
            raise InputError(f"{where}: {key} must be {problem}")
        kwargs[name] = _as_field(hints[name], value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {label}{exc}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain data (what a manifest records and :func:`from_dict` reads back)."""
    return dataclasses.asdict(config)
