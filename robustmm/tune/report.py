"""The sweep report: best parameters, test results of the final trials, Optuna's matplotlib plots
(optimization history, parameter importances, Pareto front, intermediate values) and every
trial, on one HTML page in the sweep folder.

The report is drawn from the live storage when this machine can reach it; otherwise from
``trials.json``, the snapshot every sweep process writes when it stops.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.distributions import distribution_to_json, json_to_distribution  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from robustmm.io import save_figure, write_json_atomic, write_text_atomic  # noqa: E402
from robustmm.report.html import HEAD, STYLE, inline_images, metric_table  # noqa: E402
from robustmm.report.tables import SYNTHETIC_BANNER  # noqa: E402
from robustmm.text import counted  # noqa: E402
from robustmm.tune.final import final_trials, test_results  # noqa: E402
from robustmm.tune.objective import pruning_signal  # noqa: E402
from robustmm.tune.plan import SweepPlan, plan_from_folder, read_marker  # noqa: E402
from robustmm.tune.space import shown_params  # noqa: E402
from robustmm.tune.storage import redact  # noqa: E402
from robustmm.tune.worker import BUDGET_ATTR  # noqa: E402

SNAPSHOT = "trials.json"
REPORT = "report.html"
_SNAPSHOT_ATTRS = ("failed_trial", "retry_history")


# --------------------------------------------------------------------------- snapshot
def _trial_to_json(t: FrozenTrial) -> dict[str, Any]:
    return {
        "number": t.number, "state": t.state.name, "values": t.values,
        "params": t.params, "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
        "user_attrs": t.user_attrs, "system_attrs": {k: t.system_attrs[k] for k in _SNAPSHOT_ATTRS if k in t.system_attrs},
        "intermediate_values": {str(k): v for k, v in t.intermediate_values.items()},
        "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
        "datetime_complete": t.datetime_complete.isoformat() if t.datetime_complete else None,
    }


def write_snapshot(study: optuna.Study, folder: Path) -> Path:
    path = Path(folder) / SNAPSHOT
    write_json_atomic(path, {
        "study_name": study.study_name, "directions": [d.name.lower() for d in study.directions],
        "user_attrs": study.user_attrs, "taken": _dt.datetime.now().isoformat(timespec="seconds"),
        "trials": [_trial_to_json(t) for t in study.get_trials(deepcopy=False)],
    })
    return path


def study_from_snapshot(doc: dict[str, Any]) -> optuna.Study:
    """An in-memory study holding the snapshot's trials (enough for every plot and table)."""
    study = optuna.create_study(directions=doc["directions"], study_name=doc["study_name"])
    for key, value in doc["user_attrs"].items():
        study.set_user_attr(key, value)
    trials = []
    for t in doc["trials"]:
        state = TrialState[t["state"]]
        trials.append(FrozenTrial(
            number=t["number"], state=state, value=None, values=t["values"],
            datetime_start=_dt.datetime.fromisoformat(t["datetime_start"]) if t["datetime_start"] else None,
            datetime_complete=_dt.datetime.fromisoformat(t["datetime_complete"]) if t["datetime_complete"] else None,
            params=t["params"], distributions={k: json_to_distribution(d) for k, d in t["distributions"].items()},
            user_attrs=t["user_attrs"], system_attrs=t["system_attrs"],
            intermediate_values={int(k): v for k, v in t["intermediate_values"].items()}, trial_id=t["number"]))
    study.add_trials(trials)
    return study


