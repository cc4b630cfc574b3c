"""Benchmark step 5 against the fake Claude API: speed-up, calls per member by stage, CPU per member, cached share.

Run from the repo root (takes about 6 minutes; the --workers 1 run alone is about 5):

    .venv/bin/python tests/perf/bench_step5.py
    .venv/bin/python tests/perf/bench_step5.py --users 32     # quick check, about 1 minute

It generates sample data with `python -m utils.sample_data` (fixed seed and --now) under
tests/perf/_work/step5/ (git-ignored), runs steps 1-4 on it as their own processes, then for each
worker count starts a fresh `FakeAnthropic` in this process (0.5 s latency per call, a
deterministic responder whose answers pass the compliance gate, so no rewrite calls) and runs

    pipeline/step5_match_message.py --limit USERS --workers N --fresh --no-upload --invites-per-seat 0

as a subprocess pointed at it (ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY). Each run gets a fresh fake,
so each starts with a cold prompt cache. `--invites-per-seat 0` turns the cap off so that every
member is written and checked in every run (with the cap, members left without an event cost no
write or check call, which would flatter calls per member).

Measured per run: the process's wall time, the requests the fake received (calls per member by
stage, and the most in flight at once), the step process's CPU time (user + system, from
getrusage of the child) per member: the orchestrator's own cost, since the fake runs in this process, and from the matching requests the fake recorded, the share of input
characters inside the system block marked `cache_control` (the fake counts tokens as characters/4,
so the share is the same in its tokens); the run's claude_calls_*.jsonl gives the cache read and
write tokens as the client saw them.

Targets (the issue's): at least 15x faster at 16 workers than at 1; at most 3.2 calls per user
without faults; at least 70% of the matching input tokens in the cached block when the catalog has
30 or more events. This is a report, not a gate, and not a pytest test: it always exits 0.
"""

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fakes.anthropic_server import FakeAnthropic  # noqa: E402

WORK_DIR = ROOT / "tests" / "perf" / "_work" / "step5"
NOW = "2026-11-25T12:00:00Z"
ZONE = "America/New_York"
MIN_SPEEDUP = 15.0
MAX_CALLS_PER_USER = 3.2
MIN_CACHED_SHARE = 0.70
MIN_CATALOG_EVENTS = 30
STEPS_1_TO_4 = ("step1_user_selection", "step2_event_selection", "step3_user_profile_enrich", "step4_event_enrich")
CAMPAIGNS = ("Seat The Newcomer", "Fill the Table", "Return to Table")


# --- the model: deterministic answers to step 5's four prompts -----------------------------------

def _text_of(content) -> str:
    """The text of a message content or system value: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content or [] if isinstance(block, dict))


def _user_text(body: dict) -> str:
    return _text_of(body["messages"][0]["content"])


def _system_text(body: dict) -> str:
    return _text_of(body.get("system"))


def catalog_size(body: dict) -> int:
    """How many events the matching request's catalog lists ("[N] ..." lines)."""
    return len(re.findall(r"^\[\d+\]", _system_text(body), re.MULTILINE))


def purpose_of(body: dict) -> str:
    """Which of step 5's prompts a request carries: match, write, check or rewrite."""
    text = _user_text(body)
    for prefix, purpose in (("Member profile:", "match"), ("Write one SMS", "write"),
                            ("You review an SMS", "check"), ("This SMS invitation failed", "rewrite")):
        if text.startswith(prefix):
            return purpose
    return "other"


def _first_name(text: str, pattern: str) -> str:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1).strip() if found else "there"


def answer(body: dict) -> dict:
    """Answer like Claude would, deterministically, with messages that pass the compliance gate."""
    purpose = purpose_of(body)
    text = _user_text(body)
    if purpose == "match":
        events = catalog_size(body)
        digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
        return {"choices": [{"event_index": (digest + offset) % max(1, events), "campaign": CAMPAIGNS[digest % 3],
                             "reasoning": "Their interests fit the event and it is near home.",
                             "confidence": 80 - 10 * offset} for offset in range(min(3, max(1, events)))]}
    if purpose == "write":
        first = _first_name(text, r"first name: (.+?)\.$")
        return {"message": f"Hi {first}! A cozy dinner with good people this week. Grab your seat:",
                "reasoning": "Warm and short.", "confidence": 70}
    if purpose == "rewrite":
        first = _first_name(text, r"first name \((.+?)\)")
        return {"message": f"Hi {first}! Dinner with good people this week. Grab your seat:",
                "reasoning": "Fixed.", "confidence": 70}
    if purpose == "check":
        return {"quality_score": 88, "approved": True, "issues": [], "improved_message": None}
    raise ValueError(f"bench: unexpected prompt {text[:80]!r}")


