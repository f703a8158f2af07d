"""Option values converted without building pydantic adapters first.

typer builds a pydantic `TypeAdapter` for every parameter of the command it
runs, given or not, and importing pydantic and building them costs a review
or a commit hook about a tenth of its half second. The values our commands
take are paths, strings, lists of them and choices; for those, an option not
given (None) and a value typer's own helpers accept are converted here, with
those helpers, to what typer would give. Anything else, and every value they
reject, goes to typer's own conversion, so its results and error messages
are typer's (tests/test_cli_coerce.py compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import coerce_cli_choice, coerce_cli_path, routes_to_path

if TYPE_CHECKING:
    from typer._click import Context
    from typer.core import _TyperParameter


@dataclass(frozen=True)
class QuickParam(RuntimeParam):
    """typer's conversion of one parameter, its pydantic part built only when needed."""

    descriptor: TypeDescriptor

    def coerce(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:  # as typer's `RuntimeParam.coerce`, before any adapter
            return () if multi else None
        try:
            quick = _quick(self.descriptor, value, multi, param, ctx)
        except Exception:  # typer's own conversion says what is wrong
            quick = None
        if quick is not None:
            return quick[0]
        return build_runtime_param(self.descriptor).coerce(value, param=param, ctx=ctx)

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)


def quick_param(param: Any) -> None:
    """Give a typer parameter `QuickParam` as its conversion (others are left alone)."""
    desc = getattr(param, "type_descriptor", None)
    if isinstance(desc, TypeDescriptor) and getattr(param, "_runtime_param", 0) is None:
        param._runtime_param = QuickParam(desc.parameter_info, desc.annotation, desc)


def _quick(
    desc: TypeDescriptor, value: Any, multi: bool, param: _TyperParameter, ctx: Context
) -> tuple[Any] | None:
    """(typer's value) for the types converted here, or None."""
    info = desc.parameter_info
    if desc.file_annotation is not None or info.parser is not None:
        return None
    annotation: Any = desc.annotation
    if get_origin(annotation) is list:
        if not multi or isinstance(value, str) or not isinstance(value, (list, tuple)):
            return None
        (item,) = get_args(annotation)
        out = []
        for v in value:
            one = _one(item, info, v, param, ctx)
            if one is None:
                return None
            out.append(one[0])
        return (out,)
    if multi:
        return None
    return _one(annotation, info, value, param, ctx)


def _one(
    annotation: Any, info: Any, value: Any, param: _TyperParameter, ctx: Context
) -> tuple[Any] | None:
    if annotation is str and isinstance(value, str):
        return (value,)
    if annotation is Path and isinstance(value, str) and info.path_type is None:
        if not routes_to_path(annotation, info):
            return None
        # pydantic's Path of a string is Path(string); the checks are typer's
        return (coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx),)
    enum = isinstance(annotation, type) and issubclass(annotation, Enum)
    if enum and isinstance(value, (str, annotation)):
        choices = list(annotation)
        return (
            coerce_cli_choice(value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx),
        )
    return None
