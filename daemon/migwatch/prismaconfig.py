"""Reads a Prisma config file (prisma.config.ts & co.) by evaluating a documented subset of TypeScript.

The file is parsed with tree-sitter's TypeScript grammar and its top-level statements are run by a
small evaluator that knows only side-effect-free pieces, so nothing a repository contains is ever
executed. The subset:

- values: string, number and template literals, `true`/`false`/`undefined`/`null`, objects (with
  spread), `as`/`satisfies`/`!`/parentheses (types are ignored), `a || b`, `a ?? b`, `a && b`,
  `!a`, `a === b`, `a ? b : c`, `+` on strings;
- `process.env.X`, `process.env["X"]`, `env("X")` / `env<T>("X")` of `prisma/config` (which throws
  when X is unset or empty, as Prisma's does), `process.cwd()`;
- `__dirname`, `__filename`, `import.meta.dirname|filename|url`, `fileURLToPath(...)`,
  `path.join|resolve|dirname|basename` (`path` imported under any name, or its functions by name),
  `fs.existsSync(p)`;
- `const`/`let` bindings, `try { … }` (its block runs), `if (…) … else …`;
- env loading, in order: `import "dotenv/config"`, `dotenv.config({ path, override })` and
  `config({ path })` imported from `dotenv`, `require("dotenv").config(…)`, `process.loadEnvFile(p)`;
- the export: `export default defineConfig({…})`, `export default {…} satisfies PrismaConfig`,
  `export default config` (a binding), `module.exports = …`.

Anything else evaluates to "unknown", and the keys that depend on it are reported as computed.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from migwatch.prismaconfig_expr import (
    DOTENV_SIDE_EFFECT,
    MissingEnv,
    Unknown,
    Value,
    clip,
    evaluate,
    require_of,
    string_value,
    text_of,
    truthy,
)

MAX_CONFIG_BYTES = 256_000


EnvReader = Callable[[Path], Mapping[str, str]]


@dataclass(frozen=True)
class ConfigValues:
    """What a Prisma config file resolves to, as far as the subset goes."""

    path: Path
    schema: Path | None = None  # absolute, as Prisma resolves it from the config file's folder
    migrations_path: Path | None = None
    has_datasource_url: bool = False
    url: str | None = None
    url_expression: str | None = None  # the source text of datasource.url, for messages
    url_variables: tuple[str, ...] = ()  # env variables datasource.url reads
    missing_env: str | None = None  # env("X") of datasource.url that is not set
    shadow_url_set: bool = False
    env_files: tuple[Path, ...] = ()  # files the config itself loads, in load order
    computed: tuple[str, ...] = ()  # keys (and statements) that could not be evaluated
    unexpected_keys: tuple[str, ...] = ()  # keys Prisma's config shape rejects (datasource.directUrl)
    error: str | None = None  # the file could not be read or parsed at all


@cache
def _parser() -> Any:
    import tree_sitter_typescript
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_typescript.language_typescript()))


def read_prisma_config(path: Path, *, cwd: Path, env: Mapping[str, str], read_env: EnvReader) -> ConfigValues:
    """Evaluate a config file as Prisma would load it from `cwd`, with `env` as the process environment."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return ConfigValues(path=path, error=f"larger than {MAX_CONFIG_BYTES // 1000} kB")
        source = path.read_bytes()
    except OSError as exc:
        return ConfigValues(path=path, error=f"unreadable ({exc.strerror})")
    tree = _parser().parse(source)
    run = _Evaluator(path, cwd, dict(env), read_env)
    exported = run.program(tree.root_node)
    return run.result(exported)


@dataclass
class _Binding:
    value: Value
    touched: list[str] = field(default_factory=list)


class _Evaluator:
    """Runs the top-level statements of one config file (see the module docstring for the subset)."""

    def __init__(self, path: Path, cwd: Path, env: dict[str, str], read_env: EnvReader) -> None:
        self.path = path
        self.cwd = cwd
        self.env = env
        self.read_env = read_env
        self.imports: dict[str, tuple[str, str]] = {}  # local name → (module, imported name or * / default)
        self.bindings: dict[str, _Binding] = {
            "__dirname": _Binding(str(path.parent)),
            "__filename": _Binding(str(path)),
        }
        self.loaded: list[Path] = []
        self.skipped: list[str] = []
        self.touched: list[str] = []
        self.key_path: list[str] = []
        self.key_touches: dict[str, list[str]] = {}
        self.key_text: dict[str, str] = {}

    # --- statements ---------------------------------------------------------------------------------

    def program(self, root: Any) -> Value:
        exported: Value = Unknown("no default export")
        for statement in root.named_children:
            result = self.statement(statement)
            if result is not None:
                exported = result[0]
        return exported

    def statement(self, node: Any) -> tuple[Value] | None:
        """Run one statement; the exported value if it is the export."""
        kind = node.type
        if kind == "import_statement":
            self.import_statement(node)
        elif kind in {"lexical_declaration", "variable_declaration"}:
            for declarator in node.named_children:
                if declarator.type == "variable_declarator":
                    self.declare(declarator)
        elif kind == "export_statement":
            value = node.child_by_field_name("value")
            declaration = node.child_by_field_name("declaration")
            if declaration is not None:
                self.statement(declaration)
            if value is not None and any(child.type == "default" for child in node.children):
                return (self.expression(value),)
        elif kind == "expression_statement":
            return self.expression_statement(node.named_children[0] if node.named_children else None)
        elif kind == "try_statement":
            return self.block(node.child_by_field_name("body"))
        elif kind == "if_statement":
            return self.if_statement(node)
        elif kind == "statement_block":
            return self.block(node)
        elif kind not in {"comment", "interface_declaration", "type_alias_declaration", "empty_statement"}:
            self.skipped.append(clip(node))
        return None

    def block(self, node: Any) -> tuple[Value] | None:
        result = None
        for statement in node.named_children if node is not None else ():
            result = self.statement(statement) or result
        return result

    def if_statement(self, node: Any) -> tuple[Value] | None:
        condition = self.expression(node.child_by_field_name("condition"))
        if isinstance(condition, (Unknown, MissingEnv)):
            self.skipped.append(clip(node))
            return None
        if truthy(condition):
            return self.statement(node.child_by_field_name("consequence"))
        alternative = node.child_by_field_name("alternative")
        if alternative is not None and alternative.named_children:
            return self.statement(alternative.named_children[0])
        return None

    def expression_statement(self, node: Any) -> tuple[Value] | None:
        if node is None:
            return None
        if node.type == "assignment_expression":
            left = node.child_by_field_name("left")
            if left is not None and text_of(left) in {"module.exports", "exports.default"}:
                return (self.expression(node.child_by_field_name("right")),)
            self.skipped.append(clip(node))
            return None
        value = self.expression(node)
        if isinstance(value, Unknown) and node.type == "call_expression":
            self.skipped.append(clip(node))
        return None

    def import_statement(self, node: Any) -> None:
        source = node.child_by_field_name("source")
        module = string_value(source) if source is not None else None
        if module is None:
            return
        clause = next((c for c in node.named_children if c.type == "import_clause"), None)
        if clause is None:
            if module in DOTENV_SIDE_EFFECT:
                self.load_env_file(self.cwd / ".env", override=False)
            return
        for part in clause.named_children:
            if part.type == "identifier":
                self.imports[text_of(part)] = (module, "default")
            elif part.type == "namespace_import":
                names = [c for c in part.named_children if c.type == "identifier"]
                if names:
                    self.imports[text_of(names[-1])] = (module, "*")
            elif part.type == "named_imports":
                for spec in part.named_children:
                    if spec.type != "import_specifier" or any(c.type == "type" for c in spec.children):
                        continue
                    name = spec.child_by_field_name("name")
                    alias = spec.child_by_field_name("alias") or name
                    if name is not None and alias is not None:
                        self.imports[text_of(alias)] = (module, text_of(name))

    def declare(self, declarator: Any) -> None:
        name = declarator.child_by_field_name("name")
        value = declarator.child_by_field_name("value")
        if name is None or name.type != "identifier":
            return
        if value is not None and value.type == "call_expression" and require_of(value) is not None:
            self.imports[text_of(name)] = (require_of(value) or "", "*")
            return
        saved, self.touched = self.touched, []
        result = self.expression(value) if value is not None else None
        self.bindings[text_of(name)] = _Binding(result, self.touched)
        self.touched = saved + self.touched

    # --- results ------------------------------------------------------------------------------------

    def result(self, exported: Value) -> ConfigValues:
        computed = [f"statement `{text}`" for text in self.skipped]
        if isinstance(exported, (Unknown, MissingEnv)) or not isinstance(exported, dict):
            why = exported.why if isinstance(exported, Unknown) else "not an object"
            return ConfigValues(
                path=self.path, env_files=tuple(self.loaded), computed=(f"the export ({why})", *computed)
            )
        schema = self.path_key(exported, ("schema",), computed)
        migrations = self.path_key(exported, ("migrations", "path"), computed)
        datasource = exported.get("datasource")
        url_value = datasource.get("url") if isinstance(datasource, dict) else None
        has_url = isinstance(datasource, dict) and "url" in datasource
        if isinstance(url_value, Unknown):
            computed.append(f"datasource.url ({url_value.why})")
        unexpected = [
            f"datasource.{key}" for key in (datasource or {}) if key not in {"url", "shadowDatabaseUrl"}
        ]
        return ConfigValues(
            path=self.path,
            schema=schema,
            migrations_path=migrations,
            has_datasource_url=has_url,
            url=url_value if isinstance(url_value, str) and url_value else None,
            url_expression=self.key_text.get("datasource.url"),
            url_variables=tuple(dict.fromkeys(self.key_touches.get("datasource.url", []))),
            missing_env=url_value.name if isinstance(url_value, MissingEnv) else None,
            shadow_url_set=isinstance(datasource, dict) and bool(datasource.get("shadowDatabaseUrl")),
            env_files=tuple(self.loaded),
            computed=tuple(computed),
            unexpected_keys=tuple(unexpected) if isinstance(datasource, dict) else (),
        )

    def path_key(self, exported: dict[str, Any], keys: tuple[str, ...], computed: list[str]) -> Path | None:
        value: Any = exported
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (Unknown, MissingEnv)):
            computed.append(".".join(keys) + (f" ({value.why})" if isinstance(value, Unknown) else ""))
            return None
        if not isinstance(value, str) or not value:
            return None
        return Path(posixpath.normpath(posixpath.join(str(self.path.parent), value)))

    # --- env files ----------------------------------------------------------------------------------

    def load_env_file(self, file: Path, *, override: bool) -> None:
        file = Path(posixpath.normpath(str(file)))
        if file not in self.loaded:
            self.loaded.append(file)
        for key, value in self.read_env(file).items():
            if override or key not in self.env:
                self.env[key] = value

    def dotenv_config(self, arguments: list[Value]) -> Value:
        options = arguments[0] if arguments and isinstance(arguments[0], dict) else {}
        paths = options.get("path", ".env")
        override = options.get("override") is True
        for item in paths if isinstance(paths, list) else [paths]:
            if isinstance(item, str):
                self.load_env_file(self.absolute(item), override=override)
            elif item is not None:
                return Unknown("dotenv config path")
        return {"parsed": {}}

    def absolute(self, path: str) -> Path:
        return Path(path) if posixpath.isabs(path) else self.cwd / path

    # --- expressions --------------------------------------------------------------------------------

    def expression(self, node: Any, depth: int = 0) -> Value:
        return evaluate(self, node, depth)
