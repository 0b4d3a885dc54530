"""The reading aids at the top of report.html: the headline sentence that answers the study's
question for the primary metric, the flags on results that should not be cited as they are,
and a glossary of the metrics shown.

Everything here is computed from the metrics document (metrics.json) alone, so that
``robustmm report RUN_DIR`` rebuilds the same page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from robustmm.metrics.bootstrap import confidence_label
from robustmm.metrics.paired import higher_is_better
from robustmm.report.tables import fmt_ci
from robustmm.text import counted, form

#: fewer evaluated subjects than this make a CI too wide to support a conclusion
SMALL_N = 30

#: metrics whose chance level is 0.5 (a dashed line on the plots, named in the figure's caption)
CHANCE = {"auc": 0.5, "c_index": 0.5, "balanced_accuracy": 0.5, "td_auc": 0.5}

GLOSSARY = {
    "auc": "area under the ROC curve: the chance that a random converter (positive) gets a higher score than a "
           "random non-converter; 0.5 = chance, 1 = perfect",
    "accuracy": "fraction of subjects classified correctly at the decision threshold",
    "balanced_accuracy": "mean of sensitivity and specificity (per-class recall); 0.5 = chance for two classes",
    "sensitivity": "fraction of positives (e.g. converters) predicted positive (recall); n/a without a positive",
    "specificity": "fraction of negatives predicted negative; n/a without a negative",
    "f1": "harmonic mean of precision and sensitivity for the positive class, 2TP / (2TP + FP + FN); n/a when no "
          "subject is positive and none is predicted positive (not 0: no mistake was made)",
    "brier": "mean squared difference between the predicted probability and the outcome (0 or 1); lower is better, "
             "0.25 = always predicting 0.5 (a calibration measure: it moves when only the scores' scale moves)",
    "macro_f1": "F1 averaged over classes",
    "c_index": "Harrell's concordance between the predicted risk and the observed time to event: the chance that, "
               "of two comparable subjects, the one with the event first has the higher risk; 0.5 = chance. In a "
               "classification study it uses the time to conversion recorded in the data",
    "td_auc": "time-dependent AUC (cumulative/dynamic), averaged over the evaluation times",
    "ibs": "integrated Brier score of the predicted survival curves; lower is better, 0.25 ~ uninformative",
    "mae": "mean absolute error between prediction and truth; lower is better",
    "corr": "Pearson correlation between prediction and truth",
    "dice": "overlap of predicted and true region, 2|A∩B|/(|A|+|B|); 1 = perfect",
    "hd95": "95th percentile of the surface distance between predicted and true region (voxels/mm); lower is better",
    "non0_acc_2": "positive vs negative sentiment accuracy over the non-neutral subjects only (truly neutral ones are "
                  "not scored; its n counts the scored ones); for a classification head a predicted neutral is wrong",
    "non0_f1": "weighted F1 of positive vs negative sentiment over the non-neutral subjects only (its n counts them)",
    "non0_acc_2_polar": "as Non0_acc_2, but the best negative score is compared with the best positive one, so a "
                        "non-neutral subject always gets a polar answer",
    "non0_f1_polar": "as Non0_F1, with the polar answer of Non0_acc_2_polar",
    "has0_acc_2": "negative vs non-negative sentiment accuracy over every subject (neutral counts as non-negative)",
    "has0_f1": "weighted F1 of negative vs non-negative sentiment over every subject",
    "has0_acc_2_argmax": "as Has0_acc_2, but the predicted class is non-negative when the top class is neutral or "
                         "positive",
    "has0_f1_argmax": "as Has0_F1, with the prediction of Has0_acc_2_argmax",
    "acc_": "accuracy over sentiment classes (the number says how many)",
    "f1_3": "F1 over the negative / neutral / positive sentiment classes (weighted by class frequency)",
}

TERMS = [
    ("n", "subjects evaluated in that scenario (a subset scenario keeps only subjects that have all its "
          "modalities); a metric that leaves some out, such as Non0, counts only those it scores. With "
          "cross-validation: summed over the folds. With several seeds: per seed, the smallest count over the "
          "seeds (each seed evaluates its own split; metrics.json lists every seed's under n_per_seed)"),
    ("CI", "confidence interval at evaluation.confidence (95% by default): percentile bootstrap over the "
           "evaluated subjects; every method is resampled with the same "
               "subjects (paired). With cross-validation or several seeds: a t-interval over the fold or seed "
               "means"),
    ("without (total)", "fraction of the evaluated subjects without the modality: the natural part (no scan "
                        "collected) plus the simulated part added by the scenario"),
    ("naturally without", "the part of that fraction that is missing in the data themselves; a scenario never "
                          "restores it, so its plot cannot start below it (shaded)"),
    ("AUILC", "area under the metric-vs-missing-rate curve (trapezoid over the rate grid); over a 0-1 grid it is "
              "the average score across missing rates"),
    ("drop", "score under the scenario minus the score with complete data (signed: negative means worse for "
             "metrics where higher is better); on an AUILC row, the score at the grid's last rate minus its first"),
]


def glossary(metrics: list[str]) -> list[tuple[str, str]]:
    out = []
    for m in metrics:
        key = m.lower()
        text = GLOSSARY.get(key)
        if text is None:  # the most specific entry: a prefix (c_index_...), or a family such as "acc_" inside the name
            matches = [k for k in GLOSSARY if key.startswith(k) or (k in key and k.endswith("_"))]
            text = GLOSSARY[max(matches, key=len)] if matches else None
        if text is None and "dice" in key:
            text = GLOSSARY["dice"]
        if text is None and "hd95" in key:
            text = GLOSSARY["hd95"]
        if text is not None:
            out.append((m, text))
    return out + TERMS


def pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.0f}%"


def ci_level(doc: dict[str, Any]) -> str:
    """The level of the document's intervals, e.g. ``95%`` (``evaluation.confidence``; metrics.json
    files written before it was stored used the default 0.95)."""
    confidence = doc.get("confidence") or (doc.get("paired") or {}).get("confidence")
    if confidence:
        return confidence_label(confidence)
    stated = re.match(r"\d+(?:\.\d+)?%", str((doc.get("seeds") or doc.get("cross_validation") or {}).get("ci", "")))
    return stated.group(0) if stated else "95%"


def ci_label(doc: dict[str, Any]) -> str | None:
    """How the document's intervals were made when not by the bootstrap over subjects."""
    if doc.get("seeds"):
        return re.sub(r"^\d+(?:\.\d+)?% ", "", str(doc["seeds"].get("ci", "t-interval over seed means")))
    if doc.get("cross_validation"):
        return re.sub(r"^\d+(?:\.\d+)?% ", "", str(doc["cross_validation"].get("ci", "t-interval over fold means")))
    return None


