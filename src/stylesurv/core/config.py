"""What every stage config shares: reading a TOML section into its dataclass, and naming a field in errors.

Each stage has one config dataclass (`faces.folder.AlignConfig`, `gan.train.FinetuneConfig`,
`invert.embed.EmbedConfig`, `survival.bundle.FitConfig`, `explain.config.ExplainConfig`): it is the stage's
TOML section, the source of its command's defaults, and checks itself with ``validate(names)``.  A library
error names the field as the config file spells it (``embed.steps``); a command passes ``names``, its map
from fields to flags, so that the same error names ``--steps`` there.
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


def from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """``cls`` built from a TOML table: nested tables become nested configs, lists become tuples where the
    field is a tuple; unknown keys and wrong values are an InputError that names ``where`` and the key."""
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected a table of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        known_list = ", ".join(sorted(known))
        raise InputError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {known_list}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        nested = _nested(hints[name])
        if nested is not None and isinstance(value, Mapping):
            kwargs[name] = from_dict(nested, value, f"{where} [{name}]")
        elif _is_tuple(hints[name]) and isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain data (what a manifest records and :func:`from_dict` reads back)."""
    return dataclasses.asdict(config)
