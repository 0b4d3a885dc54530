"""Synthetic TCGA-style survival cohorts in the two real on-disk formats of :mod:`robustmm.data.tcga`.

Planted signal (both writers): every patient has a latent risk built from independent
N(0, 1) parts. Survival time is exponential with hazard ``exp(beta * risk)`` (times in months),
censoring is uniform, so a model that recovers the risk reaches a high C-index.

* DisPro layout (:func:`write_synthetic_dispro`): ``risk = (z_shared + z_omics + z_wsi) / sqrt(3)``.
  The first two pathways (``PW_SIGNAL_*``) carry ``z_shared + z_omics`` (gene = ±s + noise);
  about 30 % of a patient's patches carry ``z_shared + z_wsi`` along one fixed feature
  direction. Each modality therefore sees part of the risk, and ``z_shared`` is the part a
  model can infer for a missing modality from the present one. The true components are
  written to ``truth.csv`` (not part of the format; for tests and benchmarks).
* PORPOISE table (:func:`write_synthetic_porpoise`): the first 5 ``_rnaseq`` genes, the first
  3 ``_cnv`` columns and the first 2 ``_mut`` columns depend on the risk; the rest is noise.

Mechanism knobs (``data.synthetic`` keys; defaults reproduce the cohorts written before the
knobs existed):

* PORPOISE (``data.kind: tcga_porpoise``): ``signal: {rnaseq, cnv, mut}`` (default 1 each) scales
  how strongly each omics group's signal columns follow its latent (0 = the group is pure
  noise); ``shared`` (0..1, default 1) is the fraction of each group's latent variance that is
  common to all groups: group k sees ``r_k = sqrt(shared) s + sqrt(1 - shared) g_k`` and the
  risk is ``sqrt(shared) s + sqrt(1 - shared) (g_rnaseq + g_cnv + g_mut) / sqrt(3)`` (unit
  variance). With ``shared = 1`` every group sees the same risk (one group can stand in for a
  missing one); with ``shared = 0`` each carries its own third and a missing group's part is lost.
  Age follows the risk (3 years per sd), as before.
* DisPro (``data.kind: dispro``): ``risk_weights: {shared, omics, wsi}`` (default 1 each): risk =
  (w_s z_shared + w_o z_omics + w_w z_wsi) / sqrt(w_s^2 + w_o^2 + w_w^2). Omics always carry
  ``z_shared + z_omics`` and WSI ``z_shared + z_wsi``; the weights set how much of the risk is
  shared and how much only one modality holds.

Oracle ceilings (``oracle_ceilings_porpoise`` / ``oracle_ceilings_dispro``, written into
``SYNTHETIC_DATA.json`` under ``oracle``): C-index of the least-squares prediction of the planted
risk from each modality subset's planted read-outs (PORPOISE: the signal columns of each group,
age for clinical; DisPro: the latent sums each modality carries, without measurement noise),
fitted on 20 000 simulated patients and scored on 20 000 others with simulated times and
censoring.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from robustmm.data.base import write_synthetic_marker
from robustmm.io import write_atomic


def _survival(rng: np.random.Generator, risk: np.ndarray, beta: float = 1.2,
              median_months: float = 30.0, max_follow_up: float = 120.0,
              rounded: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Exponential event times with hazard ∝ exp(beta·risk), uniform censoring. Status 1 = death.
    ``rounded=False`` keeps exact times (no ties; used by the oracle ceilings)."""
    rate = np.log(2) / median_months * np.exp(beta * risk)
    event_time = rng.exponential(1.0 / rate)
    censor_time = rng.uniform(6.0, max_follow_up, size=len(risk))
    time = np.minimum(event_time, censor_time)
    status = (event_time <= censor_time).astype(int)
    return (np.maximum(np.round(time, 2), 0.1) if rounded else time), status


