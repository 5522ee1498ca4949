"""`make bench`: migwatch's speed and memory figures against their goals, written to bench/results.json.

.venv/bin/python bench/run.py                 # everything (≈10 min on 2 cores)
.venv/bin/python bench/run.py --only NAME     # one benchmark (results.json keeps the others)
.venv/bin/python bench/run.py --quick         # small sizes, to smoke-check the code (own output file)
"""

from __future__ import annotations

import argparse
import compileall
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# `tests.support` (PostgreSQL cluster, git repos, Prisma rows) lives at the repository root.
for _path in (str(REPO_ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench_attribution import bench_attribution  # noqa: E402
from bench_config_bombs import bench_config_bombs  # noqa: E402
from bench_daemon import (  # noqa: E402
    bench_db_change,
    bench_file_change,
    bench_idle,
)
from bench_guard import bench_guard_startup  # noqa: E402
from bench_scale import bench_scale  # noqa: E402
from bench_shutdown import bench_shutdown  # noqa: E402
from bench_soak import bench_soak  # noqa: E402
from bench_status import bench_prisma_ratio, bench_status_pg  # noqa: E402
from benchlib import (  # noqa: E402
    BenchError,
    BenchResult,
    log,
    machine_info,
    merge_results,
    summary_table,
)
from setup_worktrees import World  # noqa: E402

BENCHMARKS: dict[str, Callable[[World, BenchResult], None]] = {
    "status_pg_10x200": bench_status_pg,
    "prisma_status_ratio": bench_prisma_ratio,
    "scale_100x1000": bench_scale,
    "file_change_to_notification": bench_file_change,
    "db_change_to_notification": bench_db_change,
    "idle_daemon": bench_idle,
    "attribution_long_history": bench_attribution,
    "guard_startup": bench_guard_startup,
    "config_bombs": bench_config_bombs,
    "shutdown": bench_shutdown,
    "soak": bench_soak,
}
RESULTS = BENCH_DIR / "results.json"
QUICK_RESULTS = BENCH_DIR / "work" / "results.quick.json"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help="run only NAME (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and few samples (smoke check)")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"results file (default: {RESULTS.relative_to(REPO_ROOT)}; --quick: work/)",
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    output: Path = args.output or (QUICK_RESULTS if args.quick else RESULTS)
    invocation = shlex.join([".venv/bin/python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    machine = machine_info()
    # Bytecode for the package, as `pip install` writes it: with PYTHONDONTWRITEBYTECODE set (CI images and
    # this machine set it) an editable install would otherwise compile every module on every command.
    compileall.compile_dir(REPO_ROOT / "daemon" / "migwatch", quiet=1)
    work_dir = BENCH_DIR / "work" / f"run-{os.getpid()}"
    world = World(work_dir, quick=args.quick)
    results: list[BenchResult] = []
    started = time.perf_counter()
    try:
        for name in names:
            result = BenchResult(name)
            log(f"{name}: running{' (quick)' if args.quick else ''}")
            begun = time.perf_counter()
            load_before = os.getloadavg()
            if load_before[0] > machine["nproc"] / 2:
                log(
                    f"load average {load_before[0]:.1f} on {machine['nproc']} CPUs: other work will slow figures"
                )
            try:
                BENCHMARKS[name](world, result)
            except BenchError as error:
                result.status, result.reason = "error", str(error)
            result.elapsed_s = time.perf_counter() - begun
            # Other processes on the machine skew wall times; keep the evidence with the figures.
            result.details["loadavg_1m_before_after"] = [
                round(load_before[0], 2),
                round(os.getloadavg()[0], 2),
            ]
            results.append(result)
            print(result.one_line(), flush=True)
            merge_results(output, [r.to_json(machine, invocation) for r in results])
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        world.close()
    print()
    print(summary_table(results))
    print(
        f"\n{len(results)} benchmark(s) in {time.perf_counter() - started:.0f} s on "
        f"{machine['nproc']} CPUs, {machine['ram_gb']} GB RAM, Python {machine['python']}; "
        f"results in {output.relative_to(REPO_ROOT) if output.is_relative_to(REPO_ROOT) else output}"
    )
    # Missed goals are findings of the benchmark, not failures of `make bench`; broken benchmarks are.
    return 1 if any(r.status == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
