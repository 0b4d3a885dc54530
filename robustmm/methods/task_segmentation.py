"""Segmentation task adapter: region-wise soft Dice + binary cross-entropy loss, sliding-window inference, Dice and
HD95 per region, and the report's subset x region tables, heat maps and overlays.

The target is a float (B, K, D, H, W) stack of binary region masks (BraTS: [TC, WT, ET], see
:mod:`robustmm.data.brats`); the network emits one logit map per region (sigmoid, regions may
overlap). Metrics, per region named after ``task.class_names`` and averaged over regions:

* ``dice_<region>``, ``dice_mean`` (the primary metric) and ``hd95_<region>``, ``hd95_mean``
  in millimetres (voxel size from each case's affine), from :mod:`robustmm.metrics.segmentation`
  with its empty-mask conventions (both empty: Dice 1, HD95 0; one empty: Dice 0, HD95 = the
  volume diagonal). Each case is scored once; bootstrap replicates reuse the per-case values.

Whole volumes larger than the training input are predicted by sliding-window inference
(:meth:`SegmentationTask.inference`, windows of the training input size learnt in ``fit``,
overlap 0.5, Gaussian blending), so a network trained on random crops is evaluated the same
way on every case. Evaluation wraps each method's ``predict`` with it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import Tensor

from robustmm.data.base import TaskSpec
from robustmm.data.batch import Batch
from robustmm.io import save_figure
from robustmm.methods.task import TaskAdapter, register_task
from robustmm.metrics.segmentation import (
    dice_per_region,
    hd95_per_region,
    logits_to_regions,
    sliding_window_predict,
)

Predict = Callable[[Batch], dict[str, Tensor]]

#: region colours of the overlays, drawn in this order so inner regions stay visible
REGION_COLOURS = {"WT": (0.1, 0.85, 0.2), "TC": (1.0, 0.85, 0.0), "ET": (0.95, 0.1, 0.1)}
OVERLAY_CASES = 3


def spacing_from_affine(affine: Any) -> tuple[float, float, float]:
    """Voxel size (mm) along each array axis: the norms of the affine's first three columns."""
    a = np.asarray(affine, dtype=float)
    return tuple(float(v) for v in np.linalg.norm(a[:3, :3], axis=0))


def sliding_window_outputs(predict: Predict, batch: Batch, roi_size: tuple[int, ...], overlap: float = 0.5,
                           sw_batch_size: int = 4) -> dict[str, Tensor]:
    """``predict`` over ``roi_size`` windows of every case of ``batch``, blended -> {"logits"}.

    Each case is windowed on its own so that every window carries that case's ``present``
    flags; windows are padded where the volume is smaller than ``roi_size``.
    """
    modalities = batch.modalities
    widths = [batch.inputs[m].shape[1] for m in modalities]
    bounds = np.cumsum([0, *widths])
    outputs = []
    for i in range(batch.size):
        case = batch.select(torch.tensor([i]))
        stacked = torch.cat([case.inputs[m] for m in modalities], dim=1)

        def window_logits(windows: Tensor, case: Batch = case) -> Tensor:
            n = windows.shape[0]
            sub = Batch(inputs={m: windows[:, bounds[j]:bounds[j + 1]] for j, m in enumerate(modalities)},
                        present={m: p.expand(n) for m, p in case.present.items()},
                        meta={k: v * n for k, v in case.meta.items()})
            return predict(sub)["logits"].float()

        outputs.append(sliding_window_predict(window_logits, stacked, roi_size, sw_batch_size=sw_batch_size,
                                              overlap=overlap, mode="gaussian"))
    return {"logits": torch.cat(outputs, dim=0)}


