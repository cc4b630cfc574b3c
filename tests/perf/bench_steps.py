"""Benchmark steps 1-4 against a JSON floor, at two sizes, and check the performance targets.

Run from the repo root (takes about 2-3 minutes on a 2-core machine):

    .venv/bin/python tests/perf/bench_steps.py
    .venv/bin/python tests/perf/bench_steps.py --sizes 2000,20000 --repeat 3   # quicker / steadier

For each size it generates users.json, events.json and messages.json with `python -m utils.sample_data`
(N users, N/10 events, fixed seed and --now) under tests/perf/_work/ (git-ignored), then runs each
step script as its own process and times it. Each step also gets a *floor*: a process that only
`json.loads` the step's input files and `json.dumps` its output in the project's format
(`utils.jsonio.dump_json_text`: indent=2, ensure_ascii=False). To have something to dump, the floor
process also loads the step's output file; that load is timed inside the process and subtracted,
so the floor is strictly "read the inputs + write the output text".

Targets (the issue's): at the largest size every step takes at most 2x its floor; going from the
smallest to the largest size multiplies no step's time by more than 12 (for a 10x size step).
Exit code 0 when every target holds, 1 otherwise. This is not a pytest test.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


WORK_DIR = ROOT / "tests" / "perf" / "_work"
NOW = "2026-11-25T12:00:00Z"
ZONE = "America/New_York"
MAX_FLOOR_RATIO = 2.0
MAX_GROWTH = 12.0

# step script, its inputs (relative to the data dir) and its output.
STEPS = (
    ("step1_user_selection", ("raw/users.json", "raw/messages.json"), "processed/qualified_users.json"),
    ("step2_event_selection", ("raw/events.json",), "processed/qualified_events.json"),
    ("step3_user_profile_enrich",
     ("processed/qualified_users.json", "raw/events.json", "raw/users.json", "processed/qualified_events.json"),
     "processed/enriched_users.json"),
    ("step4_event_enrich", ("processed/qualified_events.json", "raw/users.json"), "processed/enriched_events.json"),
)

# The floor process: argv = output file, then the input files. Prints the seconds spent loading the
# output (which the real step computes instead), so the caller can subtract it.
FLOOR_SCRIPT = """
import json, sys, time
for name in sys.argv[2:]:
    with open(name, encoding="utf-8") as handle:
        json.loads(handle.read())
started = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as handle:
    output = json.loads(handle.read())
loaded = time.perf_counter() - started
text = json.dumps(output, indent=2, ensure_ascii=False) + "\\n"
print(loaded)
"""


def run_measured(command: list[str], cwd: Path) -> tuple[float, int, str]:
    """Run one process; return its wall seconds, its own peak RSS in KiB, and its stdout."""
    # Flush what earlier runs wrote, so that a step's own fsync does not wait for their data.
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        # os.wait4 gives the resource usage of this one child (RUSAGE_CHILDREN would mix them all).
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"command failed ({process.returncode}): {' '.join(command)}\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss, stdout


def measure_step(script: str, inputs: tuple, output: str, data_dir: Path, repeat: int) -> dict:
    """Best-of-`repeat` wall time of the step and of its floor, and the step's peak RSS."""
    command = [sys.executable, str(ROOT / "pipeline" / f"{script}.py"), "--data-dir", str(data_dir),
               "--log-dir", str(data_dir / "logs"), "--now", NOW, "--timezone", ZONE]
    walls, rss = [], 0
    for _ in range(repeat):
        wall, peak, _ = run_measured(command, ROOT)
        walls.append(wall)
        rss = max(rss, peak)
    floor_command = [sys.executable, "-c", FLOOR_SCRIPT, str(data_dir / output)] + [str(data_dir / i) for i in inputs]
    floors = []
    for _ in range(repeat):
        wall, _, stdout = run_measured(floor_command, ROOT)
        floors.append(wall - float(stdout.strip()))
    return {"wall": min(walls), "floor": min(floors), "rss_kib": rss}


def prepare_data(users: int, seed: int) -> Path:
    """Generate the raw exports for one size (N users, N/10 events) in a fresh folder.

    The generator runs in its own process so that this one stays small: a child's peak RSS starts
    from its parent's size at fork time.
    """
    data_dir = WORK_DIR / f"users_{users}"
    shutil.rmtree(data_dir, ignore_errors=True)
    wall, _, _ = run_measured([sys.executable, "-m", "utils.sample_data", "--users", str(users),
                               "--events", str(max(1, users // 10)), "--seed", str(seed), "--now", NOW,
                               "--out", str(data_dir / "raw")], ROOT)
    print(f"generated {users:,} users and {users // 10:,} events in {wall:.1f} s", flush=True)
    return data_dir


def main(argv=None) -> int:
    """Generate, run, print the table and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="user counts, smallest first (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement, best kept (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="sample data seed (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data in tests/perf/_work/")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]

    results: dict[tuple[str, int], dict] = {}
    for users in sizes:
        data_dir = prepare_data(users, args.seed)
        for script, inputs, output in STEPS:
            if not (ROOT / "pipeline" / f"{script}.py").exists():
                print(f"skipped {script}: not written yet", flush=True)
                continue
            results[(script, users)] = measure_step(script, inputs, output, data_dir, args.repeat)
            row = results[(script, users)]
            print(f"  {script} at {users:,} users: {row['wall']:.2f} s (floor {row['floor']:.2f} s)", flush=True)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    print()
    print(f"{'step':<28} {'users':>8} {'wall s':>8} {'floor s':>8} {'ratio':>6} {'peak RSS MB':>12}")
    for (script, users), row in results.items():
        print(f"{script:<28} {users:>8,} {row['wall']:>8.2f} {row['floor']:>8.2f} "
              f"{row['wall'] / row['floor']:>6.2f} {row['rss_kib'] / 1024:>12.0f}")

    print()
    failures = 0
    largest, smallest = sizes[-1], sizes[0]
    for script, _, _ in STEPS:
        big, small = results.get((script, largest)), results.get((script, smallest))
        if big is None:
            continue
        ratio = big["wall"] / big["floor"]
        ok = ratio <= MAX_FLOOR_RATIO
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} {script}: {ratio:.2f}x its floor at {largest:,} users "
              f"(target <= {MAX_FLOOR_RATIO:g}x)")
        if small is not None and largest != smallest:
            growth = big["wall"] / small["wall"]
            ok = growth <= MAX_GROWTH
            failures += not ok
            print(f"{'PASS' if ok else 'FAIL'} {script}: {growth:.1f}x slower from {smallest:,} to {largest:,} users "
                  f"(target <= {MAX_GROWTH:g}x)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