# --- data ----------------------------------------------------------------------------------------------

def run_quiet(command: list[str]) -> str:
    """Run one process from the repo root; stop the benchmark with its stderr if it fails."""
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(command)}\n{result.stderr[-2000:]}")
    return result.stdout


def prepare_data(sample_users: int, sample_events: int, seed: int) -> tuple[Path, int, int]:
    """Generate raw data and run steps 1-4; return the data dir and the enriched user/event counts."""
    data_dir = WORK_DIR / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    run_quiet([sys.executable, "-m", "utils.sample_data", "--users", str(sample_users), "--events",
               str(sample_events), "--seed", str(seed), "--now", NOW, "--out", str(data_dir / "raw")])
    for script in STEPS_1_TO_4:
        run_quiet([sys.executable, str(ROOT / "pipeline" / f"{script}.py"), "--data-dir", str(data_dir),
                   "--log-dir", str(WORK_DIR / "logs_steps"), "--now", NOW, "--timezone", ZONE])
    users = json.loads((data_dir / "processed" / "enriched_users.json").read_text(encoding="utf-8"))
    events = json.loads((data_dir / "processed" / "enriched_events.json").read_text(encoding="utf-8"))
    return data_dir, len(users), len(events)


# --- one step 5 run --------------------------------------------------------------------------------------

def step5_env(fake: FakeAnthropic) -> dict:
    """This environment, with every Claude and Airtable setting replaced by the fake's."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("ANTHROPIC_", "AIRTABLE_"))}
    env.update(ANTHROPIC_API_KEY=fake.api_key, ANTHROPIC_BASE_URL=fake.url, PYTHONPATH=str(ROOT))
    return env


def watch_progress(fake: FakeAnthropic, expected: int, done: threading.Event, label: str) -> None:
    """Print the fake's request count every few seconds until `done` is set."""
    started = time.monotonic()
    while not done.wait(10):
        calls = len(fake.message_bodies)
        print(f"  {label}: {calls}/{expected} calls after {time.monotonic() - started:.0f} s", flush=True)


def run_step5(data_dir: Path, users: int, workers: int, latency: float) -> dict:
    """Run step 5 once against a fresh fake; return what was measured."""
    log_dir = WORK_DIR / f"logs_workers_{workers}"
    shutil.rmtree(log_dir, ignore_errors=True)
    fake = FakeAnthropic().start()
    fake.latency = latency
    fake.responder = answer
    command = [sys.executable, str(ROOT / "pipeline" / "step5_match_message.py"), "--data-dir", str(data_dir),
               "--log-dir", str(log_dir), "--now", NOW, "--timezone", ZONE, "--no-upload", "--fresh",
               "--limit", str(users), "--workers", str(workers), "--invites-per-seat", "0"]
    done = threading.Event()
    watcher = threading.Thread(target=watch_progress, args=(fake, 3 * users, done, f"--workers {workers}"),
                               daemon=True)
    watcher.start()
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            returncode = subprocess.call(command, cwd=ROOT, env=step5_env(fake), stdout=out, stderr=err)
            wall = time.perf_counter() - started
            cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(), err.read().decode()
    finally:
        done.set()
        watcher.join()
        bodies = fake.message_bodies
        max_in_flight = fake.max_in_flight
        fake.stop()
    if returncode != 0:
        raise SystemExit(f"step 5 failed ({returncode}) with --workers {workers}:\n{stderr[-2000:]}")
    records = json.loads((data_dir / "processed" / "processed_messages.json").read_text(encoding="utf-8"))
    step_wall = re.search(r"wall time \(s\)\s+([\d.]+)", stdout)
    return {
        "workers": workers,
        "users": users,
        "wall": wall,
        "cpu": (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime),
        "step_wall": float(step_wall.group(1)) if step_wall else None,
        "calls": len(bodies),
        "purposes": count_purposes(bodies),
        "max_in_flight": max_in_flight,
        "statuses": count_statuses(records),
        "cached": cached_share(bodies),
        "logged": logged_cache_tokens(log_dir),
    }


