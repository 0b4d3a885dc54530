"""A synthetic MCI cohort written in the ADNI layout (ADNIMERGE-like table, manifest, NIfTI).

The planted signal (also written to the cohort's README.md):

* every subject has a latent severity ``z = 0.6 a + 0.8 u`` with
  ``u = sqrt(1 - rho) b + sqrt(rho) h(c)``, ``h(c) = (c^2 - 1) / sqrt(2)`` and a, b, c ~ N(0, 1)
  (``rho`` = the ``pet_from_mri`` knob; with ``rho = 0`` this is ``z = 0.6 a + 0.8 b``);
* conversion to dementia happens at ``T = 36 exp(-0.9 (z + 0.4 e - 0.25))`` months
  (e ~ N(0, 1)), so pMCI within 36 months iff ``z + 0.4 e > 0.25`` (about 40 % of subjects;
  35 % with ``pet_from_mri = 1``, where z is skewed);
* MRI sees ``a`` (hippocampal atrophy, ventricle enlargement) and, when ``rho > 0``, ``c``
  (the contrast of a small periventricular region, either sign); each seen with extra noise of
  sd ``mri_noise``;
* PET sees ``z + pet_noise * N(0, 1)`` (parietal and posterior-cingulate hypometabolism):
  strong signal. Its part ``0.8 u`` is invisible to a linear read-out of MRI; a fraction
  ``rho`` of that part's variance is the nonlinear function ``h(c)`` of an MRI latent, which
  an ideal MRI->PET generator recovers and a linear classifier on MRI does not;
* clinical scores (MMSE, ADAS13, CDR-SB, APOE4, TAU/PTAU) are noisy functions of ``z`` (noise
  scaled by ``clinical_noise``): moderately informative;
* a fraction ``pet_missing`` of subjects (30 % by default) have no PET (missing completely at
  random); FDG (a PET summary) is NaN for them; TAU/PTAU are missing for about 35 % (CSF not
  collected);
* some subjects drop out before 36 months without converting (label unknown: excluded by the
  loader) and a few are cognitively normal at baseline (not MCI: excluded).

Mechanism knobs (``data.synthetic`` keys of ``data.kind: adni``; defaults reproduce version 2):

* ``pet_from_mri`` (rho, 0..1, default 0): fraction of the PET-only label signal that is a
  nonlinear function of MRI. 0: an ideal generated PET adds nothing over MRI; 1: PET is a noisy
  nonlinear function of MRI (``z = 0.6 a + 0.8 h(c)``), read poorly from MRI directly.
* ``mri_noise`` (default 0), ``pet_noise`` (default 0.3), ``clinical_noise`` (multiplier of the
  clinical scores' noise, default 1): the strength of each modality (more noise = weaker).
* ``pet_missing`` (default 0.3): natural PET-missing fraction.

The oracle ceilings (AUC of a logistic regression on the latents each subset carries, 20 000
simulated subjects to fit and 20 000 others to score; see :func:`oracle_ceilings`) are written
into ``SYNTHETIC_DATA.json`` under ``oracle``.

PET volumes are stored with a left-right flipped affine (LAS) to exercise re-orientation.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from robustmm.data.base import write_synthetic_marker

VISITS = [(0, "bl"), (6, "m06"), (12, "m12"), (18, "m18"), (24, "m24"), (36, "m36"), (48, "m48")]
VOXEL_MM = 2.0


def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    return np.meshgrid(*axes, indexing="ij")


def _blob(grid, centre, radius: float) -> np.ndarray:
    x, y, z = grid
    d2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2
    return np.exp(-d2 / (2 * radius**2)).astype(np.float32)


class _TextureBank:
    """Low-frequency textures (white noise blurred in Fourier space), made once per cohort;
    each volume takes a randomly rolled one, which is far cheaper than one FFT per volume."""

    def __init__(self, rng: np.random.Generator, shape, n: int = 12) -> None:
        freqs = np.meshgrid(*[np.fft.fftfreq(k) for k in shape], indexing="ij")
        kernel = np.exp(-sum(f**2 for f in freqs) / (2 * 0.06**2))
        self.fields = []
        for _ in range(n):
            smooth = np.real(np.fft.ifftn(np.fft.fftn(rng.standard_normal(shape)) * kernel))
            self.fields.append((smooth / (smooth.std() + 1e-8)).astype(np.float32))

    def draw(self, rng: np.random.Generator, scale: float) -> np.ndarray:
        field = self.fields[int(rng.integers(len(self.fields)))]
        shift = tuple(int(s) for s in rng.integers(0, field.shape))
        return scale * np.roll(field, shift, axis=(0, 1, 2))


def _shifted(grid, rng: np.random.Generator, scale: float = 1.0):
    """Registration is imperfect: each subject's anatomy is shifted a little (sd 0.03 x ``scale``)."""
    dx = rng.normal(0.0, 0.03 * scale, size=3).astype(np.float32)
    return tuple(g - d for g, d in zip(grid, dx))


