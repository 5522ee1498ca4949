"""What migrations do to the schema, read with real SQL grammars, and which pairs of them clash.

Pure: text in, plain values out. `parse_migration` never raises on bad SQL; it logs at debug level and
returns None, so one odd file costs a finding, never the check.
"""

from __future__ import annotations

import logging

from migwatch.sqlschema import postgres, sqlite
from migwatch.sqlschema.model import Action, Change, Kind, MigrationChanges, Obj
from migwatch.sqlschema.netchange import net_changes

log = logging.getLogger(__name__)

__all__ = ["Action", "Change", "Kind", "MigrationChanges", "Obj", "parse_migration"]


def parse_migration(sql_text: str, provider: str, where: str = "migration.sql") -> MigrationChanges | None:
    """The net changes of one migration.sql for `provider` ("postgresql" or "sqlite"); None if unreadable."""
    reader = sqlite.read_statements if provider == "sqlite" else postgres.read_statements
    try:
        changes, skipped = reader(sql_text)
    except postgres.Unparsable as exc:
        log.debug("cannot parse %s as %s SQL: %s", where, provider, exc)
        return None
    except RecursionError:
        log.debug("cannot parse %s as %s SQL: nested too deeply", where, provider)
        return None
    if skipped:
        log.debug("%s: %d statement(s) left unclassified", where, skipped)
    return MigrationChanges(net_changes(changes), skipped)
