"""What migrations do to the schema, read with real SQL grammars, and which pairs of them clash.

Pure: text in, plain values out. `parse_migration` never raises on bad SQL; it logs at debug level and
returns None, so one odd file costs a finding, never the check.
"""

from __future__ import annotations

import logging

from migwatch.sqlschema.model import Action, Change, Kind, MigrationChanges, Obj, Unparsable
from migwatch.sqlschema.netchange import net_changes

log = logging.getLogger(__name__)

# Larger files are data loads, not schema changes: the largest migration.sql of five real projects
# (documenso, ghostfolio, papermark, umami, pingvin-share) has 31 KB, and 1 MB of INSERT … VALUES takes
# ≈10 s to read (sqlglot is pure Python).
MAX_SQL_CHARS = 1_000_000

__all__ = ["Action", "Change", "Kind", "MigrationChanges", "Obj", "parse_migration"]


def parse_migration(sql_text: str, provider: str, where: str = "migration.sql") -> MigrationChanges | None:
    """The net changes of one migration.sql for `provider` ("postgresql" or "sqlite"); None if unreadable."""
    if len(sql_text) > MAX_SQL_CHARS:
        log.debug("not parsing %s: %d characters", where, len(sql_text))
        return None
    # The grammars load on first use: sqlglot alone takes ≈0.3 s to import, and most checks parse nothing.
    if provider == "sqlite":
        from migwatch.sqlschema.sqlite import read_statements
    else:
        from migwatch.sqlschema.postgres import read_statements
    try:
        changes, skipped = read_statements(sql_text)
    except Unparsable as exc:
        log.debug("cannot parse %s as %s SQL: %s", where, provider, exc)
        return None
    except RecursionError:
        log.debug("cannot parse %s as %s SQL: nested too deeply", where, provider)
        return None
    if skipped:
        log.debug("%s: %d statement(s) left unclassified", where, skipped)
    return MigrationChanges(net_changes(changes), skipped)