def _pet_regions(g) -> np.ndarray:
    """Parietal and posterior-cingulate regions: where PET shows hypometabolism."""
    return (_blob(g, (0.45, -0.35, 0.35), 0.16) + _blob(g, (-0.45, -0.35, 0.35), 0.16)
            + _blob(g, (0.0, -0.3, 0.2), 0.12))


def _mri(grid, a: float, rng: np.random.Generator, textures: _TextureBank, c: float | None = None,
         locality: float = 0.0, contrast: float = 0.12) -> np.ndarray:
    g = _shifted(grid, rng)
    x, y, z = g
    brain = 1.0 / (1.0 + np.exp(((x / 0.85) ** 2 + (y / 0.9) ** 2 + (z / 0.8) ** 2 - 1.0) * 12.0))
    tissue = 0.55 + 0.15 * _blob(g, (0, 0, 0), 0.45) + textures.draw(rng, 0.05)
    hippo = _blob(g, (0.35, -0.1, -0.25), 0.11) + _blob(g, (-0.35, -0.1, -0.25), 0.11)
    ventricles = _blob(g, (0.12, 0.05, 0.1), 0.09 + 0.025 * max(a, -2.0)) + _blob(g, (-0.12, 0.05, 0.1), 0.09 + 0.025 * max(a, -2.0))
    img = brain * (tissue + 0.35 * hippo * (1.0 - 0.3 * a) - 0.45 * np.clip(ventricles, 0, 1))
    if c is not None:  # pet_from_mri > 0: a region whose contrast is c (either sign)
        site = _blob(g, (0.0, 0.35, 0.25), 0.12)  # periventricular, far from PET's regions
        if locality > 0.0:  # pet_locality: moved onto PET's regions (a local MRI -> PET relation)
            site = (1.0 - locality) * site + locality * _pet_regions(g)
        img = img + brain * contrast * float(np.clip(c, -3.0, 3.0)) * site
    img = img * rng.uniform(0.8, 1.25) + rng.normal(0.0, 0.04, size=x.shape)
    return np.clip(img, 0.0, None).astype(np.float32)


def _pet(grid, z_sev: float, rng: np.random.Generator, textures: _TextureBank, noise: float = 0.3,
         nuisance: float = 1.0) -> np.ndarray:
    """``nuisance`` scales the PET's own subject-specific variation that no other modality predicts:
    registration shift, texture, global intensity scale (about 1) and voxel noise. The random draws
    are the same for every value (the cohort's other variables do not change with it)."""
    g = _shifted(grid, rng, nuisance)
    x, y, z = g
    brain = 1.0 / (1.0 + np.exp(((x / 0.85) ** 2 + (y / 0.9) ** 2 + (z / 0.8) ** 2 - 1.0) * 12.0))
    base = 0.6 + 0.25 * _blob(g, (0, 0, 0.2), 0.5) + textures.draw(rng, 0.04 * nuisance)
    regions = _pet_regions(g)
    signal = z_sev + noise * rng.standard_normal()
    img = brain * (base + 0.5 * regions * (1.0 - 0.3 * np.tanh(signal)))
    scale = rng.uniform(0.7, 1.4)
    if nuisance != 1.0:
        scale = 1.0 + nuisance * (scale - 1.05)
    img = img * scale + rng.normal(0.0, 0.03 * nuisance, size=x.shape)
    return np.clip(img, 0.0, None).astype(np.float32)


GENERATOR_VERSION = 2  # bump whenever the generated data change for the same arguments


