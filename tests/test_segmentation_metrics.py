"""Dice / HD95 per region on hand-built masks with known answers, and inference helpers."""

from __future__ import annotations

import math

import pytest
import torch

from robustmm.metrics.segmentation import (
    dice_per_region,
    hd95_per_region,
    logits_to_regions,
    sliding_window_predict,
    volume_diagonal,
)

SHAPE = (20, 20, 20)


def empty(channels: int = 1, batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, channels, *SHAPE, dtype=torch.bool)


def test_dice_two_cubes_known_overlap() -> None:
    pred, target = empty(2), empty(2)
    # channel 0: two 8^3 cubes overlapping in a 4x8x8 slab -> 2*256/(512+512) = 0.5
    pred[0, 0, 2:10, 2:10, 2:10] = True
    target[0, 0, 6:14, 2:10, 2:10] = True
    # channel 1: a 4^3 cube inside a 6^3 cube -> 2*64/(216+64)
    pred[0, 1, 2:8, 2:8, 2:8] = True
    target[0, 1, 3:7, 3:7, 3:7] = True
    dice = dice_per_region(pred, target)
    assert dice.shape == (1, 2)
    assert dice[0, 0].item() == pytest.approx(0.5)
    assert dice[0, 1].item() == pytest.approx(128 / 280)


def test_dice_per_case_and_float_masks() -> None:
    pred, target = empty(1, batch=2), empty(1, batch=2)
    pred[0, 0, :4] = True
    target[0, 0, :4] = True  # identical -> 1
    pred[1, 0, :4] = True
    target[1, 0, 4:8] = True  # disjoint -> 0
    dice = dice_per_region(pred.float(), target.float())
    assert dice[:, 0].tolist() == pytest.approx([1.0, 0.0])


def test_dice_empty_conventions() -> None:
    pred, target = empty(3), empty(3)
    # channel 0 both empty, channel 1 prediction only, channel 2 target only
    pred[0, 1, 5:8, 5:8, 5:8] = True
    target[0, 2, 5:8, 5:8, 5:8] = True
    assert dice_per_region(pred, target)[0].tolist() == [1.0, 0.0, 0.0]


def test_hd95_one_voxel_shift_is_one() -> None:
    pred, target = empty(), empty()
    pred[0, 0, 2:10, 2:10, 2:10] = True
    target[0, 0, 3:11, 2:10, 2:10] = True
    assert hd95_per_region(pred, target)[0, 0].item() == pytest.approx(1.0)
    # spacing scales the distance along the shifted axis only
    assert hd95_per_region(pred, target, spacing=(2.0, 1.0, 1.0))[0, 0].item() == pytest.approx(2.0)
    assert hd95_per_region(pred, target, spacing=(1.0, 3.0, 3.0))[0, 0].item() == pytest.approx(1.0)
    assert hd95_per_region(pred, target, spacing=2.5)[0, 0].item() == pytest.approx(2.5)


def test_hd95_single_voxels_3_4_5() -> None:
    pred, target = empty(), empty()
    pred[0, 0, 2, 2, 2] = True
    target[0, 0, 5, 6, 2] = True
    assert hd95_per_region(pred, target)[0, 0].item() == pytest.approx(5.0)


def test_hd95_is_a_percentile_not_the_max() -> None:
    # one far outlier voxel among ~500 surface voxels: max HD is 8, the 95th percentile is 0
    pred, target = empty(), empty()
    pred[0, 0, 2:12, 2:12, 2:12] = True
    target[0, 0, 2:12, 2:12, 2:12] = True
    target[0, 0, 19, 6, 6] = True
    assert hd95_per_region(pred, target)[0, 0].item() == pytest.approx(0.0)
    assert hd95_per_region(pred, pred)[0, 0].item() == 0.0


def test_hd95_empty_conventions() -> None:
    pred, target = empty(3), empty(3)
    pred[0, 1, 5:8, 5:8, 5:8] = True
    target[0, 2, 5:8, 5:8, 5:8] = True
    diag = math.sqrt(3 * 20**2)
    hd = hd95_per_region(pred, target)
    assert hd[0].tolist() == pytest.approx([0.0, diag, diag])
    hd_spaced = hd95_per_region(pred, target, spacing=(1.0, 1.0, 2.0))
    assert hd_spaced[0, 1].item() == pytest.approx(math.sqrt(20**2 + 20**2 + 40**2))
    hd_nan = hd95_per_region(pred, target, one_empty="nan")
    assert hd_nan[0, 0].item() == 0.0
    assert torch.isnan(hd_nan[0, 1:]).all()


def test_volume_diagonal_brats() -> None:
    assert volume_diagonal((240, 240, 155)) == pytest.approx(373.13, abs=0.01)


def test_metrics_reject_bad_masks() -> None:
    with pytest.raises(ValueError, match="shape"):
        dice_per_region(empty(1), empty(2))
    with pytest.raises(ValueError, match="binary"):
        hd95_per_region(torch.rand(1, 1, *SHAPE), empty(1).float())


def test_logits_to_regions() -> None:
    logits = torch.tensor([-3.0, 0.0, 0.1, 5.0])
    assert logits_to_regions(logits).tolist() == [False, False, True, True]
    # sigmoid(5) = 0.9933, sigmoid(0.1) = 0.525
    assert logits_to_regions(logits, threshold=0.9).tolist() == [False, False, False, True]
    assert logits_to_regions(logits).dtype == torch.bool


def test_sliding_window_predict_matches_whole_image() -> None:
    torch.manual_seed(0)
    image = torch.randn(2, 1, 30, 25, 17)
    seen: list[tuple[int, ...]] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape[2:]))
        # a voxel-wise model: blending overlapping windows must reproduce it exactly
        return torch.cat([x, 2 * x + 1, -x], dim=1)

    out = sliding_window_predict(model, image, roi_size=(16, 16, 16), overlap=0.25)
    expected = torch.cat([image, 2 * image + 1, -image], dim=1)
    assert out.shape == (2, 3, 30, 25, 17)
    assert torch.allclose(out, expected, atol=1e-5)
    assert len(seen) > 2 and set(seen) == {(16, 16, 16)}  # it really slid windows


def test_sliding_window_predict_pads_small_images() -> None:
    image = torch.randn(1, 2, 8, 8, 8)
    out = sliding_window_predict(lambda x: x.sum(1, keepdim=True), image, roi_size=(16, 16, 16), mode="constant")
    assert out.shape == (1, 1, 8, 8, 8)
    assert torch.allclose(out, image.sum(1, keepdim=True), atol=1e-5)
    with pytest.raises(ValueError, match="roi_size"):
        sliding_window_predict(lambda x: x, image, roi_size=(16, 16))
