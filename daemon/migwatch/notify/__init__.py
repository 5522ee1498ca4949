"""Notifiers: desktop, command, terminal and log, and the dispatcher that isolates them from each other."""

from migwatch.notify.base import NOTIFIERS, Notifier, NotifierError
from migwatch.notify.command import CommandNotifier
from migwatch.notify.desktop import DesktopNotifierThread
from migwatch.notify.dispatch import DeliveryResult, Dispatcher, build_notifiers, notify_test
from migwatch.notify.logfile import LogNotifier
from migwatch.notify.terminal import TerminalNotifier

__all__ = [
    "NOTIFIERS",
    "CommandNotifier",
    "DeliveryResult",
    "DesktopNotifierThread",
    "Dispatcher",
    "LogNotifier",
    "Notifier",
    "NotifierError",
    "TerminalNotifier",
    "build_notifiers",
    "notify_test",
]