def load_study_for_report(folder: Path, storage: str | None = None) -> tuple[optuna.Study, str]:
    """(study, where it came from): the live storage if reachable, else the snapshot."""
    from robustmm.tune.config import HeartbeatConfig
    from robustmm.tune.storage import JOURNAL_PREFIX, default_storage_url, open_storage, sqlite_file

    folder = Path(folder)
    marker = read_marker(folder)
    url = storage or marker["storage"]
    problem = None
    database = sqlite_file(url)
    if database is not None and not database.is_file() and (folder / "optuna.db").is_file():
        url = default_storage_url(folder)  # the folder was moved
    # opening a storage creates what is missing (Optuna's tables, a journal file): a report only reads, and
    # the URL comes from a folder that may have been made elsewhere
    local = sqlite_file(url) or (url[len(JOURNAL_PREFIX):] if url.startswith(JOURNAL_PREFIX) else None)
    if "***" in url:
        problem = ("the storage URL needs a password: set ROBUSTMM_SWEEP_STORAGE to the full URL (robustmm sweep: "
                   "or --storage)")
    elif local is not None and not Path(local).expanduser().is_file():
        problem = f"{url} does not exist here"
    elif url.startswith("sqlite:///") and not _is_optuna_sqlite(Path(local)):
        problem = f"{url} is not an Optuna storage"
    else:
        try:
            sweep_storage = open_storage(url, HeartbeatConfig())
            return optuna.load_study(study_name=marker["study_name"], storage=sweep_storage.backend), "live storage"
        except Exception as exc:  # unreachable server, deleted study: fall back to the snapshot
            problem = f"{type(exc).__name__}: {exc}"
    snapshot = folder / SNAPSHOT
    if not snapshot.is_file():
        from robustmm.errors import RunDirectoryError

        raise RunDirectoryError(f"cannot read sweep {folder}: the storage is unavailable ({problem}) and there is "
                                f"no {SNAPSHOT} snapshot yet")
    try:
        doc = json.loads(snapshot.read_text())
        return study_from_snapshot(doc), f"snapshot {SNAPSHOT} of {doc['taken']} (storage unavailable: {problem})"
    except (ValueError, KeyError, TypeError) as exc:  # unreadable, or not a snapshot this module wrote
        from robustmm.errors import RunDirectoryError

        raise RunDirectoryError(f"cannot read sweep {folder}: the storage is unavailable ({problem}) and {snapshot} "
                                f"is damaged ({type(exc).__name__}: {exc}); point ROBUSTMM_SWEEP_STORAGE (robustmm sweep: "
                                "--storage) at the sweep's storage") from None


def _is_optuna_sqlite(path: Path) -> bool:
    """Whether the SQLite file holds Optuna's tables (read-only look; nothing is created)."""
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return False
    return {"studies", "trials", "version_info"} <= tables


# --------------------------------------------------------------------------- plots
def _save_axes(axes: Any, path: Path) -> Path:
    fig = np.atleast_1d(axes).ravel()[0].figure
    fig.set_size_inches(7, 4.5)
    return save_figure(fig, path, bbox_inches="tight")


def sweep_plots(study: optuna.Study, labels: list[str], plots_dir: Path,
                intermediate_label: str = "Intermediate Value") -> tuple[list[Path], list[str]]:
    """Optuna's matplotlib figures saved as PNG; returns (files, notes on figures not drawn)."""
    viz = optuna.visualization.matplotlib
    jobs: list[tuple[str, Callable[[], Any]]] = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for i, label in enumerate(labels):
        def target(t: FrozenTrial, i: int = i) -> float:
            return t.values[i]

        multi = len(labels) > 1
        kw = {"target": target, "target_name": label} if multi else {"target_name": label}
        jobs.append((f"history_{i}", lambda kw=kw: viz.plot_optimization_history(study, **kw)))
        varied = [p for p in {k for t in complete for k in t.params} if len({repr(t.params.get(p)) for t in complete}) > 1]
        if len(complete) >= 2 and varied:
            jobs.append((f"importances_{i}", lambda kw=kw: viz.plot_param_importances(study, **kw)))
    if len(labels) in (2, 3) and complete:
        jobs.append(("pareto_front", lambda: viz.plot_pareto_front(study, target_names=labels)))
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        def intermediate() -> Any:
            axes = viz.plot_intermediate_values(study)
            axes.set_ylabel(intermediate_label)
            return axes

        jobs.append(("intermediate_values", intermediate))
    files, notes = [], []
    for name, draw in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                files.append(_save_axes(draw(), plots_dir / f"{name}.png"))
        except Exception as exc:  # too few trials for a figure: say so instead of failing the report
            plt.close("all")
            notes.append(f"{name}: not drawn ({type(exc).__name__}: {exc})")
    return files, notes


