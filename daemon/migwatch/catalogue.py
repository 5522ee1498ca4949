"""The finding catalogue: one record per finding code, read by every place that names a code.

diagnose takes a code's severity from here, alerts its title and whether it is transient, the JSON
schemas their code lists, `init` and the README their descriptions; `tests/test_catalogue.py` fails
when any of those places drifts from this table. Adding a finding starts here (CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from migwatch.model import Severity


@dataclass(frozen=True)
class FindingKind:
    """What one finding code means, for users (README, config comments) and for code (severity, title)."""

    code: str
    severity: Severity  # the severity findings of this code have (see `remark_severity`)
    title: str  # the short problem a notification title names: "Americano-epic3: <title>"
    when: str  # when it fires (README's "when" column)
    what_to_do: str  # README's "what to do" column (the finding's fix says it exactly)
    transient: bool = False  # a running `prisma migrate` makes and removes it: held back meanwhile
    daemon_only: bool = False  # the daemon raises it (it compares with what it saw earlier), not diagnose
    remark_severity: Severity | None = None  # the severity of its remarks, when it also emits those

    @property
    def severities(self) -> tuple[Severity, ...]:
        """Every severity a finding of this code can have, least severe first."""
        both = (self.severity, self.remark_severity) if self.remark_severity else (self.severity,)
        return tuple(sorted(both, key=lambda s: -s.rank))

    @property
    def alerts_by_default(self) -> bool:
        """Errors and warnings interrupt the user; info findings only show in `status` and the log."""
        return self.severity in (Severity.ERROR, Severity.WARNING)


def _kind(code: str, severity: Severity, title: str, when: str, what_to_do: str, **kw: object) -> FindingKind:
    return FindingKind(code, severity, title, when, what_to_do, **kw)  # type: ignore[arg-type]


ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

KINDS: tuple[FindingKind, ...] = (
    _kind(
        "behind_database",
        ERROR,
        "behind the database",
        "the database has applied a migration this worktree's folder lacks",
        "merge the branch that has it (`git -C <wt> merge <branch>`); if it is only in another worktree's "
        "working tree, commit it there first; if no branch has it, it was an abandoned experiment: the alert "
        "says when it was applied",
        transient=True,
    ),
    _kind(
        "pending",
        WARNING,
        "unapplied migration",
        "the folder has a migration the database has not applied",
        "`cd <package dir> && npx prisma migrate deploy`; the alert lists the worktrees that will then be behind",
        transient=True,
    ),
    _kind(
        "checksum_mismatch",
        ERROR,
        "applied migration edited",
        "an applied `migration.sql` no longer matches the checksum in the database",
        "`git -C <wt> checkout <rev> -- <file>` (the commit whose copy matches); the alert names the worktree "
        "whose copy matches and what changed it. Never edit an applied migration: write a new one",
        transient=True,
    ),
    _kind(
        "failed",
        ERROR,
        "failed migration",
        "a migration failed half way (every `migrate deploy` stops with P3009)",
        "undo its partial changes, then `npx prisma migrate resolve --rolled-back=<name>`; or finish them by "
        "hand and `--applied=<name>`. The alert shows the head of Prisma's log",
        transient=True,
    ),
    _kind(
        "out_of_order",
        WARNING,
        "migration out of order",
        "an unapplied migration sorts before the newest applied one",
        "rename its folder to a newer timestamp before it is applied or merged (the alert gives the `mv`)",
        transient=True,
    ),
    _kind(
        "schema_conflict",
        WARNING,
        "conflicting migrations",
        "a migration not yet merged or applied clashes with one written elsewhere (another worktree's, "
        "the base branch's it lacks, or one the database applied from another branch): the same column "
        "changed, dropped or renamed; a table dropped or renamed that the other uses; the same table, enum "
        "value or index created",
        "coordinate before either is merged; against an applied migration, change the pending one before "
        "deploying it",
    ),
    _kind(
        "name_collision",
        WARNING,
        "two migrations, one name",
        "two worktrees have different `migration.sql` files under one migration folder name, neither "
        "applied yet",
        "rename the one that is not shared yet to a new timestamp before either is merged or applied (the "
        "alert shows both files); when git shows one is an older version of the other (edited on its branch "
        "after the fork), merge that branch instead",
    ),
    _kind(
        "behind_base",
        INFO,
        "behind the base branch",
        "`base_branch` has migrations this branch lacks",
        "`git -C <wt> merge <base>` (or rebase)",
    ),
    _kind(
        "stale_client",
        WARNING,
        "Prisma Client is stale",
        "the generated Prisma Client was built from another schema",
        "`cd <package dir> && npx prisma generate`",
    ),
    _kind(
        "conflict_markers",
        ERROR,
        "merge conflict markers",
        "`<<<<<<<`/`>>>>>>>` lines in `schema.prisma` or a `migration.sql`",
        "resolve them; the alert gives file and lines",
    ),
    _kind(
        "missing_sql",
        ERROR,
        "migration.sql missing",
        "a migration folder without `migration.sql`",
        "restore it from git, or remove the empty folder",
    ),
    _kind(
        "unreadable_path",
        ERROR,
        "cannot read migrations",
        "a migrations folder or a `migration.sql` cannot be read (permissions, I/O error)",
        "make it readable (`ls -l` shows who owns it); until then its other alerts are kept, not resolved",
    ),
    _kind(
        "provider_mismatch",
        ERROR,
        "provider mismatch",
        "`migration_lock.toml` names another provider than the datasource (P3019)",
        "make them agree; every migrate command fails until then",
    ),
    _kind(
        "database_unreachable",
        ERROR,
        "database unreachable",
        "cannot connect (at once in `status`, after 3 failed polls in the daemon)",
        "the alert has the URL (password hidden) and the driver's message",
    ),
    _kind(
        "history_denied",
        ERROR,
        "no permission to read the migration history",
        "the database answers, but the URL's role may not `SELECT` from `_prisma_migrations`",
        "`GRANT SELECT ON _prisma_migrations TO <role>` (the alert names the role), or use a URL whose role may",
    ),
    _kind(
        "history_vanished",
        ERROR,
        "migration history vanished",
        "the `_prisma_migrations` table was there and is gone (dropped, or the database was reset)",
        "find out who reset the database before running any migrate command; alerts stay open until it is back",
        daemon_only=True,
    ),
    _kind(
        "not_managed",
        INFO,
        "database not managed by Prisma",
        "the database has no `_prisma_migrations` table",
        "`npx prisma migrate deploy`, or baseline with `migrate resolve --applied`",
    ),
    _kind(
        "migration_running",
        INFO,
        "Prisma migration running",
        "a Prisma migrate command holds its lock",
        "alerts about the history wait until it ends",
    ),
    _kind(
        "unsupported_provider",
        INFO,
        "unsupported provider",
        "a provider other than PostgreSQL or SQLite",
        "not checked",
    ),
    _kind(
        "worktree_prunable",
        INFO,
        "worktree prunable",
        "git still lists a deleted worktree",
        "`git worktree prune`",
    ),
    _kind(
        "discovery",
        WARNING,
        "cannot be checked",
        "a worktree or project cannot be checked (no `DATABASE_URL`, git cannot list the worktrees); "
        "info for remarks (no schema, a computed `prisma.config.ts` value)",
        "the message says what was missing and where migwatch looked",
        remark_severity=INFO,
    ),
)

CATALOGUE: Mapping[str, FindingKind] = {kind.code: kind for kind in KINDS}
CODES: tuple[str, ...] = tuple(CATALOGUE)
TRANSIENT_CODES = frozenset(kind.code for kind in KINDS if kind.transient)


def kind_of(code: str) -> FindingKind:
    """The catalogue record of a code; KeyError for a code that is not in the catalogue."""
    return CATALOGUE[code]


def severity_label(kind: FindingKind) -> str:
    """`error`, or `info/warning` for a code that also emits info remarks."""
    return "/".join(s.value for s in kind.severities)


def readme_table() -> str:
    """README's finding table, generated from the catalogue (checked by a test)."""
    lines = ["| code | severity | when | what to do |", "|---|---|---|---|"]
    for kind in KINDS:
        lines.append(f"| `{kind.code}` | {severity_label(kind)} | {kind.when} | {kind.what_to_do} |")
    return "\n".join(lines)


def config_description(kind: FindingKind) -> str:
    """The `alerts.<code>` description in config_schema.json: `(severity) when; what to do.`"""
    return f"({severity_label(kind)}) {kind.when[0].upper()}{kind.when[1:]}."
