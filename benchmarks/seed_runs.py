"""Resumable multi-seed benchmarks: the bookkeeping the per-seed benchmark scripts share.

A results JSON holds ``settings`` and one entry per finished seed under ``runs``. Seeds already
there (with the same settings) are kept, so an interrupted benchmark continues where it stopped;
the JSON is written after every seed. Not a benchmark itself.

Table cells: :func:`mean_sd` (mean ± sd over seeds) and :func:`paired` / :func:`paired_cell` /
:func:`paired_table` (the paired difference to a reference method with its t-interval over seeds,
the seeds agreeing in sign and the verdict of robustmm.metrics.paired; :data:`PAIRED_NOTE` says
how to read them). A single run's number is never a comparison.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from robustmm.io import write_json_atomic, write_text_atomic
from robustmm.metrics.paired import higher_is_better, paired_difference


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


def changed_options(parser: argparse.ArgumentParser, args: argparse.Namespace, skip: tuple[str, ...] = ()) -> list[str]:
    """The options of ``args`` that differ from ``parser``'s defaults as they are typed (a flag alone,
    a value shell-quoted), for :func:`command_line`'s ``extra``; ``skip``: destinations left out."""
    changed = []
    for dest, value in vars(args).items():
        if dest in skip or value == parser.get_default(dest):
            continue
        option = "--" + dest.replace("_", "-")
        changed.append(option if value is True else f"{option} {shlex.quote(str(value))}")
    return changed


# --------------------------------------------------------------------------- table cells over seeds
#: one sentence for a results file that shows paired cells
PAIRED_NOTE = ("Paired difference = method - reference per seed (same split, masks and bootstrap subjects), "
               "shown as mean [95% t-interval over seeds], the number of seeds agreeing in sign, and the verdict "
               "from the interval (robustmm.metrics.paired): 'better'/'worse' only when the whole interval is on "
               "one side of 0.")


