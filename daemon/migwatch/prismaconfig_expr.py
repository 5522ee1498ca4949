"""Expression evaluation for `prismaconfig`: the documented subset of TypeScript, nothing executed."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias, cast
from urllib.parse import unquote, urlsplit

MAX_DEPTH = 64  # expression nesting evaluated; deeper is "unknown"
DOTENV_MODULES = frozenset({"dotenv", "@dotenvx/dotenvx"})
DOTENV_SIDE_EFFECT = frozenset({"dotenv/config", "dotenv/config.js", "@dotenvx/dotenvx/config"})
PATH_MODULES = frozenset({"path", "node:path", "path/posix", "node:path/posix"})
URL_MODULES = frozenset({"url", "node:url"})
FS_MODULES = frozenset({"fs", "node:fs"})
PRISMA_CONFIG_MODULES = frozenset({"prisma/config", "@prisma/config"})


@dataclass(frozen=True)
class Unknown:
    """A value the evaluator cannot know; `why` is the source text that made it so."""

    why: str


@dataclass(frozen=True)
class MissingEnv:
    """`env("X")` with X unset or empty: Prisma's own `env()` throws and the config fails to load."""

    name: str


Value: TypeAlias = "str | float | bool | dict[str, Any] | list[Any] | Unknown | MissingEnv | None"


class Scope(Protocol):
    """What expressions read and change in the evaluator running a config file."""

    path: Path
    cwd: Path
    env: dict[str, str]
    imports: dict[str, tuple[str, str]]
    bindings: dict[str, Any]
    touched: list[str]
    key_path: list[str]
    key_touches: dict[str, list[str]]
    key_text: dict[str, str]

    def dotenv_config(self, arguments: list[Value]) -> Value: ...

    def load_env_file(self, file: Path, *, override: bool) -> None: ...

    def absolute(self, path: str) -> Path: ...


_WRAPPERS = frozenset(
    {
        "parenthesized_expression",
        "as_expression",
        "satisfies_expression",
        "non_null_expression",
        "type_assertion",
    }
)


def evaluate(ev: Scope, node: Any, depth: int) -> Value:
    """The value of an expression node, or Unknown/MissingEnv."""
    if node is None:
        return None
    if depth > MAX_DEPTH:
        return Unknown("nested too deeply")
    kind = node.type
    if kind in _WRAPPERS:
        inner = next((c for c in node.named_children if not c.type.startswith("type")), None)
        return evaluate(ev, inner, depth + 1)
    if kind == "string":
        return string_value(node)
    if kind == "template_string":
        return _template(ev, node, depth)
    if kind == "number":
        try:
            return float(text_of(node))
        except ValueError:
            return Unknown(clip(node))
    if kind in {"true", "false"}:
        return bool(kind == "true")
    if kind in {"null", "undefined"}:
        return None
    if kind == "identifier":
        return _identifier(ev, text_of(node))
    if kind == "object":
        return _object(ev, node, depth)
    if kind == "array":
        return [evaluate(ev, child, depth + 1) for child in node.named_children]
    if kind == "member_expression":
        return _member(ev, node, depth)
    if kind == "subscript_expression":
        return _subscript(ev, node, depth)
    if kind == "binary_expression":
        return _binary(ev, node, depth)
    if kind == "unary_expression":
        return _unary(ev, node, depth)
    if kind == "ternary_expression":
        condition = evaluate(ev, node.child_by_field_name("condition"), depth + 1)
        if isinstance(condition, (Unknown, MissingEnv)):
            return condition
        branch = "consequence" if truthy(condition) else "alternative"
        return evaluate(ev, node.child_by_field_name(branch), depth + 1)
    if kind == "call_expression":
        return _call(ev, node, depth)
    return Unknown(clip(node))


def _identifier(ev: Scope, name: str) -> Value:
    binding = ev.bindings.get(name)
    if binding is not None:
        ev.touched += binding.touched
        return cast(Value, binding.value)
    if name == "undefined":
        return None
    return Unknown(name)


def _template(ev: Scope, node: Any, depth: int) -> Value:
    parts: list[str] = []
    for child in node.named_children:
        if child.type == "template_substitution":
            value = evaluate(ev, child.named_children[0] if child.named_children else None, depth + 1)
            if isinstance(value, (Unknown, MissingEnv)):
                return value
            parts.append(_jsstring_value(value))
        else:
            parts.append(text_of(child))
    return "".join(parts)


