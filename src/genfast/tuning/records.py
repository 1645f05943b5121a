"""The search's memory: one JSON line per finished measurement, keyed so a rerun resumes.

A key hashes everything that decides a measurement: the model's files, the recipe, the workload
and objective, the quality settings, the hardware and the library versions. The quality budget
is not in it: figures are checked against the budget of the current run, so tightening or
loosening the budget reuses every measured figure.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path


def context_of(fingerprint: str, options) -> dict:
    """What every key of this search shares: model files, workload, objective, machine, versions."""
    from genfast.profiling.hardware import cpu_flags, hardware_facts

    facts = hardware_facts()
    return {"model": fingerprint, "workload": asdict(options.workload), "objective": options.objective,
            "concurrency": options.concurrency if options.objective == "throughput" else None,
            "quality": asdict(options.quality), "device": options.space.device, "cpu": facts["cpu"],
            "cores": os.cpu_count(),
            "flags": sorted(cpu_flags() & set(facts["isa"])), "libraries": facts["libraries"]}


def trial_key(context: dict, candidate) -> str:
    data = {"context": context, "recipe": asdict(candidate.recipe), "baseline": candidate.baseline}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class TrialLog:
    """``trials.jsonl``: appended after every measurement, so an interrupted search keeps its work."""

    REQUIRED = ("key", "status", "baseline")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.damaged = 0
        """Lines of the last load that were not records (a torn write, a hand edit): skipped."""

    def load(self) -> dict[str, dict]:
        """The latest record of each key; damaged lines are skipped and counted in ``damaged``."""
        records: dict[str, dict] = {}
        self.damaged = 0
        if self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    record = None
                if not _well_formed(record):
                    self.damaged += bool(line.strip())
                    continue
                records[record["key"]] = record
        return records

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _well_formed(record) -> bool:
    """A record this version wrote: the fields the search reads, of the types it reads them as."""
    if not isinstance(record, dict) or not all(k in record for k in TrialLog.REQUIRED):
        return False
    if record["status"] == "final":
        return isinstance(record.get("rounds"), dict)
    timing = record.get("screen")
    return isinstance(record.get("recipe"), dict) and isinstance(record.get("label"), str) and (
        timing is None or (isinstance(timing, dict) and all(
            v is None or (isinstance(v, (int, float)) and v >= 0) for v in timing.values())))