def stats(values) -> dict:
    """Mean, sd (ddof 1; None below 2 values) and count of the non-missing ``values``."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else None,
            "n": int(v.size)}


def mean_sd(values, digits: int = 3) -> str:
    """``0.812 ± 0.021`` over seeds (``n/a`` without values; no ± for a single value)."""
    s = stats(values)
    if s["mean"] is None:
        return "n/a"
    return f"{s['mean']:.{digits}f}" + ("" if s["sd"] is None else f" ± {s['sd']:.{digits}f}")


def paired(method_values, reference_values, metric: str = "auc", confidence: float = 0.95) -> dict:
    """Paired difference over seeds (robustmm.metrics.paired) as a JSON-ready dict; ``metric``
    sets the direction (``hd95``, ``ibs``, ``*_loss`` are lower-is-better). Missing values (None)
    drop their pair."""
    nan = lambda xs: [float("nan") if x is None else float(x) for x in xs]  # noqa: E731
    d = paired_difference(nan(method_values), nan(reference_values), higher_is_better(metric), confidence)
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.to_dict().items()}


def paired_cell(d: dict, digits: int = 3) -> str:
    """``+0.012 [-0.010, +0.034], 4/5, no clear difference`` for a :func:`paired` result."""
    if d["mean"] is None:
        return "n/a"
    interval = "" if d["ci_low"] is None else f" [{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}]"
    return f"{d['mean']:+.{digits}f}{interval}, {d['agree']}/{d['n']}, {d['verdict']}"


def paired_table(rows: dict[str, dict[str, dict]], row_title: str = "comparison") -> list[str]:
    """Markdown lines: ``rows`` = {row label: {column label: paired(...) result}}."""
    columns = list(dict.fromkeys(c for cells in rows.values() for c in cells))
    lines = [f"| {row_title} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, cells in rows.items():
        lines.append(f"| {label} | " + " | ".join(paired_cell(cells[c]) if c in cells else "" for c in columns) + " |")
    return lines


def combine_results(parts: list[Path], results: Path, settings: dict) -> None:
    """Write ``results``.json with the runs of earlier results files of this benchmark (seeds run as
    separate processes, or a replication), so :func:`run_seeds` keeps them all and summarises them
    together. Every part must have been run with ``settings`` (the benchmark's current ones) and the
    parts must not share a seed; runs already in ``results`` with the same settings are kept."""
    runs: dict[str, dict] = {}
    for part in parts:
        doc = json.loads(Path(part).with_suffix(".json").read_text())
        if doc.get("settings") != settings:
            raise SystemExit(f"--combine: {part} was run with other settings (cohort, methods, overrides or schedule) "
                             "than this command's; they are not one benchmark")
        common = sorted(set(runs) & set(doc["runs"]), key=int)
        if common:
            raise SystemExit(f"--combine: seeds {common} appear in more than one file (again in {part})")
        runs.update(doc["runs"])
    path = results.with_suffix(".json")
    existing = json.loads(path.read_text()) if path.is_file() else {}
    if existing.get("settings") == settings:
        runs.update(existing["runs"])
    write_json_atomic(path, {"settings": settings, "runs": runs})


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


def append_text_atomic(path: Path, text: str, header: str = "") -> None:
    """Append ``text`` to ``path`` (``header`` first when the file is new) by rewriting the whole file
    atomically, so an interrupted benchmark never leaves half a record behind."""
    path = Path(path)
    write_text_atomic(path, (path.read_text() if path.is_file() else header) + text)


def record_cpu_seconds(results: Path, start: float, markdown: Callable[[dict], str]) -> None:
    """Add the process time since ``start`` (``time.process_time()``) to ``results``.json as
    ``cpu_seconds`` and rewrite its Markdown."""
    import time

    path = results.with_suffix(".json")
    doc = json.loads(path.read_text())
    doc["cpu_seconds"] = round(time.process_time() - start, 1)
    write_json_atomic(path, doc)
    write_text_atomic(results.with_suffix(".md"), markdown(doc))


def run_study_seed(study: Path, seed: int, parse_run: Callable[[Path], dict], *overrides: str,
                   epochs: int | None = None, bootstrap: int = 200, split: str = "test") -> dict:
    """One seed of ``study`` on 1 thread with ``overrides`` (``key=value``, as ``--set`` takes them):
    the run folder, its wall seconds and ``parse_run(run_dir)``. ``split="val"`` scores the validation
    subjects instead of the test subjects (a design round that must not see test numbers)."""
    import time

    from robustmm.config.loader import load_study
    from robustmm.study import run_study

    sets = [f"seed={seed}", "training.threads=1", f"evaluation.bootstrap={bootstrap}", *overrides]
    if epochs is not None:
        sets.append(f"training.epochs={epochs}")
    started = time.time()
    result = run_study(load_study(study, overrides=sets), progress=False, evaluate_split=split)
    return {"run_dir": str(result.run_dir), "seconds": round(time.time() - started, 1), **parse_run(result.run_dir)}


def default_study_data(root: Path, subjects: int, *overrides: str):
    """The default ADNI study (``studies/adni_mci.yaml``) with its synthetic cohort of ``subjects`` under
    ``root`` (generated on first use) and ``overrides``: the resolved study and its data module."""
    from robustmm.config.loader import load_study
    from robustmm.data.datamodule import DataModule
    from robustmm.data.registry import build_dataset

    study = Path(__file__).resolve().parents[1] / "studies" / "adni_mci.yaml"
    cfg = load_study(study, [f"data.root={root}", f"data.synthetic.subjects={subjects}", *overrides])
    return cfg, DataModule(build_dataset(cfg.data, progress=False), cfg.split, cfg.seed, cfg.training.batch_size, 0)


def untrained_methods(cfg, data, names=("complete_only", "dropout_baseline")) -> dict:
    """The study's ``names`` built on ``data`` (seeded, task adapters fitted, not trained), in eval mode:
    enough to time evaluation, which does not depend on what the networks learnt."""
    import torch

    from robustmm.config.schema import MethodConfig
    from robustmm.methods import create_method
    from robustmm.methods.base import MethodContext

    methods = {}
    for name in names:
        torch.manual_seed(0)
        ctx = MethodContext(name, data.modalities, data.task, cfg.model, cfg.training, cfg.seed)
        method = create_method(MethodConfig(name=name), ctx)
        method.task.fit(data)
        methods[name] = method.eval()
    return methods
