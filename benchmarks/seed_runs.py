"""Resumable multi-seed benchmarks: the bookkeeping the per-seed benchmark scripts share.

A results JSON holds ``settings`` and one entry per finished seed under ``runs``. Seeds already
there (with the same settings) are kept, so an interrupted benchmark continues where it stopped;
the JSON is written after every seed. Not a benchmark itself.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from pathlib import Path

import torch

from robustmm.io import write_json_atomic, write_text_atomic


ROOT = Path(__file__).resolve().parents[1]


def seed_parser(name: str, description: str, seeds: list[int]) -> argparse.ArgumentParser:
    """The options every per-seed benchmark has; ``name`` names its runs and results files."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--epochs", type=int, default=None, help="training.epochs (default: the study's)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates per record")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "benchmarks" / name)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / name)
    return parser


def command_line(name: str, args: argparse.Namespace, *extra: str) -> str:
    """How the results were produced, as a user would type it (``extra`` after ``--seeds``)."""
    parts = [f"--seeds {' '.join(map(str, args.seeds))}", *extra]
    parts += ([f"--epochs {args.epochs}"] if args.epochs else []) + [f"--bootstrap {args.bootstrap}"]
    return f"python benchmarks/{name}.py " + " ".join(parts)


def environment() -> str:
    return f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread, CPU"


def run_seeds(results: Path, settings: dict, seeds: list[int], run_seed: Callable[[int], dict],
              summarise: Callable[[dict], dict], markdown: Callable[[dict], str], progress: Callable[[dict], str],
              refresh_kept: Callable[[dict], None] | None = None, **header) -> dict:
    """Run the seeds that ``results``.json lacks, then summarise and write ``results``.{json,md}.

    ``header`` (schedule, command, ...) is stored at the top level of the document;
    ``summarise(doc)`` returns keys to add (summary, checks, ...); ``progress(run)`` is the line
    printed after a seed; ``refresh_kept(run)`` may update a kept run (e.g. re-parse its folder).
    """
    json_path = results.with_suffix(".json")
    doc = json.loads(json_path.read_text()) if json_path.is_file() else {}
    if doc.get("settings") != settings:
        doc = {"settings": settings, "runs": {}}
    doc.update(header, environment=environment())
    for seed in seeds:
        if str(seed) in doc["runs"]:
            if refresh_kept is not None:
                refresh_kept(doc["runs"][str(seed)])
            print(f"seed {seed}: done before, kept")
            continue
        doc["runs"][str(seed)] = run_seed(seed)
        print(f"seed {seed}: {progress(doc['runs'][str(seed)])}", flush=True)
        write_json_atomic(json_path, doc)
    doc["runs"] = {s: r for s, r in doc["runs"].items() if int(s) in seeds}
    doc["synthetic"] = all(r["synthetic"] for r in doc["runs"].values())
    doc.update(summarise(doc))
    write_json_atomic(json_path, doc)
    text = markdown(doc)
    write_text_atomic(results.with_suffix(".md"), text)
    print(text)
    return doc
