"""Reading the config file with bounds: a regular file of limited size, YAML with limited depth, aliases
and number length. Whatever sits at the config path (a device, a FIFO, an alias bomb, a 5,000-digit
integer) gives one error line naming the file and the YAML path, quickly, never a hang or a traceback.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from migwatch.display import visible

# A config for hundreds of projects is a few tens of kB; PyYAML reads about 1 MB/s, so this also keeps a
# check-config or a SIGHUP reload of a full-size file well under a second.
MAX_CONFIG_BYTES = 256 * 1024
# Real configs nest 4 levels deep (notifiers.command.argv[0]).
MAX_DEPTH = 32
# Values after expanding every alias (a "billion laughs" bomb expands 9 aliases 9 levels deep).
MAX_EXPANDED_VALUES = 100_000
# Characters of one YAML number: durations and flags need a handful; Python refuses to parse 4,300 digits.
MAX_NUMBER_LENGTH = 32

_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class ConfigInputError(Exception):
    """The file cannot be read, or its YAML cannot be loaded; the message is one line.

    `names_file`: the message already starts with the file's name (and position).
    """

    def __init__(self, message: str, *, names_file: bool) -> None:
        super().__init__(message)
        self.names_file = names_file


def read_config_text(path: Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The text of the regular file `path` (UTF-8, BOM dropped); FileNotFoundError if there is none,
    ConfigInputError for anything else that is not a readable, small, regular UTF-8 file."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused by fstat right after.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path)) from None
        raise ConfigInputError(
            _cannot_read(path, exc.strerror or type(exc).__name__), names_file=True
        ) from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        raise ConfigInputError(_cannot_read(path, f"it is {kind}, not a regular file"), names_file=True)
    with os.fdopen(descriptor, "rb") as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise ConfigInputError(
                _cannot_read(path, exc.strerror or type(exc).__name__), names_file=True
            ) from None
    if len(data) > max_bytes:
        raise ConfigInputError(
            _cannot_read(path, f"larger than {max_bytes // 1024} KiB; a config file is a few kB"),
            names_file=True,
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigInputError(
            _cannot_read(path, f"not UTF-8 text (byte {exc.start})"), names_file=True
        ) from None


def _cannot_read(path: Path, reason: str) -> str:
    return f"{path}: cannot read the config file: {reason}"


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader with limits checked while the document is composed (before anything is built):
    nesting depth, values after alias expansion, number length; and no key given twice in a mapping."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._yaml_path: list[str | int] = []
        self._expanded = 0
        self._sizes: dict[int, int] = {}  # id(node) → values it expands to, once it is complete

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._yaml_path.append(_path_part(parent, index))
        try:
            if self.check_event(AliasEvent):
                return self._compose_alias(parent, index)
            if len(self._yaml_path) > MAX_DEPTH:
                self._refuse(f"nested more than {MAX_DEPTH} levels deep", self._next_mark())
            before = self._expanded
            self._expanded += 1
            self._check_expanded(self._next_mark())
            is_scalar = self.check_event(ScalarEvent)
            node = self._compose(parent, index)
            if is_scalar and node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_LENGTH:
                self._refuse(
                    f"a number {len(node.value)} characters long; at most {MAX_NUMBER_LENGTH} are read",
                    node.start_mark,
                )
            self._sizes[id(node)] = self._expanded - before
            return node
        finally:
            self._yaml_path.pop()

    def _compose_alias(self, parent: Node | None, index: Any) -> Node:
        mark = self._next_mark()
        node = self._compose(parent, index)
        size = self._sizes.get(id(node))
        if size is None:  # the alias sits inside the very value it names: an endless structure
            self._refuse("an alias refers to a value that contains it", mark)
        self._expanded += size
        self._check_expanded(mark)
        return node

    def _compose(self, parent: Node | None, index: Any) -> Node:
        node = super().compose_node(parent, index)
        assert node is not None  # compose_node is only called where an event starts a node
        return node

    def _next_mark(self) -> yaml.Mark:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: yaml.Mark = event.start_mark
        return mark

    def _check_expanded(self, mark: yaml.Mark) -> None:
        if self._expanded > MAX_EXPANDED_VALUES:
            self._refuse(
                f"more than {MAX_EXPANDED_VALUES} values once aliases are expanded (an alias bomb?)", mark
            )

    def _refuse(self, problem: str, mark: yaml.Mark) -> NoReturn:
        where = _format_yaml_path(self._yaml_path[1:])
        raise _LimitError(problem=f"{where}: {problem}", problem_mark=mark)


_KEY = "(key)"


class _LimitError(yaml.MarkedYAMLError):
    """A limit of BoundedLoader was hit: valid YAML, but not a config migwatch reads."""


def _path_part(parent: Node | None, index: Any) -> str | int:
    if isinstance(parent, SequenceNode):
        return int(index)
    if isinstance(parent, MappingNode):
        if isinstance(index, ScalarNode):
            return visible(index.value, 40)
        return _KEY if index is None else "(complex key)"
    return ""


def _format_yaml_path(path: list[str | int]) -> str:
    text = ""
    for part in path:
        if part == _KEY:  # the line and column already point at the key
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _construct_mapping_once(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        try:
            seen = key in first_line
        except TypeError:  # unhashable key: construct_mapping reports it with its position
            continue
        if seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first_line[key] + 1})",
                key_node.start_mark,
            )
        first_line[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_once)


def load_yaml(text: str, source: Path | None) -> Any:
    """The YAML document in `text` (a SafeLoader: no arbitrary objects); ConfigInputError with the
    file, line and column when it is not valid YAML or breaks a limit."""
    where = str(source) if source is not None else "<config>"
    try:
        return yaml.load(text, Loader=BoundedLoader)
    except _LimitError as exc:
        mark = exc.problem_mark
        location = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        raise ConfigInputError(f"{location}: {exc.problem}", names_file=True) from None
    except RecursionError:  # a construct deeper than the interpreter's stack that the depth limit missed
        raise ConfigInputError(f"{where}: nested too deeply to be read", names_file=True) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot be parsed"
        if exc.context and exc.problem and exc.context_mark is not None:
            context_mark = exc.context_mark
            problem += f" ({exc.context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
        location = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        raise ConfigInputError(f"{location}: invalid YAML: {problem}", names_file=True) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigInputError(
            f"{where}:{line}:{column}: invalid YAML: character {_char_code(exc.character)} is not allowed",
            names_file=True,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigInputError(f"{where}: invalid YAML: {exc}", names_file=True) from None


def _char_code(character: str | int) -> str:
    code = character if isinstance(character, int) else ord(character)
    return f"#x{code:04x}"
