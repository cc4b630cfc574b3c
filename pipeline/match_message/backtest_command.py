"""Step 5's `--backtest`: the backtest of docs/backtest.md from the command line, offline or with Claude.

The Claude ranker sends each case through step 5's own matching request builders (`ClaudeRequests`:
the system block from MATCHING_PROMPT and the catalog, the user prompt, the schema, the validation
and the corrective retry of `ClaudeAsker`), so a prompt edit is measured exactly as the live run
would send it, with "today" set to the case's moment t. Nothing here reads or writes
processed_messages.json, its journal or Airtable: the run reads data/raw and writes
data/processed/backtest.json only.
"""

import argparse
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

from pipeline.match_message.asking import AnswerError, ClaudeAsker, is_transient
from pipeline.match_message.backtest import (
    LIVE_RUN_DEFAULTS, REFUSED_WITH_BACKTEST, OfflineRanker, format_backtest_table, load_previous_backtest,
    run_backtest, save_backtest,
)
from pipeline.match_message.costs import StageEstimate, call_log_averages, estimate_stage, format_usd
from pipeline.match_message.generators import ClaudeRequests
from utils import ai_prompt
from utils.cli import start_step
from utils.errors import PipelineError
from utils.jsonio import load_json_list
from utils.paths import EVENTS_FILE, USERS_FILE, raw_path
from utils.people import load_all_users
from utils.throttle import AdaptiveLimiter

LOG_NAME = "backtest"

@dataclass(frozen=True)
class MatchBuilders:
    """What the backtest takes from the step script to build matching requests as the live run does."""

    requests: ClaudeRequests                    # match(user, events, ask, system), system(catalog, today)
    catalog_text: Callable[[list[dict]], str]   # build_event_catalog
    today_text: Callable[[Any, Any], str]       # today_text(now, zone)
    max_tokens: int

    def system_for(self, catalog: list[dict], now, zone) -> list[dict]:
        """The matching system block for a case, without its cache mark.

        A case's catalog is its own (the attended event is rebuilt without the member), so a cache
        entry would never be read again, and writing one costs 25% more than plain input. The text,
        which is all the model sees, is unchanged.
        """
        blocks = self.requests.system(self.catalog_text(catalog), self.today_text(now, zone))
        return [{key: value for key, value in block.items() if key != "cache_control"} for block in blocks]


class ProjectedOverMaxCost(Exception):
    """The next case would take the projected spending over --max-cost.

    Unlike `asking.BudgetReached` (the actual spend has reached the limit), this is raised before
    anything is spent on the case.
    """


class ClaudeRanker:
    """Claude's matching phase for backtest cases: one matching request per case, as step 5 sends it.

    Thread-safe: `rank_cases` calls it from `--workers` threads. With `max_cost`, a case is not sent
    when what is spent plus the cases in flight (at the average cost so far) would pass it.
    """

    generator = "claude"

    def __init__(self, model: str, builders: MatchBuilders, ask: ClaudeAsker, zone, *,
                 max_cost: Optional[float] = None, expected_case_usd: float = 0.0, logger=None):
        self.model = model
        self.builders = builders
        self.ask = ask
        self.zone = zone
        self.max_cost = max_cost
        self.expected_case_usd = expected_case_usd
        self.logger = logger
        self.asked = 0
        self.answered = 0
        self.failed = 0
        self._lock = threading.Lock()

    @property
    def cost_usd(self) -> float:
        """What the calls so far cost (0 for a model without a price)."""
        return self.ask.usage.cost_usd(self.model) or 0.0

    def _start_case(self) -> None:
        with self._lock:
            if self.max_cost is not None:
                spent = self.cost_usd
                per_case = spent / self.answered if self.answered else self.expected_case_usd
                if spent + per_case * (self.asked - self.answered + 1) > self.max_cost:
                    raise ProjectedOverMaxCost()
            self.asked += 1

    def __call__(self, member_profile: dict, catalog: list[dict], now) -> list[dict]:
        """Up to 3 choices, best first; [] (a miss) when the answer stayed invalid or the call failed."""
        self._start_case()
        system = self.builders.system_for(catalog, now, self.zone)
        try:
            answer = self.builders.requests.match(member_profile, catalog, self.ask, system)
        except AnswerError as exc:
            return self._failed(exc)
        except ai_prompt.ClaudeError as exc:
            if isinstance(exc, ai_prompt.ClaudeUnreachableError) or not is_transient(exc):
                raise  # a bad key, model or network stops the run: every case would fail the same way
            return self._failed(exc)
        finally:
            with self._lock:
                self.answered += 1
        return answer["choices"]

    def _failed(self, exc: Exception) -> list[dict]:
        with self._lock:
            self.failed += 1
        if self.logger:
            self.logger.warning("a case failed and counts as a miss: %s", exc)
        return []