def write_synthetic_adni(
    out_dir: str | Path,
    subjects: int = 480,
    seed: int = 0,
    pet_missing: float = 0.3,
    native_shape: tuple[int, int, int] = (40, 48, 40),
    *,
    pet_from_mri: float = 0.0,
    mri_noise: float = 0.0,
    pet_noise: float = 0.3,
    clinical_noise: float = 1.0,
    pet_nuisance: float = 1.0,
    pet_locality: float = 0.0,
    mri_latent_contrast: float = 0.12,
    label_noise: float = 0.4,
    oracle: bool = True,
    progress: bool = False,
) -> Path:
    """Write a synthetic cohort to ``out_dir`` (must not exist or be empty). Returns the folder.

    The keyword-only knobs are described in the module docstring; with their defaults the
    cohort is byte-for-byte the version-2 cohort. ``oracle=False`` skips the oracle ceilings
    (about a second of work) in ``SYNTHETIC_DATA.json``; ``progress`` shows a bar (one step per
    subject).
    """
    from tqdm.auto import tqdm

    knobs = validate_knobs(pet_from_mri=pet_from_mri, mri_noise=mri_noise, pet_noise=pet_noise,
                           clinical_noise=clinical_noise, pet_missing=pet_missing, pet_nuisance=pet_nuisance,
                           pet_locality=pet_locality, mri_latent_contrast=mri_latent_contrast,
                           label_noise=label_noise)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # the knobs' extra draws come from their own stream, so the default cohort is unchanged
    knob_rng = np.random.default_rng([seed, 1])
    c_all = knob_rng.standard_normal(subjects)
    mri_eps = knob_rng.standard_normal((subjects, 2))
    rho = float(pet_from_mri)
    k = float(clinical_noise)
    grid = _grid(native_shape)
    textures = _TextureBank(rng, native_shape)
    affine_ras = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine_ras[:3, 3] = [-(n - 1) * VOXEL_MM / 2 for n in native_shape]
    affine_las = affine_ras.copy()
    affine_las[0, 0] = -VOXEL_MM
    affine_las[0, 3] = -affine_ras[0, 3]

    rows, manifest = [], []
    for i in tqdm(range(subjects), desc="writing synthetic ADNI cohort", unit="subject", disable=not progress,
                  leave=False):
        rid = 1000 + i
        ptid = f"{100 + i % 900:03d}_S_{rid:04d}"
        a, b, e = rng.standard_normal(3)
        z_sev = 0.6 * a + 0.8 * b if rho == 0.0 else 0.6 * a + 0.8 * (np.sqrt(1 - rho) * b + np.sqrt(rho) * _h(c_all[i]))
        t_conv = 36.0 * np.exp(-0.9 * (z_sev + label_noise * e - 0.25))
        baseline_dx = "CN" if rng.random() < 0.04 else "MCI"
        last_visit = 48 if rng.random() > 0.15 else int(rng.choice([12, 18, 24]))
        has_pet = rng.random() >= pet_missing
        has_csf = rng.random() >= 0.35
        age = float(np.clip(rng.normal(73.0 + 1.0 * z_sev, 7.0), 55, 92))
        female = rng.random() < 0.42
        educ = int(np.clip(round(rng.normal(16, 2.8)), 6, 20))
        apoe4 = int(rng.choice([0, 1, 2], p=_softmax3(0.5 * z_sev)))
        cog = 0.55 * z_sev + (0.85 * k) * rng.standard_normal()
        tau = 250 + 90 * (0.5 * z_sev + (0.85 * k) * rng.standard_normal())
        fdg = 1.25 - 0.08 * (z_sev + pet_noise * rng.standard_normal())
        for month, viscode in VISITS:
            if month > last_visit:
                break
            decline = month / 12.0 * (0.4 + 0.6 * max(z_sev, 0.0))
            converted = baseline_dx == "MCI" and month >= t_conv
            dx = baseline_dx if not converted else "Dementia"
            rows.append({
                "RID": rid, "PTID": ptid, "VISCODE": viscode, "M": month, "DX": dx,
                "AGE": round(age, 1), "PTGENDER": "Female" if female else "Male", "PTEDUCAT": educ,
                "APOE4": apoe4,
                "MMSE": float(np.clip(round(27.5 - 1.2 * (cog + (0.7 * k) * rng.standard_normal()) - decline), 10, 30)),
                "ADAS13": round(float(np.clip(15 + 4.0 * (cog + (0.7 * k) * rng.standard_normal()) + 2 * decline, 0, 85)), 1),
                "CDRSB": round(float(np.clip(1.5 + 0.8 * (cog + (0.7 * k) * rng.standard_normal()) + 0.5 * decline, 0, 18)), 1),
                "FDG": round(float(fdg), 4) if has_pet else np.nan,
                "ABETA": round(float(900 - 200 * z_sev + 150 * rng.standard_normal()), 1) if has_csf else np.nan,
                "TAU": round(float(tau), 1) if has_csf else np.nan,
                "PTAU": round(float(tau / 10.5), 2) if has_csf else np.nan,
            })
        folder = out / "images" / ptid
        folder.mkdir()
        mri_rel = f"images/{ptid}/{ptid}_T1.nii.gz"
        a_seen = float(a) if mri_noise == 0.0 else float(a + mri_noise * mri_eps[i, 0])
        c_seen = None if rho == 0.0 else float(c_all[i] + mri_noise * mri_eps[i, 1])
        nib.save(nib.Nifti1Image(_mri(grid, a_seen, rng, textures, c_seen, knobs["pet_locality"],
                                                 knobs["mri_latent_contrast"]), affine_ras), out / mri_rel)
        pet_rel = ""
        if has_pet:
            pet_rel = f"images/{ptid}/{ptid}_FDG.nii.gz"
            pet = _pet(grid, float(z_sev), rng, textures, pet_noise, pet_nuisance)[::-1].copy()  # stored LAS
            nib.save(nib.Nifti1Image(pet, affine_las), out / pet_rel)
        manifest.append({"PTID": ptid, "mri_path": mri_rel, "pet_path": pet_rel})

    pd.DataFrame(rows).to_csv(out / "ADNIMERGE.csv", index=False)
    pd.DataFrame(manifest).to_csv(out / "manifest.csv", index=False)
    (out / "README.md").write_text(_readme(subjects, seed, pet_missing, native_shape, knobs))
    extra = {"oracle": oracle_ceilings(seed=seed, **knobs)} if oracle else {}
    write_synthetic_marker(out, "adni", version=GENERATOR_VERSION, subjects=subjects, seed=seed,
                           pet_missing=pet_missing, native_shape=list(native_shape),
                           **{key: knobs[key] for key in KNOB_DEFAULTS if key != "pet_missing" and _shown(knobs, key)},
                           **extra)
    return out


