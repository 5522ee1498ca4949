"""migwatch: watches every git worktree of a Prisma project and the databases they share."""

__version__ = "0.1.0"