# ------------------------------------------------------------------ headline
@dataclass
class Headline:
    text: str
    #: the records whose numbers the sentence quotes
    records: list[dict[str, Any]] = field(default_factory=list)
    #: the rate group the headline figure shows (None: no rate grid)
    group: str | None = None
    modality: str | None = None


def _rows(records, metric):
    return [r for r in records if r["metric"] == metric and r.get("value") is not None
            and not str(r["scenario"]).endswith(":AUILC")]


def _best(rows: list[dict], metric: str) -> dict:
    sign = 1 if higher_is_better(metric) else -1
    return max(rows, key=lambda r: sign * r["value"])


def _runner_up(pool: list[dict], winner: dict, metric: str) -> dict | None:
    """The second-best method when its value lies inside the winner's CI (a single run cannot
    separate them), else None."""
    others = [r for r in pool if r["method"] != winner["method"]]
    if not others or winner.get("ci_low") is None or winner.get("ci_high") is None:
        return None
    second = _best(others, metric)
    return second if winner["ci_low"] <= second["value"] <= winner["ci_high"] else None


def _paired_verdict(doc: dict[str, Any], winner: dict, runner: dict) -> str | None:
    """``difference [CI]`` of ``winner`` vs ``runner`` when the paired differences over seeds say
    the winner is better (either way round), else None."""
    for p in (doc.get("paired") or {}).get("records") or []:
        if p["scenario"] != winner["scenario"] or p["metric"] != winner["metric"] or p.get("ci_low") is None:
            continue
        pair = (p["method"], p["reference"])
        if (pair == (winner["method"], runner["method"]) and p["verdict"] == "better") or (
                pair == (runner["method"], winner["method"]) and p["verdict"] == "worse"):
            sign = 1 if p["method"] == winner["method"] else -1
            low, high = sorted((sign * p["ci_low"], sign * p["ci_high"]))
            return f"difference {sign * p['mean']:+.2f} [{low:+.2f}, {high:+.2f}]"
    return None


