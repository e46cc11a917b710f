"""Another shipper, for the cluster state's tests: a process that opens the state named by
its job, says `ready`, waits for `go` (so that every worker starts at once), does the job
and prints its result as one JSON line.

Usage: python state_worker.py, then one JSON job line on stdin:
    {"settings": {...[state] settings...}, "action": "take", "records": [...], "batch": 1}
        prints the ids of the records this process applied (changed the state with)
    {"settings": {...}, "action": "fire_stale", "fires": [[record, expect], ...]}
        prints how many of its stale records this process fired
"""

from __future__ import annotations

import json
import sys
import time

from accre_monitor.pipeline.state_store import open_state


def main() -> None:
    job = json.loads(sys.stdin.readline())
    store = open_state(job["settings"])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    if job["action"] == "take":
        applied = []
        records, batch = job["records"], job["batch"]
        for start in range(0, len(records), batch):
            taken = store.take(records[start : start + batch])
            applied += [t.record["id"] for t in taken if t.applied]
        result: object = applied
    else:
        result = sum(
            store.fire_stale(record, expect, time.time()) for record, expect in job["fires"]
        )
    store.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
