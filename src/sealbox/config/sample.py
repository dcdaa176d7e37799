"""Render the commented sample config and the reference page from the pydantic models."""

from __future__ import annotations

import json
import textwrap
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sealbox.backends.options import DestinationOptions
from sealbox.config.models import Config

__all__ = ["reference_markdown", "sample_toml"]

# Table-valued examples: names to use for dict keys in the sample.
_DICT_KEYS = {"destinations": "offsite"}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes an annotation admits (through Optional, Union, list, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        found: list[type[BaseModel]] = []
        for arg in get_args(annotation):
            found += _models_in(arg)
        return found
    return []


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(
        get_origin(a) is list for a in get_args(annotation) if get_origin(annotation) is not list
    )


def _key(name: str, info: FieldInfo) -> str:
    return info.alias or name


def _scalar_lines(model: type[BaseModel], given: dict[str, Any] | None = None) -> list[str]:
    """Comment + ``key = value`` lines for a table's scalar fields.

    ``given`` holds the values the parent field's example sets; then only those are active and
    every other field is shown commented out.
    """
    lines: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if _models_in(annotation) and get_origin(annotation) not in (dict, Literal):
            continue
        if get_origin(annotation) is dict and _models_in(get_args(annotation)[1]):
            continue
        key = _key(name, info)
        example = info.examples[0] if info.examples else None
        default = info.get_default(call_default_factory=True)
        lines += ["# " + line for line in textwrap.wrap(info.description or "", 96)]
        if given is not None:
            if key in given:
                lines.append(f"{key} = {_toml_value(given[key])}")
            else:
                shown = example if example is not None else default
                lines.append(f"# {key} = {_toml_value(shown) if shown is not None else '...'}")
        elif example is None:
            lines.append(f"# {key} = {_toml_value(default) if default is not None else '...'}")
        elif info.is_required() or example != default:
            lines.append(f"{key} = {_toml_value(example)}")
        else:
            lines.append(f"# {key} = {_toml_value(example)}  (default)")
    return lines


def _tables(model: type[BaseModel], path: str, out: list[str], commented: bool = False) -> None:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        key = _key(name, info)
        sub = f"{path}.{key}" if path else key
        if get_origin(annotation) is dict:
            models = _models_in(get_args(annotation)[1])
            examples = [
                (m, m.EXAMPLE_URL)
                for m in models
                if issubclass(m, DestinationOptions) and m.EXAMPLE_URL is not None
            ]
            if examples:  # a union of backends' options: one table per kind, the first active
                for i, (option_model, url) in enumerate(examples):
                    kind = url.split("://")[0].split("+")[0]
                    table = f"{sub}.{_DICT_KEYS.get(key, 'example')}" + (f"-{kind}" if i else "")
                    given = {"url": url}
                    _emit(option_model, f"[{table}]", table, info, out, commented or i > 0, given)
            elif models:
                table = f"{sub}.{_DICT_KEYS.get(key, 'example')}"
                _emit(models[0], f"[{table}]", table, info, out, commented)
            continue
        models = _models_in(annotation)
        if not models:
            continue
        # A section the sample shows commented out (it names destinations the sample lacks).
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        off = commented or bool(extra.get("sample_commented"))
        if _is_list(annotation) and get_origin(annotation) is list:
            for i, member in enumerate(models):
                _emit(member, f"[[{sub}]]", sub, info, out, off or i > 0)
        else:
            _emit(models[0], f"[{sub}]", sub, info, out, off)


def _emit(
    model: type[BaseModel],
    header: str,
    path: str,
    info: FieldInfo,
    out: list[str],
    commented: bool,
    given: dict[str, Any] | None = None,
) -> None:
    c = "# " if commented else ""
    out.append("")
    doc = info.description or ""
    if model.__doc__ and given is not None:
        doc += " " + " ".join(model.__doc__.split())
    if commented:
        doc += " (another kind; uncomment to use)"
    out += [f"# {line}" for line in textwrap.wrap(doc, 96)]
    out.append(f"{c}{header}")
    if given is None and info.examples and isinstance(info.examples[0], dict):
        given = info.examples[0]
    out += [f"{c}{line}" for line in _scalar_lines(model, given)]
    _tables(model, path, out, commented)


def sample_toml() -> str:
    """The commented sample configuration; it validates as is."""
    out = [
        "# Sealbox configuration (TOML). Generated from the schema by `sealbox config sample`.",
        "# Check it with `sealbox config check --config FILE`.",
    ]
    _tables(Config, "", out)
    return "\n".join(out).lstrip("\n") + "\n"


def reference_markdown() -> str:
    """``docs/reference/config.md``: every option with its description."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `src/sealbox/config/models.py` (`python -m sealbox.config.sample --markdown`);",
        "a test keeps it in step. The same schema validates configs (`sealbox config check`)",
        "and prints the sample (`sealbox config sample`).",
        "",
        "## Sample",
        "",
        "```toml",
        sample_toml().rstrip("\n"),
        "```",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    print(reference_markdown() if "--markdown" in sys.argv else sample_toml(), end="")