def rate_group(records: list[dict[str, Any]], metric: str, availability: dict[str, Any]) -> str | None:
    """The missing-rate grid the study asks about: the first one that drops one named modality,
    else the first rate grid."""
    groups = list(dict.fromkeys(r["group"] for r in _rows(records, metric) if r.get("rate") is not None))
    groups = [g for g in groups if len({r["rate"] for r in records if r["group"] == g and r.get("rate") is not None}) > 1]
    for g in groups:
        names = [r["scenario"] for r in records if r["group"] == g]
        if any((availability.get(s) or {}).get("modality") for s in names):
            return g
    return groups[0] if groups else None


def complete_scenario(records, metric, availability, group_scenarios) -> str | None:
    """A scenario where no evaluated subject misses any modality (the all-modality subset)."""
    for s in dict.fromkeys(r["scenario"] for r in _rows(records, metric)):
        a = availability.get(s)
        if a and s not in group_scenarios and not a.get("feature_rate") and all(v == 0 for v in a["missing"].values()):
            return s
    return None


def headline(doc: dict[str, Any]) -> Headline:
    bounds = sorted(set(doc.get("upper_bounds") or []))
    if bounds and any(r["method"] not in bounds for r in doc["records"]):  # rank the deployable methods only
        head = headline({**doc, "upper_bounds": [], "records": [r for r in doc["records"] if r["method"] not in bounds],
                         "paired": {**(doc.get("paired") or {}), "records": [
                             p for p in (doc.get("paired") or {}).get("records") or [] if p["method"] not in bounds]}})
        head.text += (f" ({', '.join(bounds)}: an upper bound that sees inputs the scenarios hide, shown in the "
                      "tables but not ranked.)")
        return head
    records, metric = doc["records"], doc["primary_metric"]
    availability = doc.get("availability") or {}
    rows = _rows(records, metric)
    label = metric.upper() if len(metric) <= 4 else metric
    if not rows:
        return Headline(f"No {metric} could be computed on the {doc.get('split', 'test')} split.")
    group = rate_group(records, metric, availability)
    if group is not None:
        members = sorted((r for r in rows if r["group"] == group), key=lambda r: r["rate"])
        low_rate, high_rate = members[0]["rate"], members[-1]["rate"]
        at_high = [r for r in members if r["rate"] == high_rate]
        modality = next((availability[r["scenario"]]["modality"] for r in members
                         if (availability.get(r["scenario"]) or {}).get("modality")), None)
        if modality is None and not any(r["scenario"] in availability for r in members) and group.endswith("_missing"):
            modality = group[: -len("_missing")]  # a document without availability: the default group name
        summary = [r for r in records if r["scenario"] == f"{group}:AUILC" and r["metric"] == metric
                   and r.get("value") is not None]
        # a missing modality: the method to deploy without it; a feature-missing grid: the best area
        by_area = modality is None and len(summary) > 1
        pool = summary if by_area else at_high
        winner = _best(pool, metric)
        method = winner["method"]
        mine = [r for r in members if r["method"] == method]
        complete = (complete_scenario(records, metric, availability, {r["scenario"] for r in members})
                    if modality else None)
        low = next((r for r in rows if r["scenario"] == complete and r["method"] == method), None) if complete else None
        low = low or next(r for r in mine if r["rate"] == low_rate)
        high = next(r for r in mine if r["rate"] == high_rate)
        if modality:
            mod = modality.upper() if len(modality) <= 4 else modality
            a_low, a_high = availability.get(low["scenario"]), availability.get(high["scenario"])
            nat = a_low["natural_missing"].get(modality) if a_low else None
            if low["scenario"] == complete or (a_low is not None and not nat):
                low_text = f"with every {mod}"
            else:
                low_text = f"with {mod} as collected" + (f" ({pct(nat)} without)" if nat else "")
            total = a_high["missing"].get(modality) if a_high else (1.0 if high_rate >= 0.999 else None)
            high_text = f"with no {mod}" if total is not None and total >= 0.999 else (
                f"with {pct(total)} of subjects without {mod}" if total is not None else f"with {mod} removed at "
                f"rate {high_rate:g}")
        else:
            modality = None
            low_text, high_text = f"at {group} rate {low_rate:g}", f"at rate {high_rate:g}"
        n_methods = len({r["method"] for r in at_high})
        best_by = f"by AUILC over rates {low_rate:g}-{high_rate:g}" if by_area else high_text
        who = f"{method}, the best of {n_methods} methods {best_by}" if n_methods > 1 else method
        runner = _runner_up(pool, winner, metric)
        settled = _paired_verdict(doc, winner, runner) if runner is not None else None
        if settled is not None:  # several seeds separate what one interval per method cannot
            who += f"; paired over seeds it is better than {runner['method']} ({settled})"
        elif runner is not None:
            who = (f"{method} is highest {best_by}, but {runner['method']} ({runner['value']:.2f}) lies inside its CI"
                   if higher_is_better(metric) else
                   f"{method} is lowest {best_by}, but {runner['method']} ({runner['value']:.2f}) lies inside its CI")
        text = (f"{label} {low_text}: {fmt_ci(low, 2)} (n = {low['n']}); {high_text}: {fmt_ci(high, 2)} "
                f"(n = {high['n']}) — {who}.")
        return Headline(text, [low, high], group, modality)
    subsets = [r for r in rows if r.get("group") == "subsets"]
    if len({r["scenario"] for r in subsets}) > 1:
        return _subsets_headline(doc, subsets, metric, label)
    scenario = rows[0]["scenario"]
    candidates = [r for r in rows if r["scenario"] == scenario]
    best = _best(candidates, metric)
    return Headline(f"{label} on {scenario}: {fmt_ci(best, 2)} (n = {best['n']}) — {best['method']}"
                    + (f", the best of {len(candidates)} methods." if len(candidates) > 1 else "."), [best])