# --------------------------------------------------------------------------- page
def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _link(folder: Path, target: str | None, text: str) -> str:
    if not target:
        return ""
    path = Path(target)
    if (path / REPORT).is_file():
        try:
            rel = (path / REPORT).relative_to(folder.resolve())
        except ValueError:
            rel = (path / REPORT).resolve()
        return f"<a href='{html.escape(str(rel))}'>{html.escape(text)}</a>"
    return html.escape(f"{text} ({target})")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """A table that scrolls sideways on a narrow screen (a trial's parameters make a wide one)."""
    head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _figure_alt(name: str, labels: list[str], intermediate_label: str) -> str:
    """What a figure of :func:`sweep_plots` (named ``name``) shows, for readers who cannot see it."""
    kind, _, index = name.rpartition("_")
    if kind == "history":  # Optuna draws the best-so-far line only for a single objective
        return (f"optimization history: {labels[int(index)]} of every trial in the order they ran"
                + (", and the best so far" if len(labels) == 1 else ""))
    if kind == "importances":
        return f"parameter importances for {labels[int(index)]} (fANOVA over the completed trials)"
    if name == "pareto_front":
        return f"Pareto front of the completed trials: {' against '.join(labels)}"
    if name == "intermediate_values":
        return f"{intermediate_label} after each epoch of every trial (what the pruner compares)"
    return name


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def render_report(plan: SweepPlan, study: optuna.Study, source: str) -> Path:
    folder = plan.sweep_dir
    labels = plan.labels
    trials = study.get_trials(deepcopy=False)
    results = test_results(study)
    best = final_trials(study)
    synthetic = any(t.user_attrs.get("synthetic") for t in trials)
    stage, metric, sign = pruning_signal(plan.sweep, plan.objectives)
    axis = f"{'-' if sign < 0 else ''}validation {metric} (stage {stage})"
    figures, notes = sweep_plots(study, labels, folder / "plots", axis)
    title = f"robustmm sweep: {plan.study_name}"
    parts = [HEAD.format(title=html.escape(title), style=STYLE)]
    if synthetic:
        parts.append(f"<div class='banner'>{html.escape(SYNTHETIC_BANNER)}</div>")
    directions = ", ".join(f"{lab} ({d.name.lower()})" for lab, d in zip(labels, study.directions))
    parts.append(f"<h1>{html.escape(title)}</h1><p>Study <code>{html.escape(plan.cfg.name)}</code> "
                 f"({html.escape(plan.source)}); objectives on the <b>validation</b> split: {html.escape(directions)}. "
                 f"Budget {counted(study.user_attrs.get(BUDGET_ATTR), 'trial')}; trials by state: "
                 f"{html.escape(json.dumps(state_counts(study)))}. Read from the {html.escape(source)}.</p>")

    best_title = "Pareto front" if len(labels) > 1 else "Best trial"
    parts.append(f"<h2>{best_title}</h2>")
    if not best:
        parts.append("<p>No trial has completed yet.</p>")
    else:
        parts.append("<p>Chosen on the validation split; each is evaluated once on the test split with the study's "
                     "bootstrap CIs, from the trial's own checkpoints (see its test run's report). The test "
                     "evaluation runs when every trial has finished (force it with <code>robustmm sweep ... "
                     "--final-only</code>).</p>")
        rows = []
        for t in best:
            entry = results.get(t.number, {})
            rows.append([str(t.number)] + [_fmt(v) for v in t.values]
                        + [_fmt(entry.get("test", {}).get(lab, "not yet")) for lab in labels]
                        + [html.escape(json.dumps(shown_params(plan.sweep, t.params))),
                           _link(folder, t.user_attrs.get("run_dir"), "trial run") + " "
                           + _link(folder, entry.get("run_dir"), "test run")])
        parts.append(_table(["trial"] + [f"{lab} (val)" for lab in labels] + [f"{lab} (test)" for lab in labels]
                            + ["parameters", "runs"], rows))
        for t in best:
            records = results.get(t.number, {}).get("records")
            if records:
                parts.append(f"<h3>Trial {t.number} on the test split</h3>")
                for metric in dict.fromkeys(r["metric"] for r in records):
                    parts.append(f"<p>{html.escape(metric)}</p>{metric_table(records, metric)}")
    if figures:
        parts.append("<h2>Plots</h2>")
        parts += [f"<img src='{html.escape(str(p.relative_to(folder)))}' "
                  f"alt='{html.escape(_figure_alt(p.stem, labels, axis))}'>" for p in figures]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")

    all_rows = []
    for t in trials:
        retry_of = t.system_attrs.get("failed_trial")
        error = str(t.user_attrs.get("error", "")).splitlines()[0] if t.user_attrs.get("error") else ""
        pruned = t.user_attrs.get("pruned_at")
        outcome = _fmt(t.values) if t.state == TrialState.COMPLETE else (
            f"pruned at epoch {pruned['epoch']} of {pruned['stage']}" if pruned else "")
        all_rows.append([str(t.number), t.state.name.lower(), html.escape(outcome),
                         html.escape(json.dumps(shown_params(plan.sweep, t.params))), _fmt(t.user_attrs.get("seconds", "")),
                         html.escape(str(t.user_attrs.get("host", ""))),
                         "" if retry_of is None else str(retry_of),
                         _link(folder, t.user_attrs.get("run_dir"), "run"), html.escape(error)])
    parts.append("<h2>All trials</h2>")
    parts.append(_table(["trial", "state", "result", "parameters", "seconds", "host", "retry of", "run folder",
                         "error"], all_rows))
    shown = plan.sweep.model_dump(mode="json")
    if shown.get("storage"):  # the page is meant to be shared: no password
        shown["storage"] = redact(shown["storage"])
    sweep_yaml = json.dumps(shown, indent=2)
    parts.append(f"<h2>Sweep configuration</h2><pre>{html.escape(sweep_yaml)}</pre>")
    parts.append("</body></html>")
    path = folder / REPORT
    write_text_atomic(path, inline_images("\n".join(parts), folder))
    return path


