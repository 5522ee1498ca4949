"""Test infrastructure: real PostgreSQL, real git worktrees, a headless notification server, leak checks.

Import as `tests.support.…` (tests/ is a package; pytest's rootdir /work/main is on sys.path).
"""