def _object(ev: Scope, node: Any, depth: int) -> Value:
    result: dict[str, Any] = {}
    for child in node.named_children:
        if child.type == "pair":
            key_node = child.child_by_field_name("key")
            key = string_value(key_node) if key_node.type == "string" else text_of(key_node)
            if key is None:
                return Unknown(clip(child))
            result[key] = _keyed(ev, key, child.child_by_field_name("value"), depth)
        elif child.type == "shorthand_property_identifier":
            result[text_of(child)] = _identifier(ev, text_of(child))
        elif child.type == "spread_element":
            spread = evaluate(ev, child.named_children[0] if child.named_children else None, depth + 1)
            if isinstance(spread, dict):
                result.update(spread)
            elif isinstance(spread, (Unknown, MissingEnv)):
                return spread
        elif child.type != "comment":
            return Unknown(clip(child))
    return result


def _keyed(ev: Scope, key: str, value_node: Any, depth: int) -> Value:
    """Evaluate a property's value, remembering its source text and the env variables it read."""
    ev.key_path.append(key)
    saved, ev.touched = ev.touched, []
    try:
        value = evaluate(ev, value_node, depth + 1)
    finally:
        dotted = ".".join(ev.key_path)
        ev.key_touches[dotted] = list(ev.touched)
        if value_node is not None:
            ev.key_text[dotted] = " ".join(text_of(value_node).split())
        ev.touched = saved + ev.touched
        ev.key_path.pop()
    return value


def _member(ev: Scope, node: Any, depth: int) -> Value:
    obj = node.child_by_field_name("object")
    prop = text_of(node.child_by_field_name("property"))
    owner = text_of(obj)
    if owner == "process.env":
        ev.touched.append(prop)
        return ev.env.get(prop)
    if obj.type == "meta_property":  # import.meta.*
        return {
            "dirname": str(ev.path.parent),
            "filename": str(ev.path),
            "url": ev.path.as_uri(),
        }.get(prop, Unknown(clip(node)))
    value = evaluate(ev, obj, depth + 1)
    if isinstance(value, dict):
        return value.get(prop)
    if isinstance(value, (Unknown, MissingEnv)):
        return value
    return Unknown(clip(node))


def _subscript(ev: Scope, node: Any, depth: int) -> Value:
    obj = node.child_by_field_name("object")
    index = evaluate(ev, node.child_by_field_name("index"), depth + 1)
    if text_of(obj) == "process.env" and isinstance(index, str):
        ev.touched.append(index)
        return ev.env.get(index)
    value = evaluate(ev, obj, depth + 1)
    if isinstance(value, dict) and isinstance(index, str):
        return value.get(index)
    return Unknown(clip(node))


def _binary(ev: Scope, node: Any, depth: int) -> Value:
    operator = text_of(node.child_by_field_name("operator"))
    left = evaluate(ev, node.child_by_field_name("left"), depth + 1)
    if operator in {"||", "??", "&&"}:
        if isinstance(left, (Unknown, MissingEnv)):
            return left
        takes_left = {"||": truthy(left), "??": left is not None, "&&": not truthy(left)}[operator]
        return left if takes_left else evaluate(ev, node.child_by_field_name("right"), depth + 1)
    right = evaluate(ev, node.child_by_field_name("right"), depth + 1)
    for side in (left, right):
        if isinstance(side, (Unknown, MissingEnv)):
            return side
    if operator in {"===", "=="}:
        return left == right
    if operator in {"!==", "!="}:
        return left != right
    if operator == "+" and (isinstance(left, str) or isinstance(right, str)):
        return _jsstring_value(left) + _jsstring_value(right)
    return Unknown(clip(node))


def _unary(ev: Scope, node: Any, depth: int) -> Value:
    operator = text_of(node.child_by_field_name("operator"))
    value = evaluate(ev, node.child_by_field_name("argument"), depth + 1)
    if isinstance(value, (Unknown, MissingEnv)):
        return value
    if operator == "!":
        return not truthy(value)
    return Unknown(clip(node))


