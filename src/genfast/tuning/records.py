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

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        """The latest record of each key (a torn last line from a kill is ignored)."""
        records: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                records[record["key"]] = record
        return records

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
