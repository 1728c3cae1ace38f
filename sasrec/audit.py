"""The audit log: every change to the workspace, and every refused one, as one JSON line in
workspace/audit.jsonl: when (UTC), who (an e-mail address, or "local"), what, and which dataset or run.

    {"when": "2026-05-04T09:12:03Z", "who": "ana@example.com", "what": "start", "run": "beauty-0504", "dataset": "beauty"}
    {"when": "2026-05-04T09:13:40Z", "who": "bo@example.com", "what": "denied", "action": "delete", "run": "beauty-0504"}

The server's threads, several servers and the training queue's runner may write at once: each line
goes out in a single write() to a file opened for appending, which the kernel places at the end
whole, so lines never interleave.
"""

import json
import os
import time
from pathlib import Path

AUDIT_FILE = "audit.jsonl"
TAIL_BYTES = 1 << 20  # the last entries are read from at most this much of the file's end


def record(root: Path, who: str, what: str, **details) -> None:
    line = json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "who": who, "what": what,
                       **{key: value for key, value in details.items() if value is not None}}, default=str)
    fd = os.open(Path(root) / AUDIT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def last(root: Path, count: int = 20) -> list[dict]:
    """The latest `count` entries, newest first."""
    try:
        with open(Path(root) / AUDIT_FILE, "rb") as log:
            log.seek(max(log.seek(0, os.SEEK_END) - TAIL_BYTES, 0))
            lines = log.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the first line of a tail cut mid-line
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        if len(entries) == count:
            break
    return entries