def _call(ev: Scope, node: Any, depth: int) -> Value:
    function = node.child_by_field_name("function")
    arguments_node = node.child_by_field_name("arguments")
    args = [evaluate(ev, a, depth + 1) for a in (arguments_node.named_children if arguments_node else ())]
    module, name = _callee(ev, function)
    if module in PRISMA_CONFIG_MODULES and name == "defineConfig":
        return args[0] if args else Unknown(clip(node))
    if module in PRISMA_CONFIG_MODULES and name == "env":
        return _prisma_env(ev, args, node)
    if module in DOTENV_MODULES and name == "config":
        return ev.dotenv_config(args)
    if module == "process" and name == "loadEnvFile":
        target = args[0] if args else ".env"
        if not isinstance(target, str):
            return Unknown(clip(node))
        ev.load_env_file(ev.absolute(target), override=False)
        return None
    if module == "process" and name == "cwd":
        return str(ev.cwd)
    if module in PATH_MODULES:
        return _path_call(ev, name, args, node)
    if module in URL_MODULES and name == "fileURLToPath" and len(args) == 1 and isinstance(args[0], str):
        return unquote(urlsplit(args[0]).path) if args[0].startswith("file:") else Unknown(clip(node))
    if module in FS_MODULES and name == "existsSync" and len(args) == 1 and isinstance(args[0], str):
        return ev.absolute(args[0]).exists()
    if function is not None and text_of(function) == "String" and len(args) == 1:
        return args[0] if isinstance(args[0], (Unknown, MissingEnv)) else _jsstring_value(args[0])
    return Unknown(clip(node))


def _callee(ev: Scope, function: Any) -> tuple[str, str]:
    """(module, exported name) a callee refers to: `join` from path, `dotenv.config`, `process.cwd`…"""
    if function is None:
        return "", ""
    if function.type == "identifier":
        module, name = ev.imports.get(text_of(function), ("", ""))
        return module, name
    if function.type == "member_expression":
        obj = function.child_by_field_name("object")
        prop = text_of(function.child_by_field_name("property"))
        if obj.type == "identifier":
            if text_of(obj) == "process":
                return "process", prop
            module, name = ev.imports.get(text_of(obj), ("", ""))
            return (module, prop) if name in {"*", "default"} else ("", "")
        if obj.type == "call_expression" and require_of(obj) is not None:  # require("dotenv").config()
            return require_of(obj) or "", prop
    return "", ""


def _prisma_env(ev: Scope, args: list[Value], node: Any) -> Value:
    if len(args) != 1 or not isinstance(args[0], str):
        return Unknown(clip(node))
    ev.touched.append(args[0])
    value = ev.env.get(args[0])
    return value if value else MissingEnv(args[0])  # Prisma's env() throws on unset and on ""


def _path_call(ev: Scope, name: str, args: list[Value], node: Any) -> Value:
    if any(isinstance(a, (Unknown, MissingEnv)) for a in args) or not all(isinstance(a, str) for a in args):
        bad = next((a for a in args if isinstance(a, (Unknown, MissingEnv))), None)
        return bad if bad is not None else Unknown(clip(node))
    parts = [str(a) for a in args]
    if name == "join":
        return posixpath.normpath(posixpath.join(*parts)) if parts else "."
    if name == "resolve":
        return posixpath.normpath(posixpath.join(str(ev.cwd), *parts))
    if name == "dirname" and len(parts) == 1:
        return posixpath.dirname(parts[0].rstrip("/")) or "."
    if name == "basename" and parts:
        base = posixpath.basename(parts[0].rstrip("/"))
        return base.removesuffix(parts[1]) if len(parts) > 1 else base
    return Unknown(clip(node))


def _jsstring_value(value: Value) -> str:
    """String(value) as JavaScript prints it."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, str):
        return value
    return "[object Object]"


def text_of(node: Any) -> str:
    return bytes(node.text).decode("utf-8", "replace")


def clip(node: Any) -> str:
    text = " ".join(text_of(node).split())
    return text if len(text) <= 60 else text[:59] + "…"


def string_value(node: Any) -> str | None:
    if node.type != "string":
        return None
    return "".join(
        text_of(c) for c in node.named_children if c.type in {"string_fragment", "escape_sequence"}
    )


def require_of(call: Any) -> str | None:
    """`require("x")` → "x"."""
    function = call.child_by_field_name("function")
    arguments = call.child_by_field_name("arguments")
    if function is None or text_of(function) != "require" or arguments is None:
        return None
    args = arguments.named_children
    return string_value(args[0]) if len(args) == 1 else None


def truthy(value: Value) -> bool:
    return value not in (None, "", 0, 0.0, False)