def count_purposes(bodies: list[dict]) -> dict[str, int]:
    """Requests per prompt kind."""
    counts: dict[str, int] = {}
    for body in bodies:
        counts[purpose_of(body)] = counts.get(purpose_of(body), 0) + 1
    return counts


def count_statuses(records: list[dict]) -> dict[str, int]:
    """Records per status (approved, needs_review, failed)."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.get("status")] = counts.get(record.get("status"), 0) + 1
    return counts


def cached_share(bodies: list[dict]) -> dict:
    """Characters of the matching requests inside the cached system prefix, and in all of them.

    The cached prefix is every system block up to the last one marked `cache_control` (what the
    API caches); the whole request is the system text plus the user message.
    """
    cached = total = events = 0
    for body in bodies:
        if purpose_of(body) != "match":
            continue
        system = body.get("system") or []
        blocks = [{"text": system}] if isinstance(system, str) else system
        marked = [index for index, block in enumerate(blocks) if block.get("cache_control")]
        cached += sum(len(block["text"]) for block in blocks[: marked[-1] + 1]) if marked else 0
        total += len(_system_text(body)) + sum(len(_text_of(message["content"])) for message in body["messages"])
        events = catalog_size(body)
    return {"cached_chars": cached, "total_chars": total, "share": cached / total if total else 0.0,
            "events": events}


def logged_cache_tokens(log_dir: Path) -> dict:
    """Input, cache read and cache write tokens of the matching calls, from claude_calls_*.jsonl."""
    totals = {"calls": 0, "input": 0, "cache_read": 0, "cache_write": 0}
    for path in log_dir.glob("claude_calls_*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            usage = entry.get("usage") or {}
            if entry.get("purpose") != "match" or not usage:
                continue
            totals["calls"] += 1
            totals["input"] += usage.get("input_tokens", 0)
            totals["cache_read"] += usage.get("cache_read_input_tokens", 0)
            totals["cache_write"] += usage.get("cache_creation_input_tokens", 0)
    return totals


# --- the report ------------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(runs: list[dict], enriched_events: int, latency: float) -> None:
    """The table, the cache figures and one PASS/FAIL line per target."""
    base = runs[0]
    events = min(run["cached"]["events"] for run in runs)
    print()
    print(f"{'workers':>7} {'users':>6} {'wall s':>8} {'step s':>7} {'ideal s':>8} {'calls':>6} {'calls/user':>10} "
          f"{'in flight':>9} {'speed-up':>8}")
    for run in runs:
        ideal = run["calls"] * latency / run["workers"]
        step_wall = f"{run['step_wall']:.1f}" if run["step_wall"] is not None else "?"
        print(f"{run['workers']:>7} {run['users']:>6} {run['wall']:>8.1f} {step_wall:>7} {ideal:>8.1f} "
              f"{run['calls']:>6} {run['calls'] / run['users']:>10.2f} {run['max_in_flight']:>9} "
              f"{base['wall'] / run['wall']:>7.1f}x")
    print("  (wall s: the whole process, start-up included; step s: step 5's own 'wall time (s)';"
          f" ideal s: calls x {latency:g} s / workers)")
    for run in runs:
        purposes = ", ".join(f"{name} {count}" for name, count in sorted(run["purposes"].items()))
        statuses = ", ".join(f"{name} {count}" for name, count in sorted(run["statuses"].items()))
        print(f"  --workers {run['workers']}: calls by prompt: {purposes}; records: {statuses}")
        by_stage = {"match": run["purposes"].get("match", 0), "write": run["purposes"].get("write", 0),
                    "check": run["purposes"].get("check", 0) + run["purposes"].get("rewrite", 0)}
        per_member = ", ".join(f"{stage} {count / run['users']:.2f}" for stage, count in by_stage.items())
        print(f"  --workers {run['workers']}: calls per member by stage: {per_member}; "
              f"step process CPU {run['cpu']:.1f} s, {run['fixed_cpu']:.1f} s of it fixed: "
              f"{1000 * (run['cpu'] - run['fixed_cpu']) / run['users']:.1f} ms per member")

    print()
    print(f"event catalog in the matching requests: {events} events ({enriched_events} in enriched_events.json)")
    for run in runs:
        cached, logged = run["cached"], run["logged"]
        logged_total = logged["input"] + logged["cache_read"] + logged["cache_write"]
        logged_share = (logged["cache_read"] + logged["cache_write"]) / logged_total if logged_total else 0.0
        print(f"  --workers {run['workers']}: matching requests: {cached['share']:.1%} of the input characters in the "
              f"cached block ({cached['cached_chars']:,} of {cached['total_chars']:,}); "
              f"call log: {logged['calls']} match calls, {logged['cache_read']:,} cache read + "
              f"{logged['cache_write']:,} cache write + {logged['input']:,} uncached input tokens "
              f"({logged_share:.1%} cached)")

    print()
    if len(runs) > 1:
        best = runs[-1]
        speedup = base["wall"] / best["wall"]
        print(f"{verdict(speedup >= MIN_SPEEDUP)} speed-up {speedup:.1f}x at --workers {best['workers']} "
              f"vs --workers {base['workers']} (target >= {MIN_SPEEDUP:g}x at 16 workers; whole process)")
        if base["step_wall"] and best["step_wall"]:
            step_speedup = base["step_wall"] / best["step_wall"]
            print(f"{verdict(step_speedup >= MIN_SPEEDUP)} speed-up {step_speedup:.1f}x of step 5's own wall time "
                  f"(without interpreter start-up and imports)")
    worst = max(run["calls"] / run["users"] for run in runs)
    print(f"{verdict(worst <= MAX_CALLS_PER_USER)} calls per user {worst:.2f} at most "
          f"(target <= {MAX_CALLS_PER_USER:g}, no faults)")
    share = min(run["cached"]["share"] for run in runs)
    if events >= MIN_CATALOG_EVENTS:
        print(f"{verdict(share >= MIN_CACHED_SHARE)} cached share {share:.1%} of the matching input tokens "
              f"with {events} events (target >= {MIN_CACHED_SHARE:.0%} at >= {MIN_CATALOG_EVENTS} events)")
    else:
        print(f"n/a  cached share {share:.1%}: the catalog has only {events} events, the target applies "
              f"from {MIN_CATALOG_EVENTS}")


def main(argv=None) -> int:
    """Generate, run steps 1-4, run step 5 per worker count, print the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200, help="members step 5 processes (default: %(default)s)")
    parser.add_argument("--workers", default="1,16", help="worker counts, baseline first (default: %(default)s)")
    parser.add_argument("--latency", type=float, default=0.5,
                        help="seconds the fake waits before each answer (default: %(default)s)")
    parser.add_argument("--sample-users", type=int, default=1500,
                        help="users in the generated sample data (default: %(default)s)")
    parser.add_argument("--sample-events", type=int, default=250,
                        help="events in the generated sample data (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="sample data seed (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs in tests/perf/_work/step5/")
    args = parser.parse_args(argv)
    worker_counts = [int(count) for count in args.workers.split(",")]

    started = time.monotonic()
    data_dir, enriched_users, events = prepare_data(args.sample_users, args.sample_events, args.seed)
    print(f"steps 1-4: {enriched_users} enriched users, {events} enriched events "
          f"(from {args.sample_users} users and {args.sample_events} events)", flush=True)
    if enriched_users < args.users:
        print(f"warning: only {enriched_users} enriched users, fewer than --users {args.users}; "
              f"raise --sample-users", flush=True)
    users = min(args.users, enriched_users)

    # The CPU of a run with no member (interpreter start-up, imports, loading, the report), so that the
    # per-member figure is the orchestrator's own cost per member.
    fixed_cpu = run_step5(data_dir, 0, 1, args.latency)["cpu"]
    print(f"step 5 with no member: {fixed_cpu:.2f} s CPU (start-up, imports, loading, report)", flush=True)
    runs = []
    for workers in worker_counts:
        print(f"step 5 with --workers {workers} on {users} users, {args.latency:g} s per call "
              f"(ideal about {3 * users * args.latency / workers:.0f} s)", flush=True)
        runs.append(run_step5(data_dir, users, workers, args.latency))
        runs[-1]["fixed_cpu"] = fixed_cpu
        print(f"  --workers {workers}: {runs[-1]['wall']:.1f} s", flush=True)

    print_report(runs, events, args.latency)
    print(f"\nbenchmark total {time.monotonic() - started:.0f} s")
    if not args.keep:
        shutil.rmtree(WORK_DIR, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
