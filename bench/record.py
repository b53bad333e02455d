"""The benchmarks' results file: each benchmark owns one entry of ``bench/results.json``."""

import json
import os
from pathlib import Path


def read(path: Path) -> dict:
    """The whole results file; empty when there is none."""
    return json.loads(path.read_text()) if path.exists() else {}


def record(path: Path, key: str, entry) -> None:
    """Write ``entry`` under ``key``, re-reading the file at that moment, so that the entries other benchmarks
    wrote while this one ran (for hours, some of them) are kept; replaced whole, never half-written."""
    results = read(path)
    results[key] = entry
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(partial, path)