def _assign_folds(rng: np.random.Generator, status: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold per patient, stratified by status so every fold has deaths."""
    order = np.lexsort((rng.random(len(status)), status))
    folds = np.empty(len(status), dtype=int)
    folds[order] = np.arange(len(status)) % n_folds
    return folds


def write_synthetic_dispro(
    root: str | Path,
    n_patients: int = 60,
    n_folds: int = 5,
    seed: int = 0,
    wsi_feat_dim: int = 32,
    patches: tuple[int, int] = (20, 60),
    n_pathways: int = 8,
    genes_per_pathway: tuple[int, int] = (3, 12),
    wsi_missing: float = 0.0,
    omics_missing: float = 0.0,
    *,
    risk_weights: dict[str, float] | None = None,
    oracle: bool = True,
) -> Path:
    """Write a synthetic cohort in the DisPro layout under ``root`` and return ``root``.

    Files: ``splits.csv`` (Study, ID, Event, Status, WSI, Omics, Fold 0..K-1), ``signatures.csv``,
    ``omics/<ID>.csv`` (Gene, Value; rows shuffled, plus unrelated genes), ``wsi/<ID>-DX<k>.pt``
    (1–2 slides per patient, ``patches`` patches in total), ``truth.csv``, ``README.md`` and the
    synthetic-data marker. ``wsi_missing`` / ``omics_missing`` are fractions of patients whose
    WSI / omics cell is left empty (never both for one patient). Signatures also list two genes
    that no omics file measures, as real signatures do.
    """
    if not 0 <= wsi_missing <= 1 or not 0 <= omics_missing <= 1 or wsi_missing + omics_missing > 1:
        raise ValueError("wsi_missing and omics_missing must be in [0, 1] with a sum <= 1 (no patient misses both)")
    if n_folds < 2 or n_patients < 2 * n_folds:
        raise ValueError(f"need n_folds >= 2 and at least 2 patients per fold (n_patients={n_patients})")
    if wsi_feat_dim < 1 or n_pathways < 1:  # a bag of 0 features would train on nothing, silently
        raise ValueError(f"wsi_feat_dim and n_pathways must be >= 1 (got {wsi_feat_dim}, {n_pathways})")
    for what, (low, high) in (("patches", patches), ("genes_per_pathway", genes_per_pathway)):
        if not 1 <= low <= high:
            raise ValueError(f"{what} must be (min, max) with 1 <= min <= max, got ({low}, {high})")
    root = Path(root)
    (root / "omics").mkdir(parents=True, exist_ok=True)
    (root / "wsi").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    weights_risk = _dispro_weights(risk_weights)
    z_shared, z_omics, z_wsi = rng.normal(size=(3, n_patients))
    risk = _dispro_risk(z_shared, z_omics, z_wsi, weights_risk)
    time, status = _survival(rng, risk)
    folds = _assign_folds(rng, status, n_folds)
    ids = [f"SYN-{i:04d}" for i in range(n_patients)]

    # pathways: disjoint gene sets; the first two carry the omics-visible signal
    n_signal = min(2, n_pathways)
    pathway_names = [f"PW_SIGNAL_{p}" if p < n_signal else f"PW_NOISE_{p}" for p in range(n_pathways)]
    sizes = rng.integers(genes_per_pathway[0], genes_per_pathway[1] + 1, size=n_pathways)
    genes, gene_id = [], 0
    for size in sizes:
        genes.append([f"GENE{gene_id + j:04d}" for j in range(size)])
        gene_id += size
    extra_genes = [f"OTHER{j:03d}" for j in range(10)]
    unmeasured = ["UNMEASURED1", "UNMEASURED2"]
    signature_cols = {name: list(g) for name, g in zip(pathway_names, genes)}
    signature_cols[pathway_names[-1]] = signature_cols[pathway_names[-1]] + unmeasured
    longest = max(len(g) for g in signature_cols.values())
    pd.DataFrame({k: v + [None] * (longest - len(v)) for k, v in signature_cols.items()}).to_csv(
        root / "signatures.csv", index=False)
    weights = [rng.choice([-1.0, 1.0], size=len(g)) for g in genes]

    # natural missingness (disjoint)
    order = rng.permutation(n_patients)
    n_wsi_missing = int(round(wsi_missing * n_patients))
    n_omics_missing = int(round(omics_missing * n_patients))
    no_wsi = set(order[:n_wsi_missing].tolist())
    no_omics = set(order[n_wsi_missing:n_wsi_missing + n_omics_missing].tolist())

    direction = rng.normal(size=wsi_feat_dim)
    direction /= np.linalg.norm(direction)
    rows = []
    for i, pid in enumerate(ids):
        omics_cell = ""
        if i not in no_omics:
            s_omics = z_shared[i] + z_omics[i]
            names, values = [], []
            for p, g in enumerate(genes):
                signal = s_omics * weights[p] if p < n_signal else 0.0
                names += g
                values += list(signal + rng.normal(scale=0.5 if p < n_signal else 1.0, size=len(g)))
            names += extra_genes
            values += list(rng.normal(size=len(extra_genes)))
            perm = rng.permutation(len(names))
            pd.DataFrame({"Gene": np.asarray(names)[perm], "Value": np.round(np.asarray(values)[perm], 5)}).to_csv(
                root / "omics" / f"{pid}.csv", index=False)
            omics_cell = f"{pid}.csv"
        wsi_cell = ""
        if i not in no_wsi:
            s_wsi = z_shared[i] + z_wsi[i]
            n = int(rng.integers(patches[0], patches[1] + 1))
            tumour = rng.random(n) < 0.3
            feats = rng.normal(size=(n, wsi_feat_dim)) + np.outer(1.5 * s_wsi * tumour + 0.3 * s_wsi, direction)
            n_slides = 2 if (n >= 2 and rng.random() < 0.4) else 1
            cut = [0, int(rng.integers(1, n)), n] if n_slides == 2 else [0, n]
            names = []
            for k in range(n_slides):
                name = f"{pid}-DX{k + 1}.pt"
                torch.save(torch.tensor(feats[cut[k]:cut[k + 1]], dtype=torch.float32), root / "wsi" / name)
                names.append(name)
            wsi_cell = ";".join(names)
        row = {"Study": "TCGA-SYNTH", "ID": pid, "Event": float(time[i]), "Status": int(status[i]),
               "WSI": wsi_cell, "Omics": omics_cell}
        for k in range(n_folds):
            row[f"Fold {k}"] = "val" if folds[i] == k else "train"
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "splits.csv", index=False)
    pd.DataFrame({"ID": ids, "risk": risk, "z_shared": z_shared, "z_omics": z_omics, "z_wsi": z_wsi,
                  "fold": folds}).to_csv(root / "truth.csv", index=False)
    (root / "README.md").write_text(
        "# SYNTHETIC DATA — DisPro layout\n\n"
        f"Written by robustmm.data.synth.tcga.write_synthetic_dispro (seed={seed}). Not real patients.\n\n"
        "- `splits.csv`: ID, Event (months), Status (1 = death), WSI (';'-separated slide files, empty = "
        "missing), Omics (file, empty = missing), Fold k (train/val).\n"
        "- `signatures.csv`: one column per pathway; `PW_SIGNAL_*` pathways carry the omics part of the risk.\n"
        "- `omics/<ID>.csv`: Gene, Value. `wsi/*.pt`: float32 tensors (patches x features); ~30 % of the\n"
        "  patches carry the WSI part of the risk along one direction.\n"
        f"- risk = (w_s·z_shared + w_o·z_omics + w_w·z_wsi)/sqrt(w_s²+w_o²+w_w²) with weights {weights_risk};\n"
        "  hazard ∝ exp(1.2·risk); uniform censoring. `truth.csv` holds the latent parts (not an input).\n")
    extra = {"oracle": oracle_ceilings_dispro(seed, risk_weights=weights_risk)} if oracle else {}
    write_synthetic_marker(root, "robustmm.data.synth.tcga.write_synthetic_dispro", seed=seed,
                           n_patients=n_patients, n_folds=n_folds, wsi_missing=wsi_missing,
                           omics_missing=omics_missing, risk_weights=weights_risk, **extra)
    return root


DISPRO_WEIGHTS = {"shared": 1.0, "omics": 1.0, "wsi": 1.0}


def _part_weights(given: dict[str, float] | None, defaults: dict[str, float], knob: str, what: str) -> dict[str, float]:
    """``defaults`` updated with ``given`` (a knob's non-negative weight per part, by name)."""
    out = dict(defaults)
    for key, value in (given or {}).items():
        if key not in out:
            raise ValueError(f"{knob}: unknown {what} {key!r} (use {list(out)})")
        if value < 0:
            raise ValueError(f"{knob}.{key} must be >= 0, got {value}")
        out[key] = float(value)
    return out


def _dispro_weights(given: dict[str, float] | None) -> dict[str, float]:
    out = _part_weights(given, DISPRO_WEIGHTS, "risk_weights", "part")
    if sum(out.values()) == 0:
        raise ValueError("risk_weights: at least one weight must be > 0")
    return out


def _dispro_risk(z_shared, z_omics, z_wsi, w: dict[str, float]) -> np.ndarray:
    if w == DISPRO_WEIGHTS:
        return (z_shared + z_omics + z_wsi) / np.sqrt(3)  # the original expression, bit for bit
    norm = np.sqrt(w["shared"] ** 2 + w["omics"] ** 2 + w["wsi"] ** 2)
    return (w["shared"] * z_shared + w["omics"] * z_omics + w["wsi"] * z_wsi) / norm


def write_synthetic_porpoise(path: str | Path, n_patients: int = 80, seed: int = 0, *, n_rnaseq: int = 40,
                             n_cnv: int = 12, n_mut: int = 10, age_missing: float = 0.0,
                             signal: dict[str, float] | None = None, shared: float = 1.0,
                             oracle: bool = True) -> Path:
    """Write a PORPOISE-format zipped CSV (one row per slide, 1–2 slides per patient).

    Like the published files, the zip holds one member named ``./<name>`` (ending in
    ``.csv.zip``) that is plain CSV text. ``age_missing`` leaves that fraction of ages empty
    (as in TCGA-LUAD). The synthetic marker goes next to the file.
    """
    if n_patients < 1 or n_rnaseq < len(RNA_WEIGHTS) or n_cnv < 3 or n_mut < 2:  # the signal columns
        raise ValueError(f"need n_patients >= 1, n_rnaseq >= {len(RNA_WEIGHTS)}, n_cnv >= 3 and n_mut >= 2 (got "
                         f"{n_patients}, {n_rnaseq}, {n_cnv}, {n_mut})")
    if not 0.0 <= age_missing <= 1.0:
        raise ValueError(f"age_missing must be in [0, 1], got {age_missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    signal = _porpoise_signal(signal)
    if not 0.0 <= shared <= 1.0:
        raise ValueError(f"shared must be in [0, 1], got {shared}")
    rng = np.random.default_rng(seed)
    base = rng.normal(size=n_patients)
    # group-specific parts come from their own stream, so shared = 1 reproduces the original cohort
    risk, seen = _porpoise_latents(base, np.random.default_rng([seed, 1]), shared)
    time, status = _survival(rng, risk)
    ids = [f"TCGA-SY-{i:04d}" for i in range(n_patients)]
    age = np.round(rng.normal(65, 10, n_patients) + 3 * risk).astype(float)
    age[rng.random(n_patients) < age_missing] = np.nan
    rna = rng.normal(size=(n_patients, n_rnaseq))
    rna[:, :5] += np.outer(_scaled(signal["rnaseq"], seen["rnaseq"]), RNA_WEIGHTS)
    cnv = np.clip(np.round(rng.normal(size=(n_patients, n_cnv)) * 0.8), -2, 2)
    cnv[:, :3] = np.clip(np.round(cnv[:, :3] + _scaled(signal["cnv"], seen["cnv"])[:, None]), -2, 2)
    mut = (rng.random((n_patients, n_mut)) < 0.1).astype(int)
    mut[:, :2] = (rng.random((n_patients, 2)) < 1 / (1 + np.exp(-(_scaled(signal["mut"], seen["mut"])[:, None] - 1)))
                  ).astype(int)
    rows = []
    for i, pid in enumerate(ids):
        for k in range(1 if rng.random() < 0.7 else 2):
            row = {"case_id": pid, "slide_id": f"{pid}-01Z-00-DX{k + 1}.svs", "age": age[i],
                   "site": ["SY", "ZZ", "QQ"][i % 3], "survival_months": time[i],
                   "censorship": 1 - int(status[i]), "is_female": int(rng.random() < 0.3),
                   "oncotree_code": "SYN" if i % 4 else "SYNB", "train": int(rng.random() < 0.8)}
            row.update({f"G{j:03d}_rnaseq": round(float(rna[i, j]), 5) for j in range(n_rnaseq)})
            row.update({f"G{j:03d}_cnv": int(cnv[i, j]) for j in range(n_cnv)})
            row.update({f"G{j:03d}_mut": int(mut[i, j]) for j in range(n_mut)})
            rows.append(row)
    # per-slide rows share the patient's clinical values; is_female drawn per slide must not differ
    frame = pd.DataFrame(rows)
    frame["is_female"] = frame.groupby("case_id")["is_female"].transform("first")
    frame["train"] = frame.groupby("case_id")["train"].transform("first")
    text = io.StringIO()
    frame.to_csv(text)  # keeps the unnamed index column, like the published files
    inner = "./" + (path.name if path.name.endswith(".csv.zip") else path.name + ".csv.zip")

    def write_zip(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(inner, text.getvalue())

    write_atomic(path, write_zip)
    extra = ({"oracle": oracle_ceilings_porpoise(seed, signal=signal, shared=shared, age_missing=age_missing)}
             if oracle else {})
    write_synthetic_marker(path.parent, "robustmm.data.synth.tcga.write_synthetic_porpoise", seed=seed,
                           n_patients=n_patients, file=path.name, n_rnaseq=n_rnaseq, n_cnv=n_cnv, n_mut=n_mut,
                           age_missing=age_missing, signal=signal, shared=float(shared), **extra)
    return path


RNA_WEIGHTS = [1.0, -1.0, 0.8, -0.8, 0.6]
OMICS_GROUPS = ("rnaseq", "cnv", "mut")


def _porpoise_signal(given: dict[str, float] | None) -> dict[str, float]:
    return _part_weights(given, {g: 1.0 for g in OMICS_GROUPS}, "signal", "omics group")


def _scaled(factor: float, x: np.ndarray) -> np.ndarray:
    return x if factor == 1.0 else factor * x


def _porpoise_latents(base: np.ndarray, rng: np.random.Generator, shared: float
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(risk, latent each omics group sees); see the module docstring."""
    if shared == 1.0:
        return base, {g: base for g in OMICS_GROUPS}
    own = rng.normal(size=(len(OMICS_GROUPS), len(base)))
    a, b = np.sqrt(shared), np.sqrt(1.0 - shared)
    risk = a * base + b * own.sum(0) / np.sqrt(len(OMICS_GROUPS))
    return risk, {g: a * base + b * own[k] for k, g in enumerate(OMICS_GROUPS)}


def _oracle_survival(fit_x: dict, fit_risk, score_x: dict, score_risk, subsets, rng) -> dict[str, float]:
    from robustmm.data.synth.oracle import concordance_of, least_squares_scores, subset_name

    time, status = _survival(rng, score_risk, rounded=False)
    out = {}
    for parts in subsets:
        pred = least_squares_scores(np.column_stack([fit_x[p] for p in parts]), fit_risk,
                                    np.column_stack([score_x[p] for p in parts]))
        out[subset_name(parts)] = concordance_of(time, status, pred)
    return out


def simulate_porpoise(n: int, rng: np.random.Generator, *, signal: dict[str, float] | None = None,
                      shared: float = 1.0, age_missing: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(risk, read-outs) of ``n`` fresh patients: the signal columns of each omics group and age
    (mean-filled where missing, plus a missing flag when ``age_missing`` > 0) for clinical."""
    signal = _porpoise_signal(signal)
    risk, seen = _porpoise_latents(rng.normal(size=n), rng, shared)
    age = rng.normal(65, 10, n) + 3 * risk
    missing = rng.random(n) < age_missing
    clinical = np.column_stack([np.where(missing, 65.0, age), missing]) if age_missing > 0 else age[:, None]
    rna = rng.normal(size=(n, 5)) + np.outer(signal["rnaseq"] * seen["rnaseq"], RNA_WEIGHTS)
    cnv = np.clip(np.round(np.clip(np.round(rng.normal(size=(n, 3)) * 0.8), -2, 2)
                           + signal["cnv"] * seen["cnv"][:, None]), -2, 2)
    mut = (rng.random((n, 2)) < 1 / (1 + np.exp(-(signal["mut"] * seen["mut"][:, None] - 1)))).astype(float)
    return risk, {"clinical": clinical, "rnaseq": rna, "cnv": cnv, "mut": mut}


def oracle_ceilings_porpoise(seed: int = 0, n: int | None = None, **knobs) -> dict:
    from robustmm.data.synth.oracle import ORACLE_SUBJECTS, all_subsets, summary

    n = n or ORACLE_SUBJECTS
    fit_risk, fit_x = simulate_porpoise(n, np.random.default_rng([seed, 301]), **knobs)
    score_risk, score_x = simulate_porpoise(n, np.random.default_rng([seed, 302]), **knobs)
    subsets = all_subsets(["clinical", *OMICS_GROUPS])
    ceilings = _oracle_survival(fit_x, fit_risk, score_x, score_risk, subsets, np.random.default_rng([seed, 303]))
    ceilings["planted_risk"] = _oracle_survival({"r": score_risk[:, None]}, score_risk, {"r": score_risk[:, None]},
                                                score_risk, [("r",)], np.random.default_rng([seed, 303]))["r"]
    return summary("c_index", "least squares onto the planted risk from each subset's signal columns", ceilings, n,
                   seed, "planted_risk = the C-index of the true risk itself (the ceiling of every subset); "
                   "subsets without a group lose that group's own part of the risk when shared < 1.",
                   knobs={"signal": _porpoise_signal(knobs.get("signal")), "shared": float(knobs.get("shared", 1.0))})


def oracle_ceilings_dispro(seed: int = 0, n: int | None = None, risk_weights: dict[str, float] | None = None) -> dict:
    from robustmm.data.synth.oracle import ORACLE_SUBJECTS, summary

    n = n or ORACLE_SUBJECTS
    w = _dispro_weights(risk_weights)

    def draw(stream: int):
        zs, zo, zw = np.random.default_rng([seed, stream]).normal(size=(3, n))
        return _dispro_risk(zs, zo, zw, w), {"omics": (zs + zo)[:, None], "wsi": (zs + zw)[:, None]}

    fit_risk, fit_x = draw(311)
    score_risk, score_x = draw(312)
    ceilings = _oracle_survival(fit_x, fit_risk, score_x, score_risk, [("wsi",), ("omics",), ("wsi", "omics")],
                                np.random.default_rng([seed, 313]))
    return summary("c_index", "least squares onto the planted risk from each modality's latent sum", ceilings, n,
                   seed, "omics carries z_shared + z_omics, wsi carries z_shared + z_wsi (read without noise).",
                   knobs={"risk_weights": w})