#: the cohort README's paragraph for a non-default ``pet_nuisance`` (kept out of the module
#: docstring, which the README quotes, so the default cohort's README is unchanged)
PET_NUISANCE_NOTE = """``pet_nuisance`` (default 1): multiplier of the PET volume's own subject-specific variation
that MRI cannot predict (registration shift sd 0.03, texture amplitude 0.04, global intensity
scale uniform(0.7, 1.4) around 1.05, voxel noise sd 0.03). With 1 this nuisance dominates the
voxel differences between subjects (after the loader's per-volume percentile scaling an ideal
MRI->PET generator lowers the voxel MAE of the train-mean PET by about 3 %), so a generator
trained on voxel L1 has little reason to follow its input; with 0 the between-subject PET
differences are the planted disease pattern, the cohort built for ITCFN's MRI->PET mechanism.
The random draws are the same for every value: labels, MRI, clinical data do not change.
"""

#: the cohort README's paragraph for a non-default ``pet_locality`` (as PET_NUISANCE_NOTE)
PET_LOCALITY_NOTE = """``pet_locality`` (0..1, default 0; acts when pet_from_mri > 0): where the MRI shows the latent c
whose nonlinear function h(c) is PET's MRI-derived signal. 0: a periventricular region, 13-16
voxels from PET's hypometabolism regions, so the MRI -> PET relation is non-local; 1: the contrast
sits on those same regions, a local (voxel-to-voxel, nonlinear) relation of the kind a
convolutional MRI -> PET translator models. Labels, PET and clinical data do not change with it.
"""

#: the cohort README's paragraph for a non-default ``mri_latent_contrast`` (as PET_NUISANCE_NOTE)
MRI_LATENT_CONTRAST_NOTE = """``mri_latent_contrast`` (default 0.12; acts when pet_from_mri > 0): amplitude of the MRI
contrast that shows the latent c (image units; tissue is about 0.55-0.85, texture 0.05, voxel
noise 0.04). At 0.12 the study's MRI encoder learns little of h(c) even when trained on h(c)
itself; larger values make the MRI route to PET's signal learnable (a positive control for
methods that carry PET knowledge to MRI: distillation, generation). Labels, PET and clinical
data do not change with it.
"""

