"""``robustmm run``: study file -> data -> methods -> evaluation -> run directory.

This is the one place where the layers meet; read it top to bottom to follow a run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustmm.config.loader import RUN_RECORD_KEY, config_differences, describe_differences, to_plain
from robustmm.config.schema import StudyConfig
from robustmm.data.datamodule import DataModule
from robustmm.data.registry import build_dataset
from robustmm.engine import distributed
from robustmm.engine.fingerprint import study_hash
from robustmm.engine.selection import validation_scenarios
from robustmm.engine.trainer import Trainer, TrainerCallback, resolve_device, stable_seed
from robustmm.errors import ConfigError, RunDirectoryError
from robustmm.evaluate.runner import evaluate, skipped_anywhere
from robustmm.io import remove_stale_tmp, write_json_atomic, write_text_atomic
from robustmm.methods import create_method
from robustmm.methods.base import Method, MethodContext, check_methods, method_class, method_options
from robustmm.methods.task import task_adapter
from robustmm.metrics.bootstrap import confidence_label
from robustmm.metrics.paired import t_interval
from robustmm.missing.scenarios import build_scenarios
from robustmm.names import check_links_inside, inside
from robustmm.parallel import run_threads
from robustmm.report.caught import warnings_to_log
from robustmm.report import datafingerprint
from robustmm.report.datainfo import describe_splits, merge_availability, scenario_availability
from robustmm.report.render import render
from robustmm.report.timing import RunTiming
from robustmm.report.rundir import (LOCK_FILE, LOG_FILE, METRICS_FILE, attach_log, check_out_is_new, check_resumable,
                                   environment, exclusive_run_folder, new_run_dir, write_config)
from robustmm.report.tables import metrics_csv
from robustmm.runguard import (SweepPart, check_before_data, check_method_scenarios, check_modality_names,
                               failed_run, finished_result, in_study)
from robustmm.text import counted, form

__all__ = ["RunResult", "run_study"]

log = logging.getLogger("robustmm")


@dataclass
class RunResult:
    run_dir: Path
    records: list[dict[str, Any]]
    summary: str
    synthetic: bool
    methods: dict[str, Method] = field(default_factory=dict)
    data: DataModule | None = None


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def validate_method_options(cfg: StudyConfig) -> None:
    """Fail on a bad method option, or training settings a method cannot train with, before any data are
    read or anything is trained."""
    for i, m in enumerate(cfg.methods):
        options = method_options(m, f"methods.{i}", cfg.source, cfg.origins)
        method_class(m.name).check_training(options, cfg.training, m.run_id)


def training_order(cfg: StudyConfig) -> list[int]:
    """Methods that others reuse (e.g. complete_only as a teacher) are trained first."""
    reused = {name for m in cfg.methods for name in method_class(m.name).reuses}
    first = [i for i, m in enumerate(cfg.methods) if m.name in reused]
    return first + [i for i in range(len(cfg.methods)) if i not in first]


def check_same_study(resume: Path, resolved: dict[str, Any]) -> None:
    """Refuse to continue ``resume`` with a study that differs from the one it started with."""
    saved = check_resumable(resume)
    saved.pop(RUN_RECORD_KEY, None)
    if saved.get("name") != resolved["name"]:  # another study's run: its many differences would bury that
        raise RunDirectoryError(f"--resume {resume} is a run of study '{saved.get('name')}', not of "
                                f"'{resolved['name']}'; resume it with the study file it started with, or start a "
                                "new run (without --resume)")
    if saved != resolved and {**saved, "seeds": resolved.get("seeds")} == resolved:
        check_seeds_extension(resume, saved.get("seeds"), resolved.get("seeds"), resolved.get("seed"))
    elif saved != resolved:
        raise RunDirectoryError(f"--resume {resume}: the study differs from the one that run started with "
                                f"({describe_differences(config_differences(saved, resolved))}); resume with the "
                                "same study file and --set / --profile / --seeds options")


def check_seeds_extension(resume: Path, old: list[int] | None, new: list[int] | None, seed: int | None) -> None:
    """A resume whose study differs from the run's only in ``seeds`` may add seeds (each seed is a run of its
    own in seed_<s>/; the finished ones are reused and the top level aggregates them all); anything else is
    refused with the --seeds that continues the run."""
    def listed(seeds: list[int]) -> str:
        return ",".join(str(s) for s in seeds)

    if old and new and set(old) < set(new):
        return
    if old is None:
        raise RunDirectoryError(f"--resume {resume}: that run is a single run (seed {seed}), not one of several "
                                f"seeds, so --seeds cannot be added to it (a run of several seeds keeps each in "
                                f"seed_<s>/); resume it without --seeds, or start a new run with --seeds {listed(new)}")
    if new is None:
        raise RunDirectoryError(f"--resume {resume}: that run has seeds {listed(old)}; resume it with --seeds "
                                f"{listed(old)} (or more seeds, to add them)")
    dropped = [s for s in old if s not in new]
    if dropped:
        raise RunDirectoryError(f"--resume {resume}: --seeds {listed(new)} leaves out "
                                f"{form(len(dropped), 'seed')} {listed(dropped)} of "
                                f"that run (seeds {listed(old)}); a run keeps every seed it has: resume with --seeds "
                                f"{listed(old + [s for s in new if s not in old])}, or start a new run")
    raise RunDirectoryError(f"--resume {resume}: that run has seeds {listed(old)} in this order; resume with --seeds "
                            f"{listed(old)}")


def check_run_request(cfg: StudyConfig, out: Path | None, resume: Path | None) -> dict[str, Any]:
    """The checks of ``run_study`` that need no data and create nothing (also made by ``--nproc`` before it
    starts its processes); returns the resolved study."""
    if out is not None and resume is not None:
        raise ConfigError(f"--out {out} and --resume {resume} exclude each other: --resume continues the run in its "
                          "own folder; drop --out (or drop --resume to start a new run in --out)")
    validate_method_options(cfg)
    resolved = to_plain(cfg)
    if resume is not None:  # a study that differs is named as such, before checks that the difference may fail
        check_same_study(resume, resolved)
        check_links_inside(resume, "--resume", in_place=(LOG_FILE,))  # the log is appended to
    if out is not None:
        check_out_is_new(Path(out))
    check_before_data(cfg)
    return resolved


def run_study(cfg: StudyConfig, out: Path | None = None, resume: Path | None = None, progress: bool = True,
              callbacks: list[TrainerCallback] | None = None, evaluate_split: str = "test",
              rewrite_results: bool = False, sweep_part: SweepPart | None = None,
              part_of: Path | None = None, accept_data_change: bool = False) -> RunResult:
    """Train and evaluate every method of ``cfg`` into a new run folder (or continue ``resume``).

    With ``split.fold: all`` every fold runs into ``fold_<k>/`` and the top-level results are the
    mean over folds (CI: t-interval over the fold values). With ``seeds`` the whole study (folds
    included) runs once per seed into ``seed_<s>/``; the top level holds the mean ± sd over seeds and
    paired differences against a reference method (robustmm.evaluate.seeds); resuming with more seeds adds
    them (:func:`check_seeds_extension`). Resuming a finished run returns its stored results and writes nothing,
    unless ``rewrite_results``. ``sweep_part``: the
    run is a trial (``"trial"``) or the test evaluation (``"final"``) of a sweep, so a failure's advice is
    the sweep's, not ``--resume`` (see :func:`robustmm.runguard.failed_run`). ``part_of``: the run folder of
    which this run is one seed, the folder a failure's advice names. ``accept_data_change``: resume ``resume``
    although its data changed since it started (robustmm.report.datafingerprint), recording them as they are.
    """
    resolved = check_run_request(cfg, out, resume)
    if distributed.needs_session():  # started by torchrun: join the group; ranks > 0 follow rank 0's runs
        return distributed.run_session(
            cfg.training.device, lambda: run_study(cfg, out, resume, progress, callbacks, evaluate_split,
                                                   rewrite_results, sweep_part, part_of, accept_data_change),
            lambda c, d: _run_single(c, d, resolve_device(c.training.device), False, callbacks, evaluate_split))
    run_dir = Path(resume) if resume is not None else new_run_dir(cfg.output_dir, cfg.name, out)
    with exclusive_run_folder(run_dir):
        return _run_in_folder(cfg, resolved, run_dir, resume is not None, progress, callbacks, evaluate_split,
                              rewrite_results, sweep_part, part_of, accept_data_change)


def _run_in_folder(cfg: StudyConfig, resolved: dict[str, Any], run_dir: Path, resumed: bool, progress: bool,
                   callbacks: list[TrainerCallback] | None, evaluate_split: str, rewrite_results: bool,
                   sweep_part: SweepPart | None, part_of: Path | None, accept_data_change: bool) -> RunResult:
    """:func:`run_study` in its run folder, which this process holds."""
    saved = check_resumable(run_dir) if resumed else {}
    done = None if not resumed or rewrite_results else finished_result(run_dir)
    if done is not None and cfg.seeds and (done.get("seeds") or {}).get("seeds") != list(cfg.seeds):
        done = None  # seeds added to a finished run (check_seeds_extension): the new ones are not run yet
    # a run that will train or evaluate again must find the data it started on, checked before anything is written
    notice = (datafingerprint.check_unchanged(run_dir, cfg.data, accept_data_change, sweep_part == "final")
              if resumed and done is None else None)
    stale = remove_stale_tmp(run_dir) if resumed else []
    if resumed:
        if done is not None:
            log.info("%s is finished; its results are left unchanged", run_dir)
            stored = run_dir / "summary.txt"
            summary = ((stored.read_text().rstrip() + "\n\n" if stored.is_file() else "")
                       + f"run {run_dir} is already finished; its results were left unchanged (metrics.json, "
                       "report.html). Add --rewrite-results to evaluate it again and rewrite them.")
            return RunResult(run_dir, done["records"], summary, bool(done.get("synthetic")))
    stack = contextlib.ExitStack()
    handler = attach_log(run_dir)
    for path in stale:
        log.info("removed %s, left by an interrupted save", path)
    if notice:
        log.warning("%s", notice)
        if part_of is None:  # a seed's run: the run it belongs to said it once already
            print(f"robustmm: {notice}", file=sys.stderr)
    caught = None
    try:
        caught = stack.enter_context(warnings_to_log(log))
        device = resolve_device(cfg.training.device)
        if not resumed:  # the data first: a folder with config.yaml is resumable, and a resume compares them
            datafingerprint.record(run_dir, cfg.data)
            write_config(run_dir, resolved, {"seed": cfg.seed, "device": str(device),
                                             **run_threads(cfg.training.threads), **distributed.run_info(),
                                             "environment": environment()})
        elif saved.get("seeds") != resolved.get("seeds"):  # seeds added: the study of the run is now the longer list
            log.info("seeds %s added to the seeds %s of this run", [s for s in cfg.seeds if s not in saved["seeds"]],
                     saved["seeds"])
            write_config(run_dir, resolved, saved.get(RUN_RECORD_KEY) or {})
        log.info("run %s (device %s)%s", run_dir, device, " resumed" if resumed else "")
        if cfg.seeds:  # the whole study once per seed into seed_<s>/, then mean ± sd and paired differences
            from robustmm.evaluate.seeds import run_seeds

            doc = run_seeds(cfg, run_dir, lambda c, d, again: run_study(
                c, out=None if again else d, resume=d if again else None, progress=progress, callbacks=callbacks,
                evaluate_split=evaluate_split, sweep_part=sweep_part, part_of=run_dir,
                accept_data_change=accept_data_change), before_config=(LOCK_FILE, datafingerprint.FINGERPRINT_FILE,
                                                                       LOG_FILE))
            summary = _write_outputs(run_dir, cfg, doc)
            return RunResult(run_dir, doc["records"], summary, doc["synthetic"])
        if cfg.split.fold != "all":
            return _run_single(cfg, run_dir, device, progress, callbacks, evaluate_split)
        folds = []
        for k in range(cfg.split.folds or 0):
            fold_cfg = cfg.model_copy(update={"split": cfg.split.model_copy(update={"fold": k})})
            fold_dir = run_dir / f"fold_{k}"
            fold_dir.mkdir(exist_ok=True)
            log.info("fold %d of %d", k + 1, cfg.split.folds)
            folds.append(_run_single(fold_cfg, fold_dir, device, progress, callbacks, evaluate_split))
        return _write_cv_outputs(run_dir, cfg, folds)
    except BaseException as exc:
        failed_run(exc, run_dir, resumed=resumed, sweep_part=sweep_part, part_of=part_of)
        raise
    finally:
        stack.close()
        if caught is not None and caught.total and progress:
            n = caught.total
            print(f"robustmm: {counted(n, 'warning')} from the libraries used {form(n, 'was', 'were')} written to "
                  f"{run_dir / 'log.txt'}", file=sys.stderr)
        logging.getLogger("robustmm").removeHandler(handler)
        handler.close()


def _run_single(cfg: StudyConfig, run_dir: Path, device: torch.device, progress: bool,
                callbacks: list[TrainerCallback] | None, evaluate_split: str) -> RunResult:
    distributed.share_run(cfg, run_dir)  # rank 0 tells the other ranks which run to train (no-op otherwise)
    with RunTiming(run_dir, write=distributed.info().is_main) as timing:  # this process's part of timing.json
        return _train_and_evaluate(cfg, run_dir, device, progress, callbacks, evaluate_split, timing)


def _train_and_evaluate(cfg: StudyConfig, run_dir: Path, device: torch.device, progress: bool,
                        callbacks: list[TrainerCallback] | None, evaluate_split: str,
                        timing: RunTiming) -> RunResult:
    seed_everything(cfg.seed, cfg.training.deterministic)
    dataset = build_dataset(cfg.data, progress=progress)
    data = DataModule(dataset, cfg.split, cfg.seed, cfg.training.batch_size, cfg.training.num_workers,
                      pin_memory=device.type == "cuda")
    synthetic = bool(dataset.synthetic)
    check_modality_names(list(data.modalities), f"data (kind {cfg.data.kind})")
    try:
        scenarios = build_scenarios(cfg.evaluation.scenarios, dict(data.modalities))  # kinds checked too
    except ValueError as exc:
        raise ConfigError(f"{in_study(cfg, 'evaluation.scenarios')}: {exc}") from None
    selection_scenarios = validation_scenarios(cfg.training.selection.scenarios, scenarios, data)
    check_method_scenarios(cfg, dict(data.modalities))

    check_methods(cfg.methods, data)  # every method's data requirements, before the first one trains
    fitted: dict[str, Method] = {}
    by_name: dict[str, Method] = {}
    selection: dict[str, list[dict[str, Any]]] = {}
    for i in training_order(cfg):
        mcfg = cfg.methods[i]
        torch.manual_seed(stable_seed(cfg.seed, mcfg.run_id))
        ctx = MethodContext(mcfg.run_id, data.modalities, data.task, cfg.model, cfg.training, cfg.seed,
                            trained=dict(by_name))
        method = create_method(mcfg, ctx, key=f"methods.{i}")
        trainer = Trainer(cfg.training, inside(run_dir, "checkpoints", mcfg.run_id), cfg.seed, progress, callbacks,
                          fingerprint={"method": mcfg.run_id, "study": study_hash(to_plain(cfg))},
                          selection_scenarios=selection_scenarios)
        timing.start_method(mcfg.run_id)
        log.info("training %s (%s)", mcfg.run_id, mcfg.name)
        method.fit(data, trainer)
        selection[mcfg.run_id] = trainer.selections
        timing.end_method(mcfg.run_id)
        fitted[mcfg.run_id] = method.to(device).eval()
        by_name.setdefault(mcfg.name, method)
    fitted = {m.run_id: fitted[m.run_id] for m in cfg.methods}
    if not distributed.info().is_main:  # rank 0 evaluates and writes the run folder
        return RunResult(run_dir, [], "", synthetic, fitted, data)

    task = task_adapter(data.task, cfg.evaluation.threshold)
    first = next(iter(fitted.values()))
    if hasattr(first, "task"):
        task.load_state_dict(first.task.state_dict())
    log.info("evaluating %d methods x %d scenarios on the %s split", len(fitted), len(scenarios), evaluate_split)
    evaluation = evaluate(fitted, task, data, scenarios, cfg.evaluation, cfg.seed, split=evaluate_split,
                          progress=progress)
    records = [r.to_dict() for r in evaluation.records]
    sections = task.report_sections(evaluation.reference, run_dir / "plots")
    sections += task.summary_sections(records, run_dir / "plots")
    for method in fitted.values():
        sections += method.report_sections(data, run_dir / "plots")
    selection = {k: selection[k] for k in fitted}  # shown by the report (robustmm.report.repeats)
    doc = {"study": cfg.name, "split": evaluate_split, "synthetic": synthetic, "primary_metric": task.primary_metric,
           "seed": cfg.seed, "confidence": cfg.evaluation.confidence, "records": records,
           "skipped_scenarios": evaluation.skipped,
           "upper_bounds": [k for k, m in fitted.items() if m.upper_bound],
           "methods": {k: m.report_items() for k, m in fitted.items() if m.report_items()},
           "data": data_report(data), "selection": selection, "sections": [list(s) for s in sections],
           "availability": scenario_availability(scenarios, data, evaluate_split,
                                                 cfg.seed if cfg.evaluation.seed is None else cfg.evaluation.seed)}
    summary = _write_reports(run_dir, cfg, doc)
    for run_id, method in fitted.items():
        timing.add(run_id, method.deferred_training_seconds())
    timing.finish()
    _mark_finished(run_dir, doc)
    return RunResult(run_dir, records, summary, synthetic, fitted, data)


def data_report(data: DataModule) -> dict[str, Any]:
    ds = data.dataset
    info: dict[str, Any] = {
        "root": str(getattr(ds, "root", "")),
        "synthetic": bool(ds.synthetic),
        "samples": len(ds),
        "splits": {k: int(len(v)) for k, v in data.splits.as_dict().items()},
        "modalities": {m: {"kind": s.kind, "shape": list(s.shape)} for m, s in data.modalities.items()},
        "naturally_present": {m: int(v.sum()) for m, v in ds.natural_presence().items()},
    }
    if hasattr(ds, "report"):
        info["loader"] = ds.report.to_dict()
    from robustmm.data.base import synthetic_oracle

    oracle = synthetic_oracle(getattr(ds, "root", None))
    if oracle:  # ceilings from the generator's planted latents (robustmm.data.synth.oracle)
        info["oracle"] = oracle
    info.update(describe_splits(data))
    return info


def _write_outputs(run_dir: Path, cfg: StudyConfig, doc: dict[str, Any]) -> str:
    summary = _write_reports(run_dir, cfg, doc)
    _mark_finished(run_dir, doc)
    return summary


def _write_reports(run_dir: Path, cfg: StudyConfig, doc: dict[str, Any]) -> str:
    """metrics.csv, the plots, report.html and summary.txt of ``doc``; returns the summary text."""
    write_text_atomic(run_dir / "metrics.csv", metrics_csv(doc))
    return render(run_dir, doc, cfg.report.plots, cfg.report.html)


def _mark_finished(run_dir: Path, doc: dict[str, Any]) -> None:
    """metrics.json, written after every other file: a run that has it is finished, and ``--resume`` leaves it
    as it is (robustmm.runguard.finished_result), so a run killed while writing its report must lack it."""
    write_json_atomic(run_dir / METRICS_FILE, doc)


def _write_cv_outputs(run_dir: Path, cfg: StudyConfig, folds: list[RunResult]) -> RunResult:
    """Mean over folds per (method, scenario, metric); CI: t-interval over the fold values at
    ``evaluation.confidence``."""
    keyed: dict[tuple, list[dict]] = {}
    for fold in folds:
        for r in fold.records:
            keyed.setdefault((r["method"], r["scenario"], r["metric"]), []).append(r)
    records = []
    for (method, scenario, metric), rows in keyed.items():
        values = np.array([r["value"] for r in rows if r["value"] is not None], dtype=float)
        mean = float(values.mean()) if values.size else None
        low, high = t_interval(values, cfg.evaluation.confidence, metric)
        drops = [r["drop"] for r in rows if r.get("drop") is not None]
        records.append({"method": method, "scenario": scenario, "group": rows[0]["group"], "rate": rows[0]["rate"],
                        "metric": metric, "value": mean,
                        "ci_low": low, "ci_high": high,
                        "n": int(sum(r["n"] for r in rows)), "drop": float(np.mean(drops)) if drops else None,
                        "folds": [r["value"] for r in rows]})
        if any(r.get("predicted_classes") is not None for r in rows):  # per fold, like the values
            records[-1]["predicted_classes"] = [r.get("predicted_classes") for r in rows]
    fold_docs = [json.loads((f.run_dir / "metrics.json").read_text()) for f in folds]
    first = fold_docs[0]
    doc = {"study": cfg.name, "synthetic": folds[0].synthetic, "primary_metric": first["primary_metric"],
           "confidence": cfg.evaluation.confidence, "cross_validation": {"folds": len(folds),
                                "ci": f"{confidence_label(cfg.evaluation.confidence)} t-interval over fold means"},
           "records": records, "skipped_scenarios": skipped_anywhere(fold_docs),
           "upper_bounds": first.get("upper_bounds", []),
           "methods": first.get("methods", {}), "data": first.get("data", {}),
           "selection": {f"fold_{k}": d.get("selection", {}) for k, d in enumerate(fold_docs)},
           "availability": merge_availability([d.get("availability", {}) for d in fold_docs])}
    summary = _write_outputs(run_dir, cfg, doc)
    return RunResult(run_dir, records, summary, folds[0].synthetic)
