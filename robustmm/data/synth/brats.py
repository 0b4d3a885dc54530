"""Synthetic BraTS-format cases with planted, sequence-specific tumour contrast.

Each case is a folder of four co-registered NIfTI sequences plus an integer segmentation, in
either BraTS naming convention, so :class:`robustmm.data.brats.BraTSDataset` reads it exactly
as it reads real data. The contrast is planted so that modality-robustness studies have a
known answer: FLAIR (then T2) shows oedema, T1ce shows the enhancing rim and dark necrosis,
T1 barely shows the tumour.

Mechanism knob (``data.synthetic`` key of ``data.kind: brats``):

* ``visible_in`` (default: the table below unchanged): which sequences show each tumour region,
  e.g. ``{oedema: [flair], enhancing: [t1ce], necrosis: [t1ce]}``. In every sequence not listed
  for a region, that region gets the intensity of normal parenchyma in that sequence (the mean
  of white and grey matter), so only the listed sequences carry the region's signal. Regions
  not named keep the default contrast.

Oracle (``oracle_intensity_dice``, written into ``SYNTHETIC_DATA.json`` under ``oracle``): Dice of
a voxel-wise linear discriminant on the intensities of each sequence subset (planted contrast,
texture, bias field and noise simulated for 20 000 voxels, fitted on one sample and scored on
another), for whole tumour, tumour core and enhancing tumour. It uses intensity only, so it is
a reference for how much each subset's *contrast* separates the regions, not an upper bound: a
network also uses shape and position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter

from robustmm.data.base import write_synthetic_marker
from robustmm.data.brats import ENHANCING_LABEL, NAMING, SEQUENCES

# relative intensity of each tissue per sequence (before bias field, gain and noise)
TISSUE_CONTRAST: dict[str, dict[str, float]] = {
    #            flair  t1ce   t1    t2
    "wm":        {"flair": 0.90, "t1ce": 1.10, "t1": 1.10, "t2": 0.80},
    "gm":        {"flair": 1.10, "t1ce": 0.90, "t1": 0.90, "t2": 1.00},
    "csf":       {"flair": 0.30, "t1ce": 0.35, "t1": 0.35, "t2": 1.80},
    "oedema":    {"flair": 1.90, "t1ce": 0.95, "t1": 0.97, "t2": 1.55},
    "enhancing": {"flair": 1.50, "t1ce": 2.10, "t1": 0.97, "t2": 1.30},
    "necrosis":  {"flair": 1.30, "t1ce": 0.40, "t1": 0.90, "t2": 1.85},
}
NOISE_SD = 0.08
TEXTURE_SD = 0.05
BIAS_AMPLITUDE = 0.2

_README = """# Synthetic BraTS cases (robustmm)

SYNTHETIC DATA written by `robustmm.data.synth.brats.write_synthetic_brats`; not patient data.

- {n_cases} cases, shape {shape}, 1 mm isotropic, BraTS {naming} naming
  (`{example}`), seed {seed}. All sequences and the segmentation share one affine.
- Labels: 0 background, 1 necrosis, 2 oedema, {et} enhancing tumour.
- Anatomy: a skull-stripped ellipsoidal "brain" (zero outside) with white/grey matter
  texture (smoothed noise, two tissue classes) and two small CSF-filled ventricles.
- Tumour: one irregular lesion per case at a random position and size inside the brain:
  a necrotic core, an enhancing rim around it, and oedema around the rim.
- Planted contrast (relative intensities, before bias field / noise):

| tissue | FLAIR | T1ce | T1 | T2 |
|---|---|---|---|---|
{table}

  So: oedema is brightest in FLAIR, bright in T2 (but CSF is bright in T2 and dark in FLAIR);
  the enhancing rim is bright and the necrosis dark in T1ce; T1 shows the tumour barely.