#: quiet knobs: written into the marker / README (with their paragraph) only when they differ from
#: their default, so that the default cohort stays byte-for-byte the one written before they existed
#: the cohort README's paragraph for a non-default ``label_noise`` (as PET_NUISANCE_NOTE)
LABEL_NOISE_NOTE = """``label_noise`` (default 0.4): sd of the conversion noise e in ``z + label_noise * e > 0.25``. Larger
values make pMCI a noisier read-out of the latent severity z that PET, MRI and the clinical scores
measure, so the labels carry less about z than a model that sees PET does. The random draws are the
same for every value: only which subjects convert within 36 months changes."""
QUIET_KNOB_NOTES = {"pet_nuisance": PET_NUISANCE_NOTE, "pet_locality": PET_LOCALITY_NOTE,
                    "mri_latent_contrast": MRI_LATENT_CONTRAST_NOTE, "label_noise": LABEL_NOISE_NOTE}
QUIET_KNOBS = tuple(QUIET_KNOB_NOTES)

#: data.synthetic knobs of the ADNI generator and their defaults (the version-2 cohort)
KNOB_DEFAULTS = {"pet_from_mri": 0.0, "mri_noise": 0.0, "pet_noise": 0.3, "clinical_noise": 1.0, "pet_missing": 0.3,
                 "pet_nuisance": 1.0, "pet_locality": 0.0, "mri_latent_contrast": 0.12, "label_noise": 0.4}


def validate_knobs(**knobs: float) -> dict[str, float]:
    out = {**KNOB_DEFAULTS}
    for key, value in knobs.items():
        if key not in KNOB_DEFAULTS:
            raise ValueError(f"unknown ADNI synthetic knob {key!r} (known: {sorted(KNOB_DEFAULTS)})")
        out[key] = float(value)
    for key in ("pet_from_mri", "pet_missing", "pet_locality"):
        if not 0.0 <= out[key] <= 1.0:
            raise ValueError(f"{key} must be in [0, 1], got {out[key]}")
    for key in ("mri_noise", "pet_noise", "clinical_noise", "pet_nuisance", "mri_latent_contrast", "label_noise"):
        if out[key] < 0:
            raise ValueError(f"{key} must be >= 0, got {out[key]}")
    return out


def _h(c):
    """The nonlinear MRI -> PET mechanism: zero mean, unit variance, uncorrelated with c."""
    return (np.square(c) - 1.0) / np.sqrt(2.0)


