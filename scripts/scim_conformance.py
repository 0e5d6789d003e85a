"""Runs scim2-tester's checks against a SCIM base URL and prints the results.

Usage: python scim_conformance.py BASE_URL TOKEN
Exit status: 0 when no check errored, 1 otherwise.
"""

import collections
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


def main() -> int:
    base_url, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client)
    counts = collections.Counter()
    for r in results:
        counts[r.status.name] += 1
        where = f"[{r.resource_type}] " if r.resource_type else ""
        line = f"{r.status.name:8} {where}{r.title}"
        if r.status not in (Status.SUCCESS,) and r.reason:
            line += f": {r.reason.splitlines()[0][:300]}"
        print(line)
    print()
    print("scim2-tester results: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 1 if counts.get("ERROR") or counts.get("CRITICAL") else 0


if __name__ == "__main__":
    sys.exit(main())