def _subsets_headline(doc: dict[str, Any], subsets: list[dict], metric: str, label: str) -> Headline:
    """The method with the best mean over the modality subsets, how far the next one is behind it
    subset by subset, and the winner's best and worst subset."""
    by_method: dict[str, dict[str, dict]] = {}
    for r in subsets:
        by_method.setdefault(r["method"], {})[r["scenario"]] = r
    sign = 1 if higher_is_better(metric) else -1
    common = set.intersection(*(set(rows) for rows in by_method.values()))  # every method over the same subsets
    if common:
        by_method = {m: {s: r for s, r in rows.items() if s in common} for m, rows in by_method.items()}
    means = {m: sum(r["value"] for r in rows.values()) / len(rows) for m, rows in by_method.items()}
    ranked = sorted(means, key=lambda m: -sign * means[m])
    method, mine = ranked[0], by_method[ranked[0]]
    skipped = [s for s in doc.get("skipped_scenarios") or [] if s.get("group") == "subsets"]
    over = f"{len(mine)} modality subsets" + (f" ({len(skipped)} more had no evaluable subject)" if skipped else "")
    text = f"{label}, mean over {over}: {method} {means[method]:.2f}"
    if len(ranked) > 1:
        runner = ranked[1]
        shared = [s for s in mine if s in by_method[runner]]
        pairs = {(p["method"], p["reference"]) for p in (doc.get("paired") or {}).get("records") or []}
        best_word = "highest" if sign > 0 else "lowest"
        text += f", the {best_word} of {len(ranked)} methods; next {runner} {means[runner]:.2f}"
        if {(method, runner), (runner, method)} & pairs:  # the seeds' paired differences decide
            apart = [s for s in shared if _paired_verdict(doc, mine[s], by_method[runner][s]) is not None]
            text += f"; paired over seeds {method} is better on {len(apart) or 'none'} of the {len(shared)} subsets"
        else:
            inside = [s for s in shared if mine[s].get("ci_low") is not None
                      and mine[s]["ci_low"] <= by_method[runner][s]["value"] <= mine[s]["ci_high"]]
            text += (f", inside {method}'s CI on every subset" if len(inside) == len(shared) else
                     f", inside {method}'s CI on {len(inside)} of the {len(shared)} subsets")
    order = sorted(mine.values(), key=lambda r: sign * r["value"])
    worst, best = order[0], order[-1]
    text += (f". {method} per subset: {fmt_ci(best, 2)} under {best['scenario']} (n = {best['n']}) to "
             f"{fmt_ci(worst, 2)} under {worst['scenario']} (n = {worst['n']}).")
    return Headline(text, [best, worst])


