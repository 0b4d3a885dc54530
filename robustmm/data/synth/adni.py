"""A synthetic MCI cohort written in the ADNI layout (ADNIMERGE-like table, manifest, NIfTI).

The planted signal (also written to the cohort's README.md):

* every subject has a latent severity ``z = 0.6 a + 0.8 b`` (a, b ~ N(0, 1));
* conversion to dementia happens at ``T = 36 exp(-0.9 (z + 0.4 e - 0.25))`` months
  (e ~ N(0, 1)), so pMCI within 36 months iff ``z + 0.4 e > 0.25`` (about 40 % of subjects);
* MRI sees only ``a`` (hippocampal atrophy, ventricle enlargement): weak signal;
* PET sees ``z`` (parietal and posterior-cingulate hypometabolism): strong signal; PET is
  therefore partly (through ``a``) but not fully predictable from MRI;
* clinical scores (MMSE, ADAS13, CDR-SB, APOE4, TAU/PTAU) are noisy functions of ``z``:
  moderately informative;
* about 30 % of subjects have no PET (missing completely at random); FDG (a PET summary) is
  NaN for them; TAU/PTAU are missing for about 35 % (CSF not collected);
* some subjects drop out before 36 months without converting (label unknown: excluded by the
  loader) and a few are cognitively normal at baseline (not MCI: excluded).

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


def _shifted(grid, rng: np.random.Generator):
    """Registration is imperfect: each subject's anatomy is shifted a little."""
    dx = rng.normal(0.0, 0.03, size=3).astype(np.float32)
    return tuple(g - d for g, d in zip(grid, dx))


def _mri(grid, a: float, rng: np.random.Generator, textures: _TextureBank) -> np.ndarray:
    g = _shifted(grid, rng)
    x, y, z = g
    brain = 1.0 / (1.0 + np.exp(((x / 0.85) ** 2 + (y / 0.9) ** 2 + (z / 0.8) ** 2 - 1.0) * 12.0))
    tissue = 0.55 + 0.15 * _blob(g, (0, 0, 0), 0.45) + textures.draw(rng, 0.05)
    hippo = _blob(g, (0.35, -0.1, -0.25), 0.11) + _blob(g, (-0.35, -0.1, -0.25), 0.11)
    ventricles = _blob(g, (0.12, 0.05, 0.1), 0.09 + 0.025 * max(a, -2.0)) + _blob(g, (-0.12, 0.05, 0.1), 0.09 + 0.025 * max(a, -2.0))
    img = brain * (tissue + 0.35 * hippo * (1.0 - 0.3 * a) - 0.45 * np.clip(ventricles, 0, 1))
    img = img * rng.uniform(0.8, 1.25) + rng.normal(0.0, 0.04, size=x.shape)
    return np.clip(img, 0.0, None).astype(np.float32)


def _pet(grid, z_sev: float, rng: np.random.Generator, textures: _TextureBank) -> np.ndarray:
    g = _shifted(grid, rng)
    x, y, z = g
    brain = 1.0 / (1.0 + np.exp(((x / 0.85) ** 2 + (y / 0.9) ** 2 + (z / 0.8) ** 2 - 1.0) * 12.0))
    base = 0.6 + 0.25 * _blob(g, (0, 0, 0.2), 0.5) + textures.draw(rng, 0.04)
    regions = (_blob(g, (0.45, -0.35, 0.35), 0.16) + _blob(g, (-0.45, -0.35, 0.35), 0.16)
               + _blob(g, (0.0, -0.3, 0.2), 0.12))
    signal = z_sev + 0.3 * rng.standard_normal()
    img = brain * (base + 0.5 * regions * (1.0 - 0.3 * np.tanh(signal)))
    img = img * rng.uniform(0.7, 1.4) + rng.normal(0.0, 0.03, size=x.shape)
    return np.clip(img, 0.0, None).astype(np.float32)


GENERATOR_VERSION = 2  # bump whenever the generated data change for the same arguments


