"""report.html: one self-contained page (images inline) that reads top-down in a minute.

Order: the answer (one sentence + one figure for the primary metric), the method comparison,
flags on results not to cite as they are, the plots, the detailed tables (collapsed), the
glossary, the data (tables), the methods and the resolved configuration (collapsed).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from pathlib import Path
from typing import Any

from robustmm.metrics.bootstrap import confidence_label
from robustmm.report import repeats, story
from robustmm.report.tables import SYNTHETIC_BANNER, fmt_ci, pivot
from robustmm.text import counted

STYLE = """
body{font-family:system-ui,-apple-system,sans-serif;margin:0 auto;padding:0 12px 2em;max-width:980px;color:#222;
line-height:1.4}
h1{font-size:1.35em;margin:.6em 0 .2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.sub{color:#555;font-size:.9em;margin:0 0 .6em}
.headline{font-size:1.12em;font-weight:600;background:#eef4fb;border-left:4px solid #2a6ebb;padding:.6em .8em;
margin:.6em 0}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
td.best{font-weight:bold}
.flag{color:#a15c00;cursor:help;position:relative}
.flag:focus::after{content:attr(title);position:absolute;right:0;top:1.3em;z-index:1;width:16em;white-space:normal;
text-align:left;font-size:12px;color:#222;background:#fff6e5;border:1px solid #f0c36d;padding:2px 6px}
.flags{background:#fff6e5;border:1px solid #f0c36d;padding:.4em .8em;margin:.8em 0}
.flags li{margin:.2em 0}
.banner{background:#b00020;color:#fff;font-weight:bold;padding:10px;font-size:16px;margin:0 -12px .4em}
img{max-width:100%;height:auto;border:1px solid #ddd;margin:4px 0}
figure{margin:.4em 0}
figcaption{font-size:.85em;color:#555}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}
pre{background:#f7f7f7;padding:10px;overflow:auto;font-size:12px}
dl{font-size:.9em}dt{font-weight:600}dd{margin:0 0 .4em 1em}
.note{font-size:.85em;color:#555}
"""

HEAD = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
        "<style>{style}</style></head><body>")

e = html.escape
log = logging.getLogger("robustmm")
#: marks the best ranked value of a table row, next to the bold
BEST_MARK = "★"


def _table(header: list[str], rows: list[list[str]], raw: bool = False, cls: str = "") -> str:
    """A scrollable table; cells are escaped unless ``raw`` (then a cell may be a whole ``<td ...>``)."""
    cell = (lambda c: str(c)) if raw else (lambda c: e(str(c)))
    head = "".join(f"<th scope='col'>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(c if raw and c.startswith("<td") else f"<td>{cell(c)}</td>" for c in map(str, r))
                   + "</tr>" for r in rows)
    attr = f" class='{cls}'" if cls else ""
    return f"<div class='scroll'><table{attr}><tr>{head}</tr>{body}</table></div>"


def metric_table(records: list[dict[str, Any]], metric: str) -> str:
    """scenario rows x method columns for one metric, with the number of subjects ``n``."""
    rows, cols, cells = pivot(records, metric)
    body = []
    for s in rows:
        n = next((cells[(s, m)].get("n") for m in cols if (s, m) in cells), None)
        body.append([s, "" if n is None else n] + [fmt_ci(cells[(s, m)]) if (s, m) in cells else "" for m in cols])
    return _table(["scenario", "n"] + cols, body)


_IMG = re.compile(r"<img\b[^>]*>")
_SRC = re.compile(r"src=(['\"])(.*?)\1")
_INLINED = re.compile(r"data-file=(['\"])(.*?)\1 src=\1(data:[^'\"]*)\1")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def inline_images(page: str, base: Path, stored: dict[str, str] | None = None) -> str:
    """``src`` attributes of images that name a PNG/JPEG/SVG under ``base`` become data URIs (one
    file to share); the file's name stays in ``data-file``. A file no longer there is taken from
    ``stored`` (what an earlier report.html held, :func:`inlined_images`: figures drawn from the
    trained methods cannot be drawn again from metrics.json), else the image becomes a note."""
    stored = stored or {}

    def swap(tag: re.Match) -> str:
        src = _SRC.search(tag.group(0))
        if src is None:
            return tag.group(0)
        quote, name = src.group(1), html.unescape(src.group(2))
        path = base / name
        if (name.startswith(("data:", "http:", "https:", "/")) or path.suffix.lower() not in IMAGE_TYPES
                or not path.resolve().is_relative_to(base.resolve())):
            return tag.group(0)
        if path.is_file():
            data = f"data:{IMAGE_TYPES[path.suffix.lower()]};base64,{base64.b64encode(path.read_bytes()).decode()}"
        elif name in stored:
            data = stored[name]
        else:
            log.warning("%s: figure %s is missing and was left out of the report", base, name)
            return (f"<p class='note'>Figure {e(name)} is missing from the run folder, and no earlier report.html "
                    "held it (figures drawn from the trained methods are not redrawn from metrics.json).</p>")
        attrs = f"data-file={quote}{src.group(2)}{quote} src={quote}{data}{quote}"
        return tag.group(0)[:src.start()] + attrs + tag.group(0)[src.end():]

    return _IMG.sub(swap, page)


def inlined_images(page: str) -> dict[str, str]:
    """The images ``page`` (a report.html) holds inline: file name (``data-file``) -> data URI."""
    return {html.unescape(m.group(2)): m.group(3) for m in _INLINED.finditer(page)}


# ------------------------------------------------------------------ availability columns
def _missing_text(a: dict[str, Any] | None, key: str) -> str:
    if not a:
        return ""
    parts = [f"{m} {story.pct(v)}" for m, v in a[key].items() if v > 0]
    if key == "missing" and a.get("feature_rate") is not None:
        parts.insert(0, f"features {story.pct(a['feature_rate'])}")
    return ", ".join(parts) if parts else "none"


def _grid_missing_text(grid: list[dict[str, Any]]) -> str:
    """The total fraction without each modality (and of features dropped) over a rate grid, lowest–highest:
    a grid of feature (rmfm) or random-modality rates has no one modality it removes."""
    ranges = {}
    if all(g.get("feature_rate") is not None for g in grid):
        ranges["features"] = [g["feature_rate"] for g in grid]
    ranges.update({m: [g["missing"][m] for g in grid] for m in grid[0]["missing"]})
    parts = [f"{name} {story.pct(min(v))}–{story.pct(max(v))}" for name, v in ranges.items() if max(v) > 0]
    return ", ".join(parts) if parts else "none"


def _scenario_rows(records, metric, availability, notes, upper_bounds) -> tuple[list[str], list[list[str]]]:
    rows, cols, cells = pivot(records, metric)
    higher = story.higher_is_better(metric)
    out = []
    for s in rows:
        present = [cells[(s, m)] for m in cols
                   if m not in upper_bounds and (s, m) in cells and cells[(s, m)].get("value") is not None]
        best = None
        if len(present) > 1:
            best = (max if higher else min)(present, key=lambda r: r["value"])["method"]
        n = next((cells[(s, m)].get("n") for m in cols if (s, m) in cells), "")
        a = availability.get(s)
        total, natural = _missing_text(a, "missing"), _missing_text(a, "natural_missing")
        if a is None and s.endswith(":AUILC"):  # the whole grid of a rate group
            grid = [availability[r["scenario"]] for r in records if r["group"] == s[:-6] and r["metric"] == metric
                    and r["scenario"] in availability]
            if grid:
                total, natural = _grid_missing_text(grid), _missing_text(grid[0], "natural_missing")
        row = [s, total, natural, str(n)]
        for m in cols:
            r = cells.get((s, m))
            if r is None:
                row.append("<td></td>")
                continue
            note = notes.get((m, s, metric))
            # a phone has no hover: tapping focuses the mark and the CSS shows the note; a screen
            # reader reads the label
            flag = (f" <span class='flag' tabindex='0' role='img' aria-label='check: {e(note)}' "
                    f"title='{e(note)}'>⚠</span>" if note else "")
            # bold alone is lost on screen readers and in plain-text copies: the star says it too
            cls, star = (" class='best'", f" {BEST_MARK}") if m == best else ("", "")
            row.append(f"<td{cls}>{e(fmt_ci(r))}{star}{flag}</td>")
        out.append(row)
    return (["scenario", "without (total)", "naturally without", "n"]
            + [f"{m} (upper bound, not ranked)" if m in upper_bounds else m for m in cols], out)


def scenario_table(records, metric, availability, notes, upper_bounds=frozenset()) -> str:
    """One row per scenario, one column per method; the best ranked value of a row in bold and
    marked :data:`BEST_MARK` (an upper bound sees inputs the others do not, so it is shown but never
    marked best)."""
    header, rows = _scenario_rows(records, metric, availability, notes, upper_bounds)
    return _table(header, [[e(c) if not c.startswith("<td") else c for c in r[:4]] + r[4:] for r in rows], raw=True)


# ------------------------------------------------------------------ method comparison
def comparison_section(doc: dict[str, Any], head: story.Headline, availability, notes, ci: str) -> str:
    """Paired differences over seeds when the run has them, else the headline scenarios side by
    side with each method's CI (``ci``: how those intervals were made)."""
    primary = doc["primary_metric"]
    metrics = repeats.paired_metrics(doc)
    if metrics:
        paired = doc["paired"]
        conf, ref = paired.get("confidence", 0.95), paired.get("reference")
        n_seeds = len(doc["seeds"]["seeds"])
        out = (f"<p class='note'>Per seed, both methods share the split and the missing masks; the difference is "
               f"method − {e(str(ref))}, with a {confidence_label(conf)} Student-t interval over "
               f"{counted(n_seeds, 'seed')}. The verdict is <i>better</i> or <i>worse</i> only when the "
               "whole interval lies on one side of 0 (sides swapped for lower-is-better metrics), otherwise "
               "<i>no clear difference</i>; <i>agree</i> counts the seeds whose difference has the sign of the "
               "mean." + (f" Only {counted(n_seeds, 'seed')}: below 5 the interval is wide and most verdicts are "
                          "<i>no clear difference</i>." if n_seeds < 5 else "") + "</p>")
        for i, metric in enumerate(metrics):
            table = _table(repeats.VERDICT_HEADER, repeats.verdict_rows(doc, metric))
            out += (f"<h3>{e(metric)}</h3>{table}" if i == 0 else
                    f"<details><summary>{e(metric)}</summary>{table}</details>")
        return out
    # fallback: the headline scenarios side by side, per-method CIs
    keep = [r["scenario"] for r in head.records]
    if head.group is None:  # every scenario of the headline's groups (e.g. all modality subsets)
        groups = {r["group"] for r in head.records}
        keep += [r["scenario"] for r in doc["records"] if r["group"] in groups]
    else:
        members = sorted((r for r in doc["records"] if r["group"] == head.group and r["metric"] == primary),
                         key=lambda r: (r["rate"] is None, r["rate"] or 0))
        keep = [s for s in keep if s not in {r["scenario"] for r in members}] + [r["scenario"] for r in members]
    order = {s: i for i, s in enumerate(dict.fromkeys(keep))}
    subset = sorted((r for r in doc["records"] if r["metric"] == primary and r["scenario"] in order),
                    key=lambda r: order[r["scenario"]])
    if len({r["method"] for r in subset}) < 2:
        return ""
    how = ("a bootstrap over the same resampled subjects (paired), so overlapping intervals do not by themselves "
           "mean no difference" if story.ci_label(doc) is None else f"a {ci}")
    return (f"<p class='note'>Each method's {story.ci_level(doc)} CI is {e(how)}. For a verdict per method, repeat the study over "
            "several seeds (the comparison then shows paired differences). Best value per row in bold and marked "
            f"{BEST_MARK}.</p>"
            + scenario_table(subset, primary, availability, notes, frozenset(doc.get("upper_bounds") or ())))


# ------------------------------------------------------------------ model selection, seeds and folds
#: titles of sections that metrics.json files written before the page derived them still hold
_DERIVED_TITLES = re.compile(r"(Model selection|Restored epochs over seeds|Paired differences vs .*|(Seed|Fold) \d+)")


def run_sections(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The restored epochs (one run, or per seed/fold) and links to the runs inside the folder."""
    kind, folders = repeats.inner_runs(doc)
    out = []
    selection = doc.get("selection") or {}
    if kind and selection:
        header, rows = repeats.restored_over_runs(selection)
        out.append((f"Restored epochs over {kind}s", "<p class='note'>Epoch (from 0) each stage was restored from, "
                    "by the study's selection policy (training.selection); the reasons are in each run's report "
                    "and metrics.json.</p>" + _table(header, rows)))
    elif selection:
        out.append(("Model selection", "<p class='note'>Every method's stages use the study's selection policy "
                    "(training.selection); epochs are counted from 0.</p>"
                    + _table(repeats.SELECTION_HEADER, repeats.selection_rows(selection), cls="training")))
    if folders:
        out.append((f"Runs of each {kind}", "<ul>" + "".join(
            f"<li><a href='{e(f)}/report.html'>{e(f)}/report.html</a></li>" for f in folders) + "</ul>"))
    return out


# ------------------------------------------------------------------ data section
def _counts_table(by_split: dict[str, dict[str, int]], first: str) -> str:
    keys = list(dict.fromkeys(k for v in by_split.values() for k in v))
    rows = [[split] + [v.get(k, 0) for k in keys] + [sum(v.values())] for split, v in by_split.items()]
    rows.append(["all"] + [sum(v.get(k, 0) for v in by_split.values()) for k in keys]
                + [sum(sum(v.values()) for v in by_split.values())])
    return _table([first] + keys + ["n"], rows)


def _generic(value: Any) -> str:
    if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
        return _table(["key", "value"], [[k, v] for k, v in value.items()], cls="kv")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f"<p>{e(str(value))}</p>"
    return f"<pre>{e(json.dumps(value, indent=2, default=str))}</pre>"


def _oracle_section(oracle: dict[str, Any]) -> str:
    """The generator's oracle ceilings: one row per subset, one column per value (BraTS: one per region)."""
    unit = "voxels" if "voxels_scored" in oracle else "subjects"
    fitted, scored = oracle.get(f"{unit}_fit"), oracle.get(f"{unit}_scored")
    metric = str(oracle.get("metric", "ceiling"))
    ceilings = oracle["ceilings"]
    columns = list(dict.fromkeys(k for v in ceilings.values() if isinstance(v, dict) for k in v)) or [metric]
    rows = [[name, *([value.get(c, "") for c in columns] if isinstance(value, dict) else [value]), scored]
            for name, value in ceilings.items()]
    text = (f"{oracle.get('model', 'a simple model')}, fitted on {fitted} simulated {unit} and scored on {scored} "
            "others: what a model that reads the planted signal this way scores; a reference for the measured "
            "numbers, not a bound on every model.")
    notes = str(oracle.get("notes") or "")
    rest = {k: v for k, v in oracle.items() if k not in ("ceilings", "metric", "model", "notes", "subjects_fit",
                                                          "subjects_scored", "voxels_fit", "voxels_scored")}
    return (f"<h3>Oracle ceilings of the synthetic generator ({e(metric)})</h3>"
            f"<p class='note'>{e(text)}{(' ' + e(notes)) if notes else ''}</p>"
            + _table(["subset", *columns, "n"], rows) + (_generic(rest) if rest else ""))


def data_section(data: dict[str, Any]) -> str:
    data = dict(data)
    parts = []
    root = data.pop("root", None)
    samples = data.pop("samples", None)
    data.pop("synthetic", None)
    splits = data.pop("splits", None)
    classes = data.pop("classes_by_split", None)
    presence = data.pop("presence_by_split", None)
    natural = data.pop("naturally_present", None)
    modalities = data.pop("modalities", None)
    loader = data.pop("loader", None) or {}
    if root or samples is not None:
        parts.append(f"<p>{e(str(samples))} subjects used" + (f", from <code>{e(str(root))}</code>" if root else "")
                     + ".</p>")
    if classes:
        parts.append("<h3>Subjects per split and class</h3>" + _counts_table(classes, "split"))
    elif splits:
        parts.append("<h3>Subjects per split</h3>" + _table(["split", "n"], [[k, v] for k, v in splits.items()]))
    if presence and splits:
        mods = list(dict.fromkeys(m for v in presence.values() for m in v))
        rows = []
        for split, counts in presence.items():
            n = splits.get(split, 0)
            rows.append([split, n] + [f"{counts.get(m, 0)} ({story.pct(counts.get(m, 0) / n) if n else ''})"
                                      for m in mods])
        parts.append("<h3>Modality availability (subjects with the modality, of n)</h3>"
                     + _table(["split", "n"] + mods, rows))
    elif natural and samples:
        parts.append("<h3>Modality availability</h3>" + _table(
            ["modality", "subjects with it", "n"], [[m, f"{v} ({story.pct(v / samples)})", samples]
                                                    for m, v in natural.items()]))
    if modalities:
        parts.append("<h3>Inputs (n: subjects with the modality)</h3>" + _table(["modality", "kind", "shape", "n"], [
            [m, v.get("kind", ""), "×".join(map(str, v.get("shape", []))), (natural or {}).get(m, "")]
            for m, v in modalities.items()]))
    if loader:
        loader = dict(loader)
        used, in_table = loader.pop("subjects_used", None), loader.pop("subjects_in_table", None)
        excluded = loader.pop("excluded", None) or {}
        if in_table is not None:
            parts.append(f"<p>{e(str(in_table))} subjects in the table, {e(str(used))} used.</p>")
        parts.append("<h3>Exclusions</h3>")
        if excluded:
            rows = []
            for reason, v in excluded.items():
                count = v.get("count") if isinstance(v, dict) else len(v)
                ids = v.get("subjects", []) if isinstance(v, dict) else v
                rows.append([reason, count, ", ".join(map(str, ids[:5])) + (" …" if count > len(ids[:5]) else "")])
            parts.append(_table(["reason", "n", "first subject ids"], rows))
        else:
            parts.append("<p>none</p>")
        imputed = loader.pop("imputed_cells", None)
        parts.append("<h3>Imputed cells (n: cells filled with the training-split mean)</h3>"
                     + (_table(["column", "n"], list(map(list, imputed.items())))
                                                 if imputed else "<p>none</p>"))
        notes = loader.pop("notes", None)
        if notes:
            parts.append("<ul>" + "".join(f"<li>{e(str(n))}</li>" for n in notes) + "</ul>")
        for k, v in loader.items():
            parts.append(f"<h3>{e(k)}</h3>{_generic(v)}")
    oracle = data.pop("oracle", None)
    if isinstance(oracle, dict) and isinstance(oracle.get("ceilings"), dict):
        parts.append(_oracle_section(oracle))
    elif oracle is not None:
        data["oracle"] = oracle
    for k, v in data.items():
        parts.append(f"<h3>{e(k.replace('_', ' '))}</h3>{_generic(v)}")
    return "".join(parts)


# ------------------------------------------------------------------ page
def _runs_text(doc: dict[str, Any]) -> str:
    """How many runs the page's numbers come from, for the line under the title."""
    seeds = (doc.get("seeds") or {}).get("seeds")
    if seeds:
        return f", mean over {counted(len(seeds), 'seed')} ({', '.join(map(str, seeds))})"
    if doc.get("cross_validation"):
        return ""
    return ", one run" + (f" (seed {doc['seed']})" if doc.get("seed") is not None else "")


def _figure_alt(doc: dict[str, Any], path: str, modality: str | None = None) -> str:
    """What a figure of the page shows, for readers who cannot see it. Figures are named
    ``<group>_<metric>.png`` (robustmm.report.render)."""
    primary = doc["primary_metric"]
    group = Path(path).stem.removesuffix(f"_{primary}")
    rows = [r for r in doc["records"] if r["group"] == group and r["metric"] == primary]
    if modality:
        what = f"against the fraction of test subjects without {modality}"
    elif any(r.get("rate") is not None for r in rows):
        what = f"against the missing rate of {group}"
    else:
        what = f"on every scenario of {group}"
    methods = ", ".join(dict.fromkeys(r["method"] for r in rows))
    return (f"{primary} of each method {what}, with {story.ci_level(doc)} CIs" + (f" ({methods})" if methods else "")
            + f"; the numbers are in the {primary} table under Detailed results")


_SECTION_TABLE = re.compile(r"(<div class='scroll'>)?(<table\b.*?</table>)", re.S)
_ROW = re.compile(r"<tr\b.*?</tr>", re.S)
_UNSCOPED_TH = re.compile(r"<th(?![^>]*\bscope=)(?=[\s>])")


def _tidy_tables(fragment: str) -> str:
    """The tables of a section that a method or task wrote: each scrolls sideways on a narrow screen
    instead of widening the page, and its header cells get a scope (a header cell of the first row
    names its column, one of a later row names its row)."""

    def one(match: re.Match) -> str:
        first = True

        def scope(row: re.Match) -> str:
            nonlocal first
            kind, first = ("col" if first else "row"), False
            return _UNSCOPED_TH.sub(f"<th scope='{kind}'", row.group(0))

        table = _ROW.sub(scope, match.group(2))
        return f"<div class='scroll'>{table}</div>" if match.group(1) is None else match.group(1) + table

    return _SECTION_TABLE.sub(one, fragment)


def build_page(doc: dict[str, Any], headline_figure: str | None, figures: list[str], config_yaml: str) -> str:
    """The HTML of report.html; image paths are relative to the run folder (inlined by the caller)."""
    records, primary = doc["records"], doc["primary_metric"]
    availability = doc.get("availability") or {}
    split = doc.get("split", "test")
    cv = doc.get("cross_validation")
    head = story.headline(doc)
    flag_lines, notes = story.flags(records, doc.get("skipped_scenarios"))
    title = f"robustmm study: {doc.get('study', '')}"
    ci = story.ci_label(doc) or "percentile bootstrap over subjects, paired across methods"
    parts = [HEAD.format(title=e(title), style=STYLE)]
    if doc.get("synthetic"):
        parts.append(f"<div class='banner'>{e(SYNTHETIC_BANNER)}</div>")
    parts.append(f"<h1>{e(title)}</h1>")
    parts.append(f"<p class='sub'>Primary metric <b>{e(primary)}</b> on the {e(split)} split"
                 + (f" ({cv.get('folds')}-fold cross-validation, mean over folds)" if cv else "")
                 + f"{e(_runs_text(doc))}; brackets: {story.ci_level(doc)} CI ({e(ci)}).</p>")
    parts.append(f"<p class='headline' id='headline'>{e(head.text)}</p>")
    if headline_figure:
        caption_parts = (["shaded: subjects who have no such scan in the data (natural missingness)"] if head.modality
                         else []) + (["dashed: chance level"] if primary.lower() in story.CHANCE else [])
        caption = "; ".join(caption_parts)
        parts.append(f"<figure><img id='headline-figure' src='{e(headline_figure)}' "
                     f"alt='{e(_figure_alt(doc, headline_figure, head.modality))}'>"
                     + (f"<figcaption>{caption[:1].upper()}{caption[1:]}.</figcaption>" if caption else "")
                     + "</figure>")
    comparison = comparison_section(doc, head, availability, notes, ci)
    if comparison:
        parts.append(f"<h2>Method comparison</h2>{comparison}")
    if flag_lines:
        parts.append("<div class='flags'><b>Check before citing</b><ul>"
                     + "".join(f"<li>{e(x)}</li>" for x in flag_lines) + "</ul></div>")
    if figures:
        parts.append("<h2>Plots</h2>" + "".join(f"<img src='{e(p)}' alt='{e(_figure_alt(doc, p))}'>"
                                                for p in figures))
    stored = [(t, body) for t, body in doc.get("sections") or [] if not _DERIVED_TITLES.fullmatch(str(t))]
    for section_title, body in stored:
        parts.append(f"<h2>{e(section_title)}</h2>{_tidy_tables(str(body))}")
    for section_title, body in run_sections(doc):
        parts.append(f"<h2>{e(section_title)}</h2>{body}")
    metrics = [primary] + [m for m in dict.fromkeys(r["metric"] for r in records) if m != primary]
    parts.append("<h2>Detailed results</h2><p class='note'>One table per metric: every scenario, the fraction of "
                 "evaluated subjects without each modality (total, and the natural part), the number of subjects "
                 f"<i>n</i>, and each method's value [CI]. {BEST_MARK} marks the best value of a row, ⚠ a result to "
                 "check (hover over it or tap it for the reason).</p>")
    bounds = frozenset(doc.get("upper_bounds") or ())
    for i, metric in enumerate(metrics):
        parts.append(f"<details{' open' if i == 0 else ''}><summary>{e(metric)}</summary>"
                     f"{scenario_table(records, metric, availability, notes, bounds)}</details>")
    parts.append("<h2>Glossary</h2><dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>"
                                                   for k, v in story.glossary(metrics)) + "</dl>")
    which = ("<p class='note'>Splits and counts below are those of fold 0; every fold has its own test "
             "subjects.</p>" if cv else "") + ("<p class='note'>Splits and counts below are those of the first seed.</p>"
                                               if doc.get("seeds") else "")
    parts.append(f"<h2>Data</h2>{which}{data_section(doc.get('data') or {})}")
    method_notes = doc.get("methods") or {}
    if method_notes:
        parts.append("<h2>Methods</h2>" + "".join(f"<details><summary>{e(k)}</summary>{_generic(v)}</details>"
                                                  for k, v in method_notes.items()))
    parts.append("<h2>Configuration</h2><details><summary>resolved study (with seed, versions, device)</summary>"
                 f"<pre>{e(config_yaml)}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(path: Path, doc: dict[str, Any], headline_figure: str | None, figures: list[str],
                 config_yaml: str) -> None:
    """Write report.html; figures deleted from the folder since an earlier report.html was written
    are kept from that report."""
    from robustmm.io import write_text_atomic

    path = Path(path)
    stored = inlined_images(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else {}
    page = build_page(doc, headline_figure, figures, config_yaml)
    write_text_atomic(path, inline_images(page, path.parent, stored))
