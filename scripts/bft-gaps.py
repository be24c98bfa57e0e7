#!/usr/bin/env python3
"""Where the time between two blocks of a validator set goes, from the validators' logs.

Run a set with debug logs kept, then point this at the directory:

    RUST_LOG="warn,cairn_consensus::app=debug,cairn_sequencer::builder=debug" \
        cairn bench bft --validators 4 --rate 1000 --duration 8 --keep
    scripts/bft-gaps.py /tmp/cairn-bench-bft-PID

Prints p50 / p90 / max of: the last fragment of block h to the first of h + 1 (the
time no block takes transactions), the proposal's end (Fin) to the decision on every
validator, and the first decision to the next proposer's first fragment.
"""
import datetime
import glob
import re
import sys


def main(directory):
    events = {}
    for path in sorted(glob.glob(f"{directory}/node-*.log")):
        for line in open(path, errors="ignore"):
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)
            m = re.match(r"(\S+)Z\s+\w+\s+(\S+): (.*)", line)
            h = m and re.search(r"height=(\d+)", m.group(3))
            if not h:
                continue
            at = datetime.datetime.fromisoformat(m.group(1)).timestamp() * 1000
            msg, e = m.group(3), events.setdefault(int(h.group(1)), {})
            if msg.startswith("proposed") and "round=0" in msg:
                e["fin"] = at
            if msg.startswith("fragment published"):
                if "index=0 " in msg:
                    e.setdefault("first", at)
                e["last"] = at
            if msg.startswith("decided and committed"):
                e.setdefault("decided", []).append(at)
    rows = {"no block open (last fragment h -> first fragment h+1)": [], "Fin -> decided on every validator": [],
            "first decision -> next proposer's first fragment": []}
    keys = list(rows)
    for h, e in sorted(events.items()):
        n = events.get(h + 1, {})
        if "last" in e and "first" in n:
            rows[keys[0]].append(n["first"] - e["last"])
        if "fin" in e and "decided" in e:
            rows[keys[1]].append(max(e["decided"]) - e["fin"])
        if "decided" in e and "first" in n:
            rows[keys[2]].append(n["first"] - min(e["decided"]))
    for name, values in rows.items():
        if not values:
            print(f"{name}: no data (were the debug logs on?)")
            continue
        values.sort()
        pick = lambda q: values[min(len(values) - 1, int(len(values) * q))]
        print(f"{name}: n {len(values)}, p50 {pick(0.5):.1f} ms, p90 {pick(0.9):.1f} ms, max {values[-1]:.1f} ms")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