def write_synthetic_adni(
    out_dir: str | Path,
    subjects: int = 480,
    seed: int = 0,
    pet_missing: float = 0.3,
    native_shape: tuple[int, int, int] = (40, 48, 40),
    progress: bool = False,
) -> Path:
    """Write a synthetic cohort to ``out_dir`` (must not exist or be empty). Returns the folder.
    ``progress``: show a progress bar (one step per subject)."""
    from tqdm.auto import tqdm

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
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
        z_sev = 0.6 * a + 0.8 * b
        t_conv = 36.0 * np.exp(-0.9 * (z_sev + 0.4 * e - 0.25))
        baseline_dx = "CN" if rng.random() < 0.04 else "MCI"
        last_visit = 48 if rng.random() > 0.15 else int(rng.choice([12, 18, 24]))
        has_pet = rng.random() >= pet_missing
        has_csf = rng.random() >= 0.35
        age = float(np.clip(rng.normal(73.0 + 1.0 * z_sev, 7.0), 55, 92))
        female = rng.random() < 0.42
        educ = int(np.clip(round(rng.normal(16, 2.8)), 6, 20))
        apoe4 = int(rng.choice([0, 1, 2], p=_softmax3(0.5 * z_sev)))
        cog = 0.55 * z_sev + 0.85 * rng.standard_normal()
        tau = 250 + 90 * (0.5 * z_sev + 0.85 * rng.standard_normal())
        fdg = 1.25 - 0.08 * (z_sev + 0.3 * rng.standard_normal())
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
                "MMSE": float(np.clip(round(27.5 - 1.2 * (cog + 0.7 * rng.standard_normal()) - decline), 10, 30)),
                "ADAS13": round(float(np.clip(15 + 4.0 * (cog + 0.7 * rng.standard_normal()) + 2 * decline, 0, 85)), 1),
                "CDRSB": round(float(np.clip(1.5 + 0.8 * (cog + 0.7 * rng.standard_normal()) + 0.5 * decline, 0, 18)), 1),
                "FDG": round(float(fdg), 4) if has_pet else np.nan,
                "ABETA": round(float(900 - 200 * z_sev + 150 * rng.standard_normal()), 1) if has_csf else np.nan,
                "TAU": round(float(tau), 1) if has_csf else np.nan,
                "PTAU": round(float(tau / 10.5), 2) if has_csf else np.nan,
            })
        folder = out / "images" / ptid
        folder.mkdir()
        mri_rel = f"images/{ptid}/{ptid}_T1.nii.gz"
        nib.save(nib.Nifti1Image(_mri(grid, float(a), rng, textures), affine_ras), out / mri_rel)
        pet_rel = ""
        if has_pet:
            pet_rel = f"images/{ptid}/{ptid}_FDG.nii.gz"
            pet = _pet(grid, float(z_sev), rng, textures)[::-1].copy()  # stored LAS
            nib.save(nib.Nifti1Image(pet, affine_las), out / pet_rel)
        manifest.append({"PTID": ptid, "mri_path": mri_rel, "pet_path": pet_rel})

    pd.DataFrame(rows).to_csv(out / "ADNIMERGE.csv", index=False)
    pd.DataFrame(manifest).to_csv(out / "manifest.csv", index=False)
    (out / "README.md").write_text(_readme(subjects, seed, pet_missing, native_shape))
    write_synthetic_marker(out, "adni", version=GENERATOR_VERSION, subjects=subjects, seed=seed,
                           pet_missing=pet_missing, native_shape=list(native_shape))
    return out


def _softmax3(shift: float) -> list[float]:
    logits = np.array([0.6 - shift, 0.0, -1.4 + shift])
    p = np.exp(logits - logits.max())
    return list(p / p.sum())


def _readme(subjects: int, seed: int, pet_missing: float, shape) -> str:
    doc = (__doc__ or "").strip()
    return (
        "# SYNTHETIC ADNI-format cohort (not real patients)\n\n"
        f"Written by `robustmm data synth adni` with subjects={subjects}, seed={seed}, "
        f"pet_missing={pet_missing}, native volume shape={list(shape)} at {VOXEL_MM} mm.\n\n"
        "Files: `ADNIMERGE.csv` (one row per visit), `manifest.csv` (PTID, mri_path, pet_path; "
        "empty pet_path = no PET), `images/<PTID>/<PTID>_T1.nii.gz` and `_FDG.nii.gz`.\n\n"
        "## Planted signal\n\n" + doc.split("\n\n", 1)[1] + "\n"
    )