def simulate_latents(n: int, rng: np.random.Generator, *, pet_from_mri: float = 0.0, mri_noise: float = 0.0,
                     pet_noise: float = 0.3, clinical_noise: float = 1.0, pet_missing: float = 0.3,
                     pet_nuisance: float = 1.0, pet_locality: float = 0.0,
                     mri_latent_contrast: float = 0.12, label_noise: float = 0.4) -> dict[str, np.ndarray]:
    """``n`` fresh subjects from the cohort's model, as the latent read-outs each modality carries
    (no volumes): ``label`` (pMCI), ``mri`` (n, 1 or 2), ``pet`` (n, 1), ``clinical`` (n, 7:
    age, APOE4, MMSE/ADAS13/CDR-SB read-outs of the cognitive score, TAU with 0 where not
    collected, the not-collected flag) and ``generated_pet`` (n, 1) = E[PET signal | MRI read-out],
    what an ideal MRI->PET generator outputs. ``pet_missing`` is not used (the ceilings are for
    subjects with every modality), nor are ``pet_nuisance``, ``pet_locality`` and ``mri_latent_contrast`` (they
    change only the voxels around the latent read-outs)."""
    rho, k = float(pet_from_mri), float(clinical_noise)
    a, b, c, e = rng.standard_normal((4, n))
    u = np.sqrt(1.0 - rho) * b + np.sqrt(rho) * _h(c)
    z = 0.6 * a + 0.8 * u
    label = (z + label_noise * e > 0.25).astype(int)
    s2 = float(mri_noise) ** 2
    a_seen = a + mri_noise * rng.standard_normal(n)
    c_seen = c + mri_noise * rng.standard_normal(n)
    mri = np.column_stack([a_seen, c_seen]) if rho > 0 else a_seen[:, None]
    # posterior means given the MRI read-outs (a, c ~ N(0, 1) seen with noise sd mri_noise)
    shrink, post_var = 1.0 / (1.0 + s2), s2 / (1.0 + s2)
    e_h = ((shrink * c_seen) ** 2 + post_var - 1.0) / np.sqrt(2.0)
    generated = 0.6 * shrink * a_seen + 0.8 * np.sqrt(rho) * e_h if rho > 0 else 0.6 * shrink * a_seen
    pet = z + pet_noise * rng.standard_normal(n)
    age = 73.0 + z + 7.0 * rng.standard_normal(n)
    logits = np.stack([0.6 - 0.5 * z, np.zeros(n), -1.4 + 0.5 * z], axis=1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    apoe4 = (rng.random(n)[:, None] > np.cumsum(p, 1)[:, :2]).sum(1).astype(float)
    cog = 0.55 * z + 0.85 * k * rng.standard_normal(n)
    scores = [cog + 0.7 * k * rng.standard_normal(n) for _ in range(3)]
    tau = 0.5 * z + 0.85 * k * rng.standard_normal(n)
    no_csf = rng.random(n) < 0.35
    clinical = np.column_stack([age, apoe4, *scores, np.where(no_csf, 0.0, tau), no_csf.astype(float)])
    return {"label": label, "mri": mri, "pet": pet[:, None], "clinical": clinical,
            "generated_pet": generated[:, None], "z": z}


#: subsets whose oracle ceiling is reported; "generated_pet" = an ideal MRI->PET generator's output
ORACLE_SUBSETS = ("mri", "pet", "clinical", "mri+pet", "mri+clinical", "pet+clinical", "mri+pet+clinical",
                  "mri+generated_pet", "mri+clinical+generated_pet")


def oracle_ceilings(seed: int = 0, n: int | None = None, **knobs: float) -> dict:
    """AUC of a logistic regression on the latent read-outs of each subset in :data:`ORACLE_SUBSETS`,
    fitted on ``n`` simulated subjects and scored on ``n`` others (``n`` = 20 000 by default)."""
    from robustmm.data.synth.oracle import ORACLE_SUBJECTS, logistic_auc, summary

    knobs = validate_knobs(**knobs)
    n = n or ORACLE_SUBJECTS
    fit = simulate_latents(n, np.random.default_rng([seed, 101]), **knobs)
    score = simulate_latents(n, np.random.default_rng([seed, 102]), **knobs)
    ceilings = {}
    for name in ORACLE_SUBSETS:
        parts = name.split("+")
        ceilings[name] = logistic_auc(np.column_stack([fit[p] for p in parts]), fit["label"],
                                      np.column_stack([score[p] for p in parts]), score["label"])
    return summary("auc", "logistic regression on the latent read-outs of each subset", ceilings, n, seed,
                   "pMCI vs sMCI; every modality present. generated_pet = E[PET signal | MRI read-out] "
                   "(an ideal MRI->PET generator). pet_from_mri = 0: mri+clinical+generated_pet equals "
                   "mri+clinical; > 0: the gap is what ideal generated PET adds.",
                   knobs={key: knobs[key] for key in KNOB_DEFAULTS if _shown(knobs, key)})


def _shown(knobs: dict, key: str) -> bool:
    return key not in QUIET_KNOBS or knobs[key] != KNOB_DEFAULTS[key]


def _softmax3(shift: float) -> list[float]:
    logits = np.array([0.6 - shift, 0.0, -1.4 + shift])
    p = np.exp(logits - logits.max())
    return list(p / p.sum())


def _readme(subjects: int, seed: int, pet_missing: float, shape, knobs: dict | None = None) -> str:
    doc = (__doc__ or "").strip()
    knobs = knobs or {}
    knob_text = ", ".join(f"{k}={v}" for k, v in knobs.items() if k != "pet_missing" and _shown(knobs, k))
    return (
        "# SYNTHETIC ADNI-format cohort (not real patients)\n\n"
        f"Written by `robustmm data synth adni` with subjects={subjects}, seed={seed}, "
        f"pet_missing={pet_missing}, native volume shape={list(shape)} at {VOXEL_MM} mm"
        + (f", {knob_text}" if knob_text else "") + ".\n\n"
        "Files: `ADNIMERGE.csv` (one row per visit), `manifest.csv` (PTID, mri_path, pet_path; "
        "empty pet_path = no PET), `images/<PTID>/<PTID>_T1.nii.gz` and `_FDG.nii.gz`.\n\n"
        "## Planted signal\n\n" + doc.split("\n\n", 1)[1] + "\n"
        + "".join("\n" + note for key, note in QUIET_KNOB_NOTES.items() if key in knobs and _shown(knobs, key))
    )
