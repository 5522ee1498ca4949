"""migwatch's tests (a package, so that `tests.support` is importable from tests, conftest and bench)."""
