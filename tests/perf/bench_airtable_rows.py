"""Benchmark the reads step 5 makes before an upload: `fetch_member_rows` and `preflight_check`.

Run from the repo root (about 25 s with the defaults):

    .venv/bin/python tests/perf/bench_airtable_rows.py
    .venv/bin/python tests/perf/bench_airtable_rows.py --rows 2000

It starts a `FakeAirtable` in this process with Airtable's real limit (5 requests per second per
base), fills the Messages table with ROWS rows of realistic size (a 600-character user summary that
the read must not fetch), and reads the rows of every second member through the real pyairtable
client at the client's default pace (AIRTABLE_MAX_RPS=5). Measured: the wall time, the requests sent
and the 429s the fake refused.

This is a report, not a gate, and not a pytest test: it always exits 0.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes.airtable_server import FAKE_BASE_ID, FAKE_TABLE_ID, FakeAirtable  # noqa: E402
from utils import airtable_crud  # noqa: E402
from utils.airtable_fields import COLUMN_TYPES  # noqa: E402


def main() -> int:
    """Fill the fake table, time the reads, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the Messages table (default 10000)")
    args = parser.parse_args()
    with FakeAirtable() as fake:
        fake.set_schema({**COLUMN_TYPES, "Send Status": "singleSelect"})
        for index in range(args.rows):
            fake.add_row({"User ID": f"u{index}", "Event ID": f"e{index % 40}", "Status": "approved",
                          "Message": f"Hi member {index}! Salsa Night Fri 8pm, 4 seats left: https://cucu.li/b/e7",
                          "User Summary": "Loves dancing and long walks. " * 20})
        os.environ.update(AIRTABLE_API_KEY=fake.token, AIRTABLE_BASE_ID=FAKE_BASE_ID,
                          AIRTABLE_MESSAGES_TABLE_ID=FAKE_TABLE_ID, AIRTABLE_ENDPOINT_URL=fake.url,
                          AIRTABLE_MAX_RPS="5")
        airtable_crud.reset_airtable_client()

        started = time.monotonic()
        report = airtable_crud.preflight_check()
        preflight_seconds = time.monotonic() - started
        time.sleep(1.0)  # let the fake's one-second rate window empty

        before = len(fake.requests)
        started = time.monotonic()
        rows = airtable_crud.fetch_member_rows(f"u{index}" for index in range(0, args.rows, 2))
        fetch_seconds = time.monotonic() - started
        requests = fake.requests[before:]
    print(f"preflight_check: {preflight_seconds:.2f} s, 1 schema request, columns verified: "
          f"{report.columns_verified}")
    print(f"fetch_member_rows: {len(rows)} members from a {args.rows}-row table in {fetch_seconds:.1f} s, "
          f"{len(requests)} requests ({len(requests) / max(fetch_seconds, 1e-9):.1f} per second), "
          f"{fake.rejected_429} refused with 429")
    return 0


if __name__ == "__main__":
    sys.exit(main())
