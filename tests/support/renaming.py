"""Give every name in a diagnose case a hostile suffix: migration names, worktree folders, branches.

`rename_case` walks the plain model objects of a case (frozen dataclasses, tuples, sets, mappings,
paths and strings) and rewrites, everywhere they appear:
- every migration name `N` (folder or history row) into `N + payload`, so timestamp order is kept
  (or `payload + N` with `leading=True`: where a name could become an option);
- every worktree folder `/home/dev/F` into `<root>/F + payload`, so the case's paths live in a real
  folder (`root`) where a printed `cd` can succeed;
- every branch name (whole strings only: "main" is also a substring of other words) into `B + payload`.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

CASE_ROOT = "/home/dev"


def collect(value: Any, keep: Callable[[Any], bool], found: list[Any]) -> None:
    """Every object inside `value` for which `keep` is true (recursing through the same shapes)."""
    if keep(value):
        found.append(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            collect(getattr(value, item.name), keep, found)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            collect(key, keep, found)
            collect(item, keep, found)
    elif isinstance(value, (tuple, list, set, frozenset)):
        for item in value:
            collect(item, keep, found)


class Renamer:
    """Rewrites the names of one case for one payload."""

    def __init__(
        self,
        migrations: Iterable[str],
        branches: Iterable[str],
        payload: str,
        root: Path,
        *,
        leading: bool = False,
    ) -> None:
        self.payload = payload
        self.leading = leading  # put the payload before each name instead of after it
        self.root = str(root)
        ordered = sorted(set(migrations), key=len, reverse=True)
        self._migrations = re.compile("|".join(re.escape(name) for name in ordered)) if ordered else None
        self._branches = frozenset(branches)
        self._folder = re.compile(re.escape(CASE_ROOT) + r"/([^/]+)")

    def _named(self, name: str) -> str:
        return self.payload + name if self.leading else name + self.payload

    def text(self, value: str) -> str:
        if value in self._branches:  # git refuses branch names that start with `-`: a suffix only
            return value + self.payload
        if self._migrations is not None:
            value = self._migrations.sub(lambda m: self._named(m.group(0)), value)
        return self._folder.sub(lambda m: f"{self.root}/{self._named(m.group(1))}", value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Path):
            return Path(self.text(str(value)))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                item.name: self(getattr(value, item.name)) for item in dataclasses.fields(value) if item.init
            }
            return dataclasses.replace(value, **changes)
        if isinstance(value, types.MappingProxyType):
            return types.MappingProxyType({self(k): self(v) for k, v in value.items()})
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return tuple(self(item) for item in value)
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, frozenset):
            return frozenset(self(item) for item in value)
        if isinstance(value, set):
            return {self(item) for item in value}
        return value