- Nuisance: a smooth multiplicative bias field per sequence (about ±{bias:.0%}), tissue
  texture (sd {texture}), Gaussian noise (sd {noise}) inside the brain, and a random gain per
  sequence; volumes are stored as int16.
"""


def _case_id(index: int, naming: str) -> str:
    return f"SynthBraTS_{index:03d}" if naming == "2018" else f"BraTS-SYN-{index:05d}-000"


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Unit-variance spatially smooth Gaussian noise."""
    field = gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="reflect")
    return field / (field.std() + 1e-8)


def _bias_field(rng: np.random.Generator, grid: np.ndarray) -> np.ndarray:
    """exp of a random quadratic polynomial in normalised coordinates: smooth, ±~BIAS_AMPLITUDE."""
    x, y, z = grid
    terms = [x, y, z, x * y, y * z, x * z, x * x, y * y, z * z]
    coef = rng.uniform(-1.0, 1.0, size=len(terms))
    poly = sum(c * t for c, t in zip(coef, terms))
    poly = poly / (np.abs(poly).max() + 1e-8)
    return np.exp(BIAS_AMPLITUDE * poly)


def contrast_table(visible_in: dict[str, list[str]] | None = None) -> dict[str, dict[str, float]]:
    """:data:`TISSUE_CONTRAST` with each tumour region hidden (set to normal-parenchyma intensity)
    in the sequences ``visible_in`` does not list for it."""
    table = {tissue: dict(c) for tissue, c in TISSUE_CONTRAST.items()}
    for region, sequences in (visible_in or {}).items():
        if region not in TUMOUR_TISSUES:
            raise ValueError(f"visible_in: unknown region {region!r} (use {list(TUMOUR_TISSUES)})")
        unknown = set(sequences) - set(SEQUENCES)
        if unknown:
            raise ValueError(f"visible_in.{region}: unknown sequences {sorted(unknown)} (use {list(SEQUENCES)})")
        for seq in SEQUENCES:
            if seq not in sequences:
                table[region][seq] = (TISSUE_CONTRAST["wm"][seq] + TISSUE_CONTRAST["gm"][seq]) / 2
    return table


TUMOUR_TISSUES = ("oedema", "enhancing", "necrosis")