# ------------------------------------------------------------------ flags
#: metrics computed at the decision threshold: meaningless when one class is always predicted
THRESHOLD_METRICS = {"accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "precision", "npv", "ppv"}


def _note(notes: dict, key: tuple, text: str) -> None:
    notes[key] = f"{notes[key]}; {text}" if key in notes else text


def _per_run(r: dict[str, Any]) -> dict[str, float | None]:
    """The value of each fold or seed behind a mean over runs ({} for a single run)."""
    return {str(k): v for k, v in enumerate(r["folds"])} if r.get("folds") else dict(r.get("seeds") or {})


def _classes_per_run(r: dict[str, Any]) -> dict[str, int | None]:
    """A record's number of distinct predicted classes per run: {"": k} for a single run, per fold or seed
    behind a mean over runs, {} for a task that predicts no classes (or a binary one, see _one_class)."""
    value = r.get("predicted_classes")
    if isinstance(value, list):
        return {str(k): v for k, v in enumerate(value)}
    if isinstance(value, dict):
        return dict(value)
    return {} if value is None else {"": value}


def _one_class(sensitivity: float | None, specificity: float | None) -> bool:
    return (sensitivity is not None and specificity is not None
            and {round(sensitivity, 9), round(specificity, 9)} == {0.0, 1.0})


def _zero_width(r: dict[str, Any]) -> bool:
    """A CI of width 0; a t-interval over identical values is a few ulps wide (their mean is rounded)."""
    return (r.get("ci_low") is not None and r.get("ci_high") is not None
            and r["ci_high"] - r["ci_low"] <= 1e-9 * max(1.0, abs(r.get("value") or 0.0)))


def skipped_text(skipped: list[dict[str, Any]] | None) -> str | None:
    """One sentence naming the scenarios that no subject could be evaluated under (None if none)."""
    if not skipped:
        return None
    names = [s["scenario"] + (f" (in {s['in']} of {s['of']} runs)" if s.get("of", 1) > 1 else "") for s in skipped]
    return (f"No evaluable subject under {counted(len(names), 'scenario')}, left out of every table, mean and plot: "
            f"{', '.join(names[:8])}{' …' if len(names) > 8 else ''} (every subject lacks a modality they need).")


def flags(records: list[dict[str, Any]], skipped: list[dict[str, Any]] | None = None
          ) -> tuple[list[str], dict[tuple[str, str, str], str]]:
    """Plain-language warnings and, per (method, scenario, metric), a short cell note; ``skipped``:
    the document's ``skipped_scenarios``."""
    notes: dict[tuple[str, str, str], str] = {}
    lines: list[str] = [text] if (text := skipped_text(skipped)) else []
    by_cell: dict[tuple[str, str], dict[str, dict]] = {}
    for r in records:
        by_cell.setdefault((r["method"], r["scenario"]), {})[r["metric"]] = r
    single = []
    for (method, scenario), metrics in by_cell.items():
        sens, spec = metrics.get("sensitivity"), metrics.get("specificity")
        if not (sens and spec):
            continue
        if _one_class(sens.get("value"), spec.get("value")):
            share = ""
        else:  # a mean over folds or seeds hides the runs that predicted one class
            runs, spec_runs = _per_run(sens), _per_run(spec)
            count = sum(_one_class(v, spec_runs.get(k)) for k, v in runs.items())
            if not count:
                continue
            share = f"in {count} of {len(runs)} runs"
        single.append(f"{method} under {scenario}" + (f" ({share})" if share else ""))
        for m in metrics:
            if m.lower() in THRESHOLD_METRICS:
                _note(notes, (method, scenario, m), f"predicts one class only {share}".strip())
    if single:
        lines.append(f"Single-class predictions (sensitivity or specificity 0 at the threshold) in "
                     f"{counted(len(single), 'result')}: {', '.join(single[:6])}{' …' if len(single) > 6 else ''}. "
                     "Their threshold metrics say nothing about discrimination; look at AUC.")
    same_class = []  # tasks with several classes (multiclass, sentiment classes): every metric is at stake
    for (method, scenario), metrics in by_cell.items():
        runs = next((c for r in metrics.values() if (c := _classes_per_run(r))), {})
        count = sum(k == 1 for k in runs.values())
        if not count:
            continue
        share = f"in {count} of {len(runs)} runs" if len(runs) > 1 else ""
        same_class.append(f"{method} under {scenario}" + (f" ({share})" if share else ""))
        for m in metrics:
            _note(notes, (method, scenario, m), f"predicts one class only {share}".strip())
    if same_class:
        lines.append(f"Single-class predictions (the same class for every evaluated subject) in "
                     f"{counted(len(same_class), 'result')}: {', '.join(same_class[:6])}"
                     f"{' …' if len(same_class) > 6 else ''}. Their metrics only say how common that class is "
                     "among the subjects, not what the model tells apart.")
    undefined = [r for r in records if r.get("value") is None]
    for r in undefined:
        _note(notes, (r["method"], r["scenario"], r["metric"]), "undefined")
    if undefined:
        lines.append(f"{counted(len(undefined), 'value')} could not be computed and "
                     f"{form(len(undefined), 'shows', 'show')} as n/a (e.g. a C-index without an event among the "
                     "evaluated subjects, an AUC with one class only, an F1 without a positive subject or "
                     "prediction): "
                     + ", ".join(f"{r['method']}/{r['scenario']}/{r['metric']}" for r in undefined[:5])
                     + (" …" if len(undefined) > 5 else ""))
    partial = []
    for r in records:
        runs = list(_per_run(r).values())
        lost = sum(v is None or v != v for v in runs)  # None, or NaN where a seed could not compute it
        if lost and r.get("value") is not None:
            partial.append(f"{r['method']}/{r['scenario']}/{r['metric']}")
            _note(notes, (r["method"], r["scenario"], r["metric"]), f"mean over {len(runs) - lost} of {len(runs)} runs")
    if partial:
        lines.append(f"{counted(len(partial), 'value')} {form(len(partial), 'is a mean', 'are means')} over fewer "
                     f"folds or seeds than the study ran, because the others could not compute "
                     f"{form(len(partial), 'it', 'them')}: {', '.join(partial[:5])}"
                     f"{' …' if len(partial) > 5 else ''}")
    zero = [r for r in records if _zero_width(r)]
    for r in zero:
        _note(notes, (r["method"], r["scenario"], r["metric"]), "CI of width 0")
    if zero:
        lines.append(f"{counted(len(zero), 'CI')} of width 0 (every bootstrap resample, or every seed or fold, gave "
                     "the same value, usually a degenerate prediction): "
                     + ", ".join(f"{r['method']}/{r['scenario']}/{r['metric']}" for r in zero[:5])
                     + (" …" if len(zero) > 5 else ""))
    flat = []
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        if r.get("rate") is not None and r.get("value") is not None:
            groups.setdefault((r["method"], r["group"], r["metric"]), []).append(r)
    for (method, group, metric), rows in groups.items():
        if len(rows) >= 3 and max(r["value"] for r in rows) - min(r["value"] for r in rows) == 0:
            flat.append(f"{method}/{group}/{metric}")
            for r in rows:
                _note(notes, (method, r["scenario"], metric), "same value at every rate")
    if flat:
        lines.append(f"Identical value at every missing rate for {', '.join(flat[:5])}{' …' if len(flat) > 5 else ''}: "
                     "the predictions may not depend on the inputs (e.g. one class always).")
    # one entry per scenario at its smallest n (Non0 metrics score fewer subjects than the others); first-seen
    # order among equal n, so that a rebuilt report says the same (a set's order is not fixed)
    smallest: dict[str, int] = {}
    for r in records:
        if r.get("n") is not None and r["n"] < SMALL_N:
            smallest[r["scenario"]] = min(r["n"], smallest.get(r["scenario"], r["n"]))
    small = sorted(smallest.items(), key=lambda x: x[1])
    for r in records:
        if r.get("n") is not None and r["n"] < SMALL_N:
            _note(notes, (r["method"], r["scenario"], r["metric"]), f"n = {r['n']} < {SMALL_N}")
    if small:
        lines.append(f"Fewer than {SMALL_N} evaluated subjects in {counted(len(small), 'scenario')} (smallest n = "
                     f"{small[0][1]}, {small[0][0]}): intervals are wide and can be unreliable.")
    return lines, notes
