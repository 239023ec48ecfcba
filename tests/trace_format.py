"""A checker for the Chrome Trace Event Format (JSON Object Format), as Perfetto and chrome://tracing read it.

Written from Google's "Trace Event Format" document, independently of Magneton's writer: required fields per
phase, types, metadata names, counter values, and the rule that complete events on one thread nest like a stack
(viewers draw a slice that half-overlaps its neighbour on a wrong row or drop it).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

PHASES = set("BEXiIPCbneSTpFsftNODMVvRc()")
METADATA_NAMES = {"process_name", "process_labels", "process_sort_index", "thread_name", "thread_sort_index"}
TIME_UNITS = {"ms", "ns"}


class TraceFormatError(AssertionError):
    pass


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_trace(doc: Any) -> None:
    """Raise TraceFormatError naming the first event that breaks the format."""
    try:
        json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TraceFormatError(f"not strict JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        raise TraceFormatError("the JSON Object Format needs a top-level object with a 'traceEvents' list")
    if "displayTimeUnit" in doc and doc["displayTimeUnit"] not in TIME_UNITS:
        raise TraceFormatError(f"displayTimeUnit must be one of {TIME_UNITS}")
    slices: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
    for index, event in enumerate(doc["traceEvents"]):
        where = f"event {index} ({event!r:.120})"
        if not isinstance(event, dict):
            raise TraceFormatError(f"{where}: not an object")
        ph = event.get("ph")
        if ph not in PHASES:
            raise TraceFormatError(f"{where}: unknown phase {ph!r}")
        if not isinstance(event.get("name"), str) or not event["name"]:
            raise TraceFormatError(f"{where}: 'name' must be a non-empty string")
        if not isinstance(event.get("pid"), int):
            raise TraceFormatError(f"{where}: 'pid' must be an integer")
        if "args" in event and not isinstance(event["args"], dict):
            raise TraceFormatError(f"{where}: 'args' must be an object")
        if ph == "M":
            if event["name"] not in METADATA_NAMES:
                raise TraceFormatError(f"{where}: unknown metadata event {event['name']!r}")
            if event["name"].endswith("_name") and not isinstance(event.get("args", {}).get("name"), str):
                raise TraceFormatError(f"{where}: {event['name']} needs args.name")
            continue
        if not _number(event.get("ts")) or event["ts"] < 0:
            raise TraceFormatError(f"{where}: 'ts' must be a finite number of microseconds >= 0")
        if ph in "XBEiI" and not isinstance(event.get("tid"), int):
            raise TraceFormatError(f"{where}: 'tid' must be an integer")
        if ph == "X":
            if not _number(event.get("dur")) or event["dur"] < 0:
                raise TraceFormatError(f"{where}: a complete event needs 'dur' >= 0")
            slices[(event["pid"], event["tid"])].append((event["ts"], event["ts"] + event["dur"], event["name"]))
        if ph == "C":
            args = event.get("args")
            if not args or not all(_number(v) for v in args.values()):
                raise TraceFormatError(f"{where}: a counter needs numeric args (one series per key)")
    for thread, spans in slices.items():
        stack: list[tuple[float, float, str]] = []
        for start, end, name in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
            while stack and start >= stack[-1][1] - 1e-6:
                stack.pop()
            if stack and end > stack[-1][1] + 1e-6:
                raise TraceFormatError(
                    f"thread {thread}: slice {name!r} [{start}, {end}] overlaps {stack[-1][2]!r} "
                    f"[{stack[-1][0]}, {stack[-1][1]}] without nesting in it"
                )
            stack.append((start, end, name))
