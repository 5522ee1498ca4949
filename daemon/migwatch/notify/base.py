"""What every notifier is (a small Protocol), the registry of notifiers by name, and shared helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from migwatch.alerts import Alert
from migwatch.logsetup import one_line, quote_value

__all__ = ["NOTIFIERS", "Notifier", "NotifierError", "one_line", "quote_value", "register"]


class NotifierError(Exception):
    """A notifier could not deliver; the message is one line naming the notifier's problem."""


@runtime_checkable
class Notifier(Protocol):
    """Something that delivers alerts. `send` may raise; `check` returns None when healthy."""

    name: str

    def send(self, alert: Alert) -> None:
        """Deliver one alert (raise on failure)."""
        ...

    def check(self) -> str | None:
        """None when the notifier can deliver, else a one-line description of the problem."""
        ...

    def close(self) -> None:
        """Release threads and processes; the notifier is not used afterwards."""
        ...


NotifierFactory = Callable[..., Notifier]

# name → factory (the class). Filled by the notifier modules as they are imported (see notify/__init__).
NOTIFIERS: dict[str, NotifierFactory] = {}

_F = TypeVar("_F", bound=NotifierFactory)


def register(name: str) -> Callable[[_F], _F]:
    """Class decorator: make a notifier available by `name` in NOTIFIERS."""

    def decorate(factory: _F) -> _F:
        NOTIFIERS[name] = factory
        return factory

    return decorate
