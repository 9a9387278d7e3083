"""A separate OS process driving the desk, for the multi-process concurrency test.

Run as `python -m tests.triage.desk_worker URL SPEC_JSON`: it enqueues its share of patients
and runs its share of doctors with its own Redis connections and event loop, then prints one
JSON line with what it did. Shared logic lives in `tests.triage.desk_load`.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests.triage.desk_load import WorkSpec, run_share


def main() -> None:
    url, spec_json = sys.argv[1], sys.argv[2]
    spec = WorkSpec(**json.loads(spec_json))
    summary = asyncio.run(run_share(url, spec))
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