def summary_text(plan: SweepPlan, study: optuna.Study) -> str:
    lines = [f"sweep {plan.study_name}: trials {json.dumps(state_counts(study))} "
             f"(budget {study.user_attrs.get(BUDGET_ATTR)})"]
    if any(t.user_attrs.get("synthetic") for t in study.get_trials(deepcopy=False)):
        lines.insert(0, SYNTHETIC_BANNER)
    results = test_results(study)
    for t in final_trials(study):
        val = ", ".join(f"{lab} {_fmt(v)}" for lab, v in zip(plan.labels, t.values))
        lines.append(f"  trial {t.number}: validation {val}")
        lines.append(f"    parameters {json.dumps(shown_params(plan.sweep, t.params))}")
        entry = results.get(t.number)
        if entry:
            test = ", ".join(f"{k} {_fmt(v)}" for k, v in entry["test"].items())
            lines.append(f"    test {test}  (run {entry['run_dir']})")
        else:
            lines.append("    test: not evaluated yet")
    return "\n".join(lines)


def render_sweep_folder(folder: Path) -> Path:
    """``robustmm report SWEEP_DIR``: redraw the report (from the storage if reachable)."""
    import os

    plan = plan_from_folder(folder, os.environ.get("ROBUSTMM_SWEEP_STORAGE"))
    study, source = load_study_for_report(folder, os.environ.get("ROBUSTMM_SWEEP_STORAGE"))
    if source == "live storage":
        write_snapshot(study, folder)
    return render_report(plan, study, source)