@register_task("segmentation")
class SegmentationTask(TaskAdapter):
    primary_metric = "dice_mean"
    overlap = 0.5

    def __init__(self, task: TaskSpec, threshold: float = 0.5) -> None:
        super().__init__(task, threshold)
        self.regions = tuple(task.class_names) or tuple(f"region{k}" for k in range(task.num_classes))
        if len(self.regions) != task.num_classes:
            raise ValueError(f"segmentation task: {task.num_classes} channels but class names {self.regions}")
        self.roi_size: tuple[int, ...] | None = None
        # Dice pooled over the batch, so a region absent from a case (e.g. no enhancing tumour)
        # does not give an undefined per-case term. (MONAI's DiceCELoss is not used: with more
        # than one channel it applies softmax cross-entropy, wrong for overlapping regions.)
        self._dice = DiceLoss(sigmoid=True, batch=True)
        self._cache: tuple[Any, Any, dict[str, np.ndarray]] | None = None

    # ------------------------------------------------------------------ training
    def fit(self, data: Any) -> None:
        """The sliding-window size: the spatial size of the training inputs."""
        spec = next(iter(data.modalities.values()))
        self.roi_size = tuple(int(s) for s in spec.shape[1:])

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        target = batch.target
        if logits.shape != target.shape:
            raise ValueError(f"segmentation logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
        logits, target = logits.float(), target.float()
        return self._dice(logits, target) + F.binary_cross_entropy_with_logits(logits, target)

    def inference(self, predict: Predict) -> Predict:
        """``predict`` with sliding-window inference over volumes that differ from the window."""
        if self.roi_size is None:
            return predict

        def windowed(batch: Batch) -> dict[str, Tensor]:
            spatial = tuple(next(iter(batch.inputs.values())).shape[2:])
            if spatial == self.roi_size:
                return predict(batch)
            return sliding_window_outputs(predict, batch, self.roi_size, self.overlap)

        return windowed

    # ------------------------------------------------------------------ metrics
    def per_case(self, outputs: dict[str, np.ndarray], target: Any, meta: dict[str, list]) -> dict[str, np.ndarray]:
        """Metric name -> value per case (computed once per set of predictions)."""
        if self._cache is not None and self._cache[0] is outputs and self._cache[1] is target:
            return self._cache[2]
        logits = outputs["logits"]
        masks = np.asarray(target)
        n = len(masks)
        values = {f"{kind}_{r}": np.zeros(n) for kind in ("dice", "hd95") for r in self.regions}
        affines = meta.get("affine")
        for i in range(n):
            pred = logits_to_regions(torch.as_tensor(logits[i : i + 1]).float(), self.threshold)
            truth = torch.as_tensor(masks[i : i + 1]) > 0.5
            spacing = spacing_from_affine(affines[i]) if affines is not None else None
            dice = dice_per_region(pred, truth)[0]
            hd95 = hd95_per_region(pred, truth, spacing=spacing)[0]
            for k, r in enumerate(self.regions):
                values[f"dice_{r}"][i] = float(dice[k])
                values[f"hd95_{r}"][i] = float(hd95[k])
        values["dice_mean"] = np.mean([values[f"dice_{r}"] for r in self.regions], axis=0)
        values["hd95_mean"] = np.mean([values[f"hd95_{r}"] for r in self.regions], axis=0)
        self._cache = (outputs, target, values)
        return values

    def metric_names(self) -> tuple[str, ...]:
        return ("dice_mean", *(f"dice_{r}" for r in self.regions), "hd95_mean", *(f"hd95_{r}" for r in self.regions))

    def metrics(self, outputs, target, meta, idx=None):
        values = self.per_case(outputs, target, meta)
        idx = np.arange(len(next(iter(values.values())))) if idx is None else np.asarray(idx)
        return {k: float(values[k][idx].mean()) for k in self.metric_names()}

    def bootstrap_metrics(self, outputs, target, meta, keep, boots):
        from robustmm.metrics.weighted import count_matrix, weighted_means

        values = self.per_case(outputs, target, meta)
        return weighted_means({k: values[k][keep] for k in self.metric_names()}, count_matrix(boots, keep.size))

    def state_dict(self) -> dict:
        return {"roi_size": None if self.roi_size is None else list(self.roi_size)}

    def load_state_dict(self, state: dict) -> None:
        roi = state.get("roi_size")
        self.roi_size = None if roi is None else tuple(int(s) for s in roi)

    # ------------------------------------------------------------------ report
    def report_sections(self, predictions: dict[str, Any], plots_dir: Path) -> list[tuple[str, str]]:
        """Prediction vs label on one axial slice per case, for a few test cases (complete data)."""
        if not predictions:
            return []
        first = next(iter(predictions.values()))
        cases = list(range(min(OVERLAY_CASES, len(first.subjects))))
        path = overlay_grid(
            {method: p.outputs["logits"] for method, p in predictions.items()}, np.asarray(first.target),
            first.meta, cases, first.subjects, self.regions, self.threshold, Path(plots_dir) / "segmentation_overlays.png",
        )
        legend = ", ".join(f"{r} {_colour_name(REGION_COLOURS.get(r))}" for r in self.regions)
        body = (f"<p>Axial slice through the centre of the labelled whole tumour of the first {len(cases)} test "
                f"cases, with every sequence present. First column: label; then each method's prediction "
                f"(regions: {html.escape(legend)}).</p><img src='plots/{path.name}' alt='segmentation overlays'>")
        return [("Segmentation: prediction vs label", body)]

    def summary_sections(self, records: list[dict[str, Any]], plots_dir: Path) -> list[tuple[str, str]]:
        """Per modality-subset group: a subset x region table per method (with the mean over
        subsets) and a Dice heat map."""
        sections = []
        for group, scenarios in _subset_groups(records).items():
            methods = list(dict.fromkeys(r["method"] for r in records if r["group"] == group))
            columns = [f"dice_{r}" for r in self.regions] + ["dice_mean"] + [f"hd95_{r}" for r in self.regions] + ["hd95_mean"]
            value = {(r["method"], r["scenario"], r["metric"]): r["value"] for r in records if r["group"] == group}
            tables = []
            for method in methods:
                grid = np.array([[_num(value.get((method, s, c))) for c in columns] for s in scenarios])
                tables.append(_subset_table(method, scenarios, columns, grid))
            heat = subset_heatmap(
                {m: np.array([[_num(value.get((m, s, f"dice_{r}"))) for r in self.regions]
                              + [_num(value.get((m, s, "dice_mean")))] for s in scenarios]) for m in methods},
                scenarios, [*self.regions, "mean"], Path(plots_dir) / f"{group}_dice_heatmap.png",
            )
            body = ("<p>Test-split point estimates per modality subset (rows) and region (columns); the last row "
                    "is the mean over subsets. HD95 in mm.</p>" + "".join(tables)
                    + f"<img src='plots/{heat.name}' alt='Dice per subset and region'>")
            sections.append((f"Segmentation: {group} x region", body))
        return sections


def preview_slice(target: np.ndarray, regions: tuple[str, ...]) -> int:
    """Axial index through the centre of the whole tumour (the union of regions), else the middle."""
    tumour = target[regions.index("WT")] if "WT" in regions else target.any(axis=0)
    z = np.nonzero(np.asarray(tumour).any(axis=(0, 1)))[0]
    return int(round(z.mean())) if z.size else tumour.shape[-1] // 2


def _region_rgba(masks: np.ndarray, regions: tuple[str, ...], alpha: float = 0.45) -> np.ndarray:
    """(K, X, Y) bool -> (Y, X, 4) overlay with the region colours, outer regions first."""
    rgba = np.zeros((*masks.shape[1:][::-1], 4))
    order = sorted(range(len(regions)), key=lambda k: list(REGION_COLOURS).index(regions[k])
                   if regions[k] in REGION_COLOURS else k)
    for k in order:
        colour = REGION_COLOURS.get(regions[k], (0.2, 0.4, 1.0))
        rgba[masks[k].T] = (*colour, alpha)
    return rgba


def overlay_grid(logits: dict[str, np.ndarray], target: np.ndarray, meta: dict[str, list], cases: list[int],
                 subjects: list[str], regions: tuple[str, ...], threshold: float, path: Path) -> Path:
    """Rows: cases; columns: label, then each method's thresholded prediction, on one axial slice
    (``meta["preview"]`` gives the slice and a background image when the dataset provides them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["label", *logits]
    fig, axes = plt.subplots(len(cases), len(columns), figsize=(2.6 * len(columns), 2.6 * len(cases)),
                             squeeze=False)
    previews = meta.get("preview")
    for row, i in enumerate(cases):
        preview = previews[i] if previews is not None else None
        z = int(preview["slice"]) if preview is not None else preview_slice(target[i], regions)
        background = (np.asarray(preview["image"], dtype=float) if preview is not None
                      else np.zeros(target.shape[2:4]))
        panels = [target[i][..., z] > 0.5]
        panels += [1.0 / (1.0 + np.exp(-np.asarray(v[i][..., z], dtype=float))) > threshold for v in logits.values()]
        for col, (name, masks) in enumerate(zip(columns, panels)):
            ax = axes[row][col]
            ax.imshow(background.T, cmap="gray", origin="lower")
            ax.imshow(_region_rgba(masks, regions), origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{subjects[i]}\nz={z}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def subset_heatmap(values: dict[str, np.ndarray], scenarios: list[str], columns: list[str], path: Path) -> Path:
    """One annotated heat map per method: subsets (rows) x regions (columns), Dice in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(values), figsize=(1.6 + 0.8 * (len(columns) + 1.5) * len(values),
                                                      0.32 * len(scenarios) + 1.6),
                             squeeze=False, sharey=True, constrained_layout=True)
    for ax, (method, grid) in zip(axes[0], values.items()):
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for (r, c), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels(columns, fontsize=8)
        ax.set_yticks(range(len(scenarios)))
        ax.set_yticklabels(scenarios, fontsize=7)
        ax.set_title(f"Dice: {method}", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    return save_figure(fig, path)


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _colour_name(rgb: tuple[float, float, float] | None) -> str:
    names = {(0.1, 0.85, 0.2): "green", (1.0, 0.85, 0.0): "yellow", (0.95, 0.1, 0.1): "red"}
    return names.get(rgb, "coloured")


def _subset_groups(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Scenario groups without a rate grid and with at least two members (the subset grids)."""
    groups: dict[str, list[str]] = {}
    for r in records:
        if r["rate"] is None and not r["scenario"].endswith(":AUILC"):
            members = groups.setdefault(r["group"], [])
            if r["scenario"] not in members:
                members.append(r["scenario"])
    return {g: s for g, s in groups.items() if len(s) >= 2}


def _subset_table(method: str, scenarios: list[str], columns: list[str], grid: np.ndarray) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for s, values in zip(scenarios, grid):
        rows.append(f"<tr><td>{html.escape(s)}</td>" + "".join(f"<td>{v:.3f}</td>" for v in values) + "</tr>")
    mean = np.nanmean(grid, axis=0) if len(grid) else []
    rows.append("<tr><th>mean over subsets</th>" + "".join(f"<th>{v:.3f}</th>" for v in mean) + "</tr>")
    return f"<h3>{html.escape(method)}</h3><table><tr><th>subset</th>{head}</tr>{''.join(rows)}</table>"