class CaseCollector:
    """A ranker that keeps each case and measures its matching request (built by step 5's builders), sending nothing."""

    generator = "dry-run"

    def __init__(self, builders: MatchBuilders, zone):
        self.builders = builders
        self.zone = zone
        self.cases: list[tuple[dict, list[dict], Any]] = []
        self.chars = 0

    @property
    def calls(self) -> int:
        """The matching requests the run would send: one per case."""
        return len(self.cases)

    def __call__(self, member_profile: dict, catalog: list[dict], now) -> list[dict]:
        """Keep the case and count its request's characters; choose nothing."""
        self.cases.append((member_profile, catalog, now))
        system = self.builders.system_for(catalog, now, self.zone)
        self.builders.requests.match(member_profile, catalog, self._measure, system)
        return []

    def _measure(self, purpose: str, prompt: str, *, system: Any = None, **_options) -> dict:
        self.chars += len(prompt) + sum(len(block.get("text", "")) for block in system or ())
        return {"choices": []}


class Replay:
    """A ranker that gives back answers found earlier, in the order `run_backtest` asks for them.

    `run_backtest` visits the same cases in the same order for the same data and settings, so the
    collecting run and this one line up; the matcher's name and cost come from `source`.
    """

    def __init__(self, answers: list[list[dict]], source: ClaudeRanker):
        self._answers = iter(answers)
        self.generator = source.generator
        self.model = source.model
        self.cost_usd = source.cost_usd

    def __call__(self, member_profile: dict, catalog: list[dict], now) -> list[dict]:
        """The next answer."""
        return next(self._answers)