def _make_case(rng: np.random.Generator, shape: tuple[int, int, int],
               contrast: dict[str, dict[str, float]] | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Float sequences (zero outside the brain) and the label map (1 necrosis, 2 oedema, 3 enh.)."""
    n = np.asarray(shape, dtype=float)
    idx = np.indices(shape, dtype=float)
    grid = (idx - (n[:, None, None, None] - 1) / 2) / (n[:, None, None, None] / 2)  # in [-1, 1]

    # brain: ellipsoid with a slightly wobbly surface
    centre = rng.uniform(-0.04, 0.04, size=3)
    axes = np.array([0.84, 0.78, 0.74]) * rng.uniform(0.95, 1.05, size=3)
    rel = (grid - centre[:, None, None, None]) / axes[:, None, None, None]
    brain_r = np.sqrt((rel**2).sum(0)) + 0.04 * _smooth_noise(rng, shape, sigma=max(n) / 8)
    brain = brain_r < 1.0

    # tissue classes: white matter where a smooth field is high, ventricles near the centre
    codes = {name: k for k, name in enumerate(TISSUE_CONTRAST)}
    tissue = np.where(_smooth_noise(rng, shape, sigma=max(n) / 24) > 0.0, codes["wm"], codes["gm"])
    for side in (-1.0, 1.0):
        v_centre = centre + np.array([side * 0.12, 0.05, 0.0])
        v_axes = np.array([0.07, 0.22, 0.12])
        v_rel = (grid - v_centre[:, None, None, None]) / v_axes[:, None, None, None]
        tissue[(v_rel**2).sum(0) < 1.0] = codes["csf"]

    # tumour: irregular nested shells around a random centre well inside the brain
    t_centre = centre + rng.uniform(-0.3, 0.3, size=3) * axes
    t_radius = rng.uniform(0.30, 0.50)  # whole-tumour radius in normalised units
    t_axes = t_radius * rng.uniform(0.8, 1.2, size=3)
    t_rel = (grid - t_centre[:, None, None, None]) / t_axes[:, None, None, None]
    t_r = np.sqrt((t_rel**2).sum(0)) + 0.08 * _smooth_noise(rng, shape, sigma=max(n) / 12)
    necro_r = rng.uniform(0.30, 0.42)
    enh_r = necro_r + rng.uniform(0.18, 0.28)
    label = np.zeros(shape, dtype=np.uint8)
    label[t_r < 1.0] = 2
    label[t_r < enh_r] = 3
    label[t_r < necro_r] = 1
    label[~brain] = 0
    tissue[label == 2] = codes["oedema"]
    tissue[label == 3] = codes["enhancing"]
    tissue[label == 1] = codes["necrosis"]

    texture = _smooth_noise(rng, shape, sigma=1.0)
    images: dict[str, np.ndarray] = {}
    for seq in SEQUENCES:
        base = np.zeros(shape)
        for name, tissue_contrast in (contrast or TISSUE_CONTRAST).items():
            base[tissue == codes[name]] = tissue_contrast[seq]
        img = base * (1.0 + TEXTURE_SD * texture) * _bias_field(rng, grid)
        img = img + NOISE_SD * rng.standard_normal(shape)
        gain = rng.uniform(300.0, 600.0)
        # keep the brain strictly positive: foreground crop and non-zero normalisation rely on it
        img = np.where(brain, np.clip(img * gain, 1.0, None), 0.0)
        images[seq] = img
    return images, label


def write_synthetic_brats(
    out_dir: str | Path,
    n_cases: int,
    shape: Sequence[int] = (48, 48, 48),
    seed: int = 0,
    naming: Literal["2018", "2023"] = "2018",
    *,
    visible_in: dict[str, list[str]] | None = None,
    oracle: bool = True,
) -> Path:
    """Write ``n_cases`` BraTS-format case folders under ``out_dir``; returns ``out_dir``.

    Deterministic given ``seed``: case ``i`` depends only on (seed, i), not on ``n_cases``.
    Labels follow the naming's convention (enhancing = 4 for "2018", 3 for "2023").
    """
    if naming not in NAMING:
        raise ValueError(f"naming must be '2018' or '2023', got {naming!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be three sizes >= 8, got {shape}")
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    contrast = contrast_table(visible_in)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    et = ENHANCING_LABEL[naming]
    # BraTS files store an LPS-like grid (x and y flipped); reproduce it so reorientation is exercised
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    affine[:3, 3] = [0.0, shape[1] - 1.0, 0.0]
    for i in range(n_cases):
        rng = np.random.default_rng([seed, i])
        images, label = _make_case(rng, shape, contrast)
        label[label == 3] = et
        case_id = _case_id(i, naming)
        folder = out / case_id
        folder.mkdir(exist_ok=True)
        for seq in SEQUENCES:
            data = np.rint(images[seq]).astype(np.int16)
            nib.save(nib.Nifti1Image(data, affine), str(folder / f"{case_id}{NAMING[naming][seq]}.nii.gz"))
        nib.save(nib.Nifti1Image(label, affine), str(folder / f"{case_id}{NAMING[naming]['seg']}.nii.gz"))

    table = "\n".join(
        f"| {name} | " + " | ".join(f"{c[s]:.2f}" for s in SEQUENCES) + " |" for name, c in contrast.items()
    )
    example = f"{_case_id(0, naming)}/{_case_id(0, naming)}{NAMING[naming]['flair']}.nii.gz"
    (out / "README.md").write_text(
        _README.format(
            n_cases=n_cases, shape=shape, naming=naming, example=example, seed=seed, et=et, table=table,
            bias=BIAS_AMPLITUDE, texture=TEXTURE_SD, noise=NOISE_SD,
        )
    )
    extra = {"oracle": oracle_intensity_dice(seed, visible_in=visible_in)} if oracle else {}
    write_synthetic_marker(
        out, "brats", n_cases=n_cases, shape=list(shape), seed=seed, naming=naming,
        planted=("oedema bright in FLAIR>T2; enhancing rim bright / necrosis dark in T1ce; T1 near-uninformative"
                 if not visible_in else f"tumour regions visible only in: {visible_in}"),
        visible_in={k: list(v) for k, v in (visible_in or {}).items()}, **extra,
    )
    return out


#: share of brain voxels per tissue in the oracle's voxel sample (roughly a synthetic case)
ORACLE_TISSUE_SHARES = {"wm": 0.38, "gm": 0.38, "csf": 0.03, "oedema": 0.12, "enhancing": 0.05, "necrosis": 0.04}


def simulate_voxels(n: int, rng: np.random.Generator, visible_in: dict[str, list[str]] | None = None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(tissue code per voxel, z-scored intensity per sequence) for ``n`` brain voxels drawn
    with :data:`ORACLE_TISSUE_SHARES`; multiplicative texture (shared by the sequences), a bias
    factor per sequence (exp(0.2 u), u ~ U(-1, 1)) and additive noise as in the writer."""
    contrast = contrast_table(visible_in)
    names = list(ORACLE_TISSUE_SHARES)
    tissue = rng.choice(len(names), size=n, p=np.array(list(ORACLE_TISSUE_SHARES.values())))
    texture = rng.standard_normal(n)
    images = {}
    for seq in SEQUENCES:
        base = np.array([contrast[t][seq] for t in names])[tissue]
        img = base * (1.0 + TEXTURE_SD * texture) * np.exp(BIAS_AMPLITUDE * rng.uniform(-1, 1, n))
        img = img + NOISE_SD * rng.standard_normal(n)
        images[seq] = (img - img.mean()) / img.std()
    return tissue, images


def oracle_intensity_dice(seed: int = 0, n: int | None = None, visible_in: dict[str, list[str]] | None = None) -> dict:
    """Dice (WT, TC, ET) of a linear discriminant on each sequence subset's voxel intensities."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from robustmm.data.synth.oracle import ORACLE_SUBJECTS, all_subsets, subset_name

    n = n or ORACLE_SUBJECTS
    names = list(ORACLE_TISSUE_SHARES)
    regions = {"WT": [names.index(t) for t in TUMOUR_TISSUES],
               "TC": [names.index("enhancing"), names.index("necrosis")], "ET": [names.index("enhancing")]}
    fit_t, fit_x = simulate_voxels(n, np.random.default_rng([seed, 401]), visible_in)
    score_t, score_x = simulate_voxels(n, np.random.default_rng([seed, 402]), visible_in)
    ceilings: dict[str, dict[str, float]] = {}
    for parts in all_subsets(list(SEQUENCES)):
        model = LinearDiscriminantAnalysis().fit(np.column_stack([fit_x[p] for p in parts]), fit_t)
        pred = model.predict(np.column_stack([score_x[p] for p in parts]))
        dice = {}
        for region, codes in regions.items():
            p, t = np.isin(pred, codes), np.isin(score_t, codes)
            dice[region] = round(float(2 * (p & t).sum() / max(p.sum() + t.sum(), 1)), 4)
        ceilings[subset_name(parts)] = dice
    return {"metric": "dice (WT, TC, ET), voxel-wise intensity only", "model": "linear discriminant analysis",
            "voxels_fit": n, "voxels_scored": n, "seed": seed, "ceilings": ceilings,
            "tissue_shares": ORACLE_TISSUE_SHARES, "visible_in": {k: list(v) for k, v in (visible_in or {}).items()},
            "notes": "not an upper bound: intensity only, no spatial context; compares what each sequence "
                     "subset's contrast allows"}
