#!/usr/bin/env python3
"""Compare two pytest --junitxml files test by test.

    python peer/compare.py BASELINE.xml CANDIDATE.xml [--details]

Each test id (classname::name, as pytest writes it; xdist-safe) gets one outcome:
passed, failed, error (setup/teardown or collection), failed+error, skipped, xfailed.
Prints every id whose outcome differs (or that appears in only one file), with the
candidate's message (and, with --details, its full text), and exits 1 if there is any
difference, 0 otherwise, 2 on bad input. A test that passed without the plugin and
failed with it on a ``CompileOrderWarning`` saying this Keras ignores a flag change (it
trains weights contrary to their flags: the one warning the plugin gives a test that asks
for nothing) is listed but not counted. Standard library only.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import Counter


def outcomes(path: str) -> dict[str, tuple[str, str, str]]:
    """test id -> (outcome, one-line message, full text)."""
    root = ET.parse(path).getroot()
    result: dict[str, tuple[str, str, str]] = {}
    seen: Counter[str] = Counter()
    for case in root.iter("testcase"):
        base = f"{case.get('classname', '')}::{case.get('name', '')}"
        seen[base] += 1
        test_id = base if seen[base] == 1 else f"{base}#{seen[base]}"
        kinds = {child.tag: child for child in case if child.tag in ("failure", "error", "skipped")}
        if "failure" in kinds and "error" in kinds:
            outcome, node = "failed+error", kinds["error"]
        elif "failure" in kinds:
            outcome, node = "failed", kinds["failure"]
        elif "error" in kinds:
            outcome, node = "error", kinds["error"]
        elif "skipped" in kinds:
            node = kinds["skipped"]
            outcome = "xfailed" if node.get("type") == "pytest.xfail" else "skipped"
        else:
            outcome, node = "passed", None
        message = (node.get("message") or "") if node is not None else ""
        text = (node.text or "") if node is not None else ""
        result[test_id] = (outcome, " ".join(message.split())[:300], text)
    return result


def freeze_does_not_hold(text: str) -> bool:
    """The one way a test that asks for nothing may end differently with the plugin: a
    ``CompileOrderWarning`` (an error under ``-W error``) saying this Keras ignores the
    change, so it trains weights contrary to their flags."""
    return "CompileOrderWarning" in text and ": ignored" in text


def compare(baseline: str, candidate: str, details: bool = False) -> int:
    """Print every test whose outcome differs and a one-line count; return how many."""
    a, b = outcomes(baseline), outcomes(candidate)
    diffs = 0
    for test_id in sorted(a.keys() | b.keys()):
        oa = a.get(test_id, ("absent", "", ""))
        ob = b.get(test_id, ("absent", "", ""))
        if oa[0] == ob[0]:
            continue
        if oa[0] == "passed" and freeze_does_not_hold(ob[2]):
            print(f"{test_id}: passed -> {ob[0]}, as it may: the freeze does not hold here")
            print(f"    {ob[1]}")
            continue
        diffs += 1
        print(f"{test_id}: {oa[0]} -> {ob[0]}")
        msg = ob[1] or oa[1]
        if msg:
            print(f"    {msg}")
        if details and (ob[2] or oa[2]):
            print("    " + (ob[2] or oa[2]).rstrip().replace("\n", "\n    "))
    count_a, count_b = Counter(o for o, _, _ in a.values()), Counter(o for o, _, _ in b.values())
    print(
        f"{len(a)} tests in {baseline} {dict(sorted(count_a.items()))}; "
        f"{len(b)} in {candidate} {dict(sorted(count_b.items()))}; "
        f"{diffs} with a different outcome"
    )
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("baseline")
    parser.add_argument("candidate")
    parser.add_argument("--details", action="store_true", help="print the candidate's full text")
    args = parser.parse_args(argv)
    try:
        return 1 if compare(args.baseline, args.candidate, args.details) else 0
    except (OSError, ET.ParseError) as err:
        print(f"compare: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