def rank_cases(cases: list[tuple[dict, list[dict], Any]], ranker: ClaudeRanker, workers: int) -> list[list[dict]]:
    """Every case's choices, ranked by `workers` threads, in case order.

    Raises:
        ProjectedOverMaxCost: --max-cost stopped the run; the cases in flight finish first, no new one starts.
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(ranker, *case) for case in cases]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def refuse_bad_combinations(args: argparse.Namespace) -> None:
    """Raise PipelineError when --backtest comes with a flag of the live run, or a bad number."""
    defaults = getattr(args, LIVE_RUN_DEFAULTS, {})
    refused = [flag for dest, flag in REFUSED_WITH_BACKTEST
               if getattr(args, dest, None) not in (None, False, defaults.get(dest))]
    if refused:
        raise PipelineError(f"--backtest cannot be combined with {', '.join(refused)}: a backtest only "
                            "measures the matching phase on past events; run it without those flags")
    if args.workers < 1:
        raise PipelineError(f"--workers must be at least 1, got {args.workers}")
    if args.limit is not None and args.limit < 1:
        raise PipelineError(f"--limit must be at least 1 case with --backtest, got {args.limit}")


def estimate_backtest(sizer: CaseCollector, model: str, log_dir) -> StageEstimate:
    """The Claude cost of the measured requests: no caching (each case's catalog is its own)."""
    averages = call_log_averages(log_dir)
    if not sizer.calls:
        return estimate_stage("match", 0, prompt_chars=0, model=model)
    return estimate_stage("match", sizer.calls, prompt_chars=sizer.chars / sizer.calls, model=model,
                          output_tokens=averages.output_tokens.get("match"),
                          chars_per_token=averages.chars_per_token)


#: What must match for the change since the previous run to compare the same cases.
COMPARABLE_SETTINGS = ("now", "window_days", "lead_days", "limit", "seed")


def comparison_note(result: dict, previous: Optional[dict]) -> Optional[str]:
    """A warning when the previous run measured other cases or another matcher, else None."""
    if previous is None:
        return None
    notes = []
    differing = [name for name in COMPARABLE_SETTINGS if previous.get(name) != result.get(name)]
    if differing:
        notes.append("other cases (" + ", ".join(f"{name} {previous.get(name)} -> {result.get(name)}"
                                                 for name in differing) + ")")
    if (previous.get("generator"), previous.get("model")) != (result.get("generator"), result.get("model")):
        notes.append(f"another matcher ({previous.get('generator')} {previous.get('model')})")
    if not notes:
        return None
    return "Note: the previous run measured " + " and ".join(notes) + "; the change is not like for like."


def _dry_run_text(result: dict, generator: str, estimate: Optional[StageEstimate], model: str) -> str:
    lines = [f"Backtest dry run ({generator}): {result['cases']} cases ({result['skipped']} skipped: "
             + (", ".join(f"{n} {why}" for why, n in result["skipped_by_reason"].items()) or "none") + ")",
             f"catalogs: {result['mean_catalog_size']} events on average"]
    if estimate is None:
        lines.append("Claude calls: 0, estimated cost $0.0000 (offline)")
    else:
        lines.append(f"Claude calls: {estimate.calls} ({model}), about {estimate.input_tokens:,} input and "
                     f"{estimate.output_tokens:,} output tokens, estimated cost {format_usd(estimate.usd)}")
    lines.append("Nothing was sent and nothing was written.")
    return "\n".join(lines)


def backtest_main(args: argparse.Namespace, builders: MatchBuilders) -> int:
    """Run `--backtest`: rank past cases offline or with Claude, print the table, write backtest.json.

    Args:
        args: Step 5's parsed arguments (`--backtest` set).
        builders: The step script's matching request builders.

    Returns:
        0; failures raise PipelineError (exit 1 with one line).
    """
    refuse_bad_combinations(args)
    run = start_step(LOG_NAME, args)
    raw_users = load_all_users(raw_path(run.data_dir, USERS_FILE))
    raw_events = load_json_list(raw_path(run.data_dir, EVENTS_FILE), what="events")
    settings = {"limit": args.limit, "window_days": args.window_days, "lead_days": args.lead_days,
                "zone": run.zone}
    run.logger.info("backtest: %d users, %d events, %s", len(raw_users), len(raw_events),
                    "offline" if args.offline else "Claude")

    if args.offline:
        if args.dry_run:
            sized = run_backtest(raw_users, raw_events, run.now, CaseCollector(builders, run.zone), **settings)
            print(_dry_run_text(sized, "offline", None, ""))
            return 0
        ranker = OfflineRanker()
        result = run_backtest(raw_users, raw_events, run.now, ranker, **settings)
    else:
        result, ranker = _claude_backtest(args, run, builders, raw_users, raw_events, settings)
        if result is None:
            return 0  # the dry run printed its summary

    out_dir = run.data_dir / "processed"
    previous = load_previous_backtest(out_dir)
    if isinstance(ranker, ClaudeRanker):
        result["failed_cases"] = ranker.failed
    path = save_backtest(result, out_dir)
    table = format_backtest_table(result, previous)
    print(table)
    note = comparison_note(result, previous)
    if note:
        print(note)
    if result.get("failed_cases"):
        print(f"{result['failed_cases']} cases failed (invalid answers or errors, counted as misses): "
              f"see {run.log_path}")
    run.logger.debug("backtest table:\n%s", table)
    run.logger.info("wrote %s", path)
    return 0


def _claude_backtest(args, run, builders: MatchBuilders, raw_users: list, raw_events: list, settings: dict):
    """The Claude run, after its estimate: (result, ranker), or (None, None) after a dry run."""
    model = ai_prompt.resolve_model(args.model)
    sizer = CaseCollector(builders, run.zone)
    sized = run_backtest(raw_users, raw_events, run.now, sizer, **settings)
    estimate = estimate_backtest(sizer, model, run.log_dir)
    if args.dry_run:
        print(_dry_run_text(sized, "claude", estimate, model))
        return None, None
    if args.max_cost is not None and estimate.usd is not None and estimate.usd > args.max_cost:
        raise PipelineError(f"the backtest's estimated cost {format_usd(estimate.usd)} "
                            f"({estimate.calls} cases, {model}) is above --max-cost ${args.max_cost:.4f}; nothing was sent. Raise --max-cost, "
                            "or measure fewer cases with --limit N")
    ai_prompt.get_client()  # a missing key or bad settings fail here, before any call
    ai_prompt.configure_call_log(run.log_dir, run.stamp)
    ask = ClaudeAsker(model, ai_prompt.UsageTotals(), AdaptiveLimiter(args.workers), step=LOG_NAME,
                      max_tokens=builders.max_tokens, logger=run.logger)
    expected = (estimate.usd or 0.0) / estimate.calls if estimate.calls else 0.0
    ranker = ClaudeRanker(model, builders, ask, run.zone, max_cost=args.max_cost, expected_case_usd=expected,
                          logger=run.logger)
    run.logger.info("backtest: %d cases with %s, estimated cost %s", sizer.calls, model, format_usd(estimate.usd))
    try:
        answers = rank_cases(sizer.cases, ranker, args.workers)
    except ProjectedOverMaxCost:
        raise PipelineError(f"--max-cost ${args.max_cost:.4f} reached: stopped after {ranker.asked} of "
                            f"{sizer.calls} cases, having spent ${ranker.cost_usd:.4f}; backtest.json was not "
                            "written (a partial run is not comparable). Raise --max-cost, or use --limit N") from None
    return run_backtest(raw_users, raw_events, run.now, Replay(answers, ranker), **settings), ranker
