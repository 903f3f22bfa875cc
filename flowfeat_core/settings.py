"""One declaration per setting: a dataclass field made with :func:`setting` carries the name,
type (from the annotation), default, range, choices, whether it is read-only at run time, and a
one-line description. Everything else is derived from it: the ROS 2 parameter descriptors
(``flowfeat_ros.parameter_declarations``), command-line options (:func:`add_arguments`), the
documentation tables (:func:`markdown_table`) and the consistency check of the shipped YAML
files (:func:`yaml_problems`). Adding a parameter is adding one field.

Standard library only, so that ROS and non-ROS code can both import it cheaply.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The types a setting can have (those ROS 2 parameters and argparse both carry).
SCALAR_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class SettingInfo:
    """What a field declared with :func:`setting` knows besides its name, type and default."""

    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False
    #: command-line flag when it differs from ``--<name with dashes>``
    flag: str | None = None
    #: the command line must give it (a path with no sensible default there)
    required_on_cli: bool = False
    #: free-form facts for the owner (e.g. what a change reloads)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Declared:
    """One declared setting: its name, Python type, default and :class:`SettingInfo`."""

    name: str
    type: type
    default: Any
    info: SettingInfo

    @property
    def flag(self) -> str:
        """The command-line option."""
        return self.info.flag or "--" + self.name.replace("_", "-")


def setting(default: Any, description: str, *, low: float | None = None,
            high: float | None = None, choices: tuple[str, ...] = (), read_only: bool = False,
            flag: str | None = None, required_on_cli: bool = False,
            tags: tuple[str, ...] = ()) -> Any:
    """A dataclass field declaring one setting (see the module docstring)."""
    if (low is None) != (high is None):
        raise ValueError(f"{description!r}: give both low and high, or neither")
    info = SettingInfo(description, low, high, tuple(choices), read_only, flag, required_on_cli,
                       tuple(tags))
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default=tuple(default), metadata={"setting": info})
    return dataclasses.field(default=default, metadata={"setting": info})


def declared(cls: type) -> list[Declared]:
    """The settings of dataclass ``cls`` (fields made with :func:`setting`), in order."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        info = field.metadata.get("setting")
        if info is None:
            continue
        kind = hints[field.name]
        if kind not in SCALAR_TYPES and typing.get_origin(kind) is not tuple:
            raise TypeError(f"{cls.__name__}.{field.name}: settings are bool, int, float, str or "
                            f"tuple[str, ...], not {kind}")
        found.append(Declared(field.name, kind, field.default, info))
    return found


def range_problem(item: Declared, value: Any) -> str | None:
    """Why ``value`` is outside ``item``'s range or choices, or None."""
    info = item.info
    if info.choices and value not in info.choices:
        return f"{item.name} must be one of {list(info.choices)}, got {value!r}"
    if info.low is not None and not info.low <= value <= info.high:
        return f"{item.name} must be in [{info.low:g}, {info.high:g}], got {value!r}"
    return None


def check_ranges(settings: Any) -> None:
    """Raise ValueError naming the first setting of ``settings`` outside its range or choices."""
    for item in declared(type(settings)):
        problem = range_problem(item, getattr(settings, item.name))
        if problem:
            raise ValueError(problem)


def _cli_type(kind: type) -> Any:
    if kind is bool:
        return lambda text: {"true": True, "false": False}[text.lower()]
    return kind


def add_arguments(parser: argparse.ArgumentParser, cls: type,
                  only: tuple[str, ...] | None = None) -> None:
    """Add a ``--flag`` per setting of ``cls`` (or of the names in ``only``), with the declared
    default, type, choices and description."""
    for item in declared(cls):
        if only is not None and item.name not in only:
            continue
        info = item.info
        options: dict[str, Any] = {"dest": item.name, "help": info.description}
        if typing.get_origin(item.type) is tuple:
            options.update(nargs="*", default=list(item.default))
        else:
            options.update(type=_cli_type(item.type), default=item.default)
        if info.choices:
            options["choices"] = list(info.choices)
        if info.required_on_cli:
            options.update(required=True, default=None)
        parser.add_argument(item.flag, **options)


def from_arguments(cls: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """``cls`` built from parsed options (names missing from ``args`` keep their defaults)."""
    values = {item.name: getattr(args, item.name) for item in declared(cls)
              if hasattr(args, item.name)}
    for item in declared(cls):
        if typing.get_origin(item.type) is tuple and item.name in values:
            values[item.name] = tuple(values[item.name])
    settings = cls(**{**values, **fixed})
    check_ranges(settings)
    return settings


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def markdown_table(cls: type) -> str:
    """The documentation table of ``cls``'s settings (what the docs embed verbatim)."""
    rows = ["| parameter | type | default | range / choices | changes at run time | meaning |",
            "|---|---|---|---|---|---|"]
    for item in declared(cls):
        info = item.info
        allowed = (" \\| ".join(info.choices) if info.choices else
                   f"{info.low:g} .. {info.high:g}" if info.low is not None else "")
        kind = "string[]" if typing.get_origin(item.type) is tuple else item.type.__name__
        rows.append(f"| `{item.name}` | {kind} | `{_cell(item.default)}` | {allowed} | "
                    f"{'no' if info.read_only else 'yes'} | {info.description} |")
    return "\n".join(rows) + "\n"


def yaml_problems(cls: type, parameters: Mapping[str, Any]) -> list[str]:
    """How a YAML ``ros__parameters`` mapping disagrees with ``cls``'s declarations: unknown or
    missing names, and values that differ from the declared defaults or their type (the shipped
    YAML files document the defaults; a hand-edited default belongs in the declaration)."""
    items = {item.name: item for item in declared(cls)}
    problems = [f"{name}: not a declared setting" for name in parameters if name not in items]
    for name, item in items.items():
        if name not in parameters:
            problems.append(f"{name}: declared but missing")
            continue
        value = parameters[name]
        expected = item.default
        if typing.get_origin(item.type) is tuple:
            value = tuple(value or ())
        if type(value) is not type(expected) or value != expected:
            problems.append(f"{name}: {value!r} but the declaration says {expected!r}")
    return problems
