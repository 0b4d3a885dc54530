"""Tests for robustmm.losses against independent NumPy computations."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustmm.losses import (
    attention_kl_loss,
    cosine_distill_loss,
    cox_ph_loss,
    discrete_survival_nll,
    class_weighted_focal_loss,
    focal_loss,
    kd_kl_loss,
    mad_loss,
    mad_loss_spatial,
    sdm_loss,
    survival_curve,
    survival_risk,
)


def _t(x: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def _np_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- MAD


def _np_mad(s: np.ndarray, t: np.ndarray, logits: np.ndarray) -> float:
    n = s.shape[0]
    s = s.reshape(n, -1)
    t = t.reshape(n, -1)
    gs = s @ s.T
    gt = t @ t.T
    gs = gs / np.maximum(np.linalg.norm(gs, axis=1, keepdims=True), 1e-12)
    gt = gt / np.maximum(np.linalg.norm(gt, axis=1, keepdims=True), 1e-12)
    lp = _np_log_softmax(logits)
    h = -(np.exp(lp) * lp).sum(axis=1)
    w = h / h.sum() if h.sum() > 0 else np.full(n, 1.0 / n)
    return float((w * ((gs - gt) ** 2).sum(axis=1)).sum())


@pytest.mark.parametrize("s_shape,t_shape", [((6, 10), (6, 10)), ((5, 3, 4, 4), (5, 7))])
def test_mad_loss_matches_numpy(s_shape: tuple[int, ...], t_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=s_shape)
    t = rng.normal(size=t_shape)
    logits = rng.normal(size=(s_shape[0], 4)) * 2
    got = mad_loss(_t(s), _t(t), _t(logits))
    assert got.item() == pytest.approx(_np_mad(s, t, logits), abs=1e-6)
    assert got.item() > 0


def test_mad_loss_zero_when_equal_and_scale_invariant() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(size=(7, 12))
    t = rng.normal(size=(7, 12))
    logits = rng.normal(size=(7, 3))
    assert mad_loss(_t(s), _t(s), _t(logits)).item() == pytest.approx(0.0, abs=1e-12)
    base = mad_loss(_t(s), _t(t), _t(logits)).item()
    scaled = mad_loss(_t(3.7 * s), _t(t), _t(logits)).item()
    assert scaled == pytest.approx(base, rel=1e-9)
    assert base > 1e-3


def test_mad_loss_gradient_only_reaches_student() -> None:
    rng = np.random.default_rng(2)
    s = _t(rng.normal(size=(4, 5)), grad=True)
    t = _t(rng.normal(size=(4, 5)), grad=True)
    logits = _t(rng.normal(size=(4, 3)), grad=True)
    mad_loss(s, t, logits).backward()
    assert t.grad is None
    assert logits.grad is None
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_mad_loss_uniform_weights_for_confident_teacher() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(size=(5, 6))
    t = rng.normal(size=(5, 6))
    logits = np.zeros((5, 3))
    logits[:, 0] = 1e4  # softmax is exactly one-hot: every entropy is 0
    got = mad_loss(_t(s), _t(t), _t(logits)).item()
    gs = s @ s.T
    gt = t @ t.T
    gs /= np.linalg.norm(gs, axis=1, keepdims=True)
    gt /= np.linalg.norm(gt, axis=1, keepdims=True)
    expected = ((gs - gt) ** 2).sum(axis=1).mean()
    assert math.isfinite(got)
    assert got == pytest.approx(expected, abs=1e-9)


def test_mad_loss_nan_becomes_zero_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    s = torch.randn(4, 5, requires_grad=True)
    t = torch.randn(4, 5)
    t[0, 0] = float("nan")
    with caplog.at_level(logging.WARNING):
        loss = mad_loss(s, t, torch.randn(4, 3))
    assert loss.item() == 0.0
    assert any("NaN" in r.getMessage() for r in caplog.records)
    loss.backward()  # still usable in a training step


def _np_pool_rows(x: np.ndarray, grid: tuple[int, ...]) -> np.ndarray:
    """Average-pool (B, C, *spatial) by block means (sizes divisible by grid) to (B·prod(grid), C)."""
    b, c = x.shape[:2]
    shape = [b, c]
    for size, g in zip(x.shape[2:], grid):
        shape += [g, size // g]
    blocks = x.reshape(shape)
    pooled = blocks.mean(axis=tuple(range(3, 2 + 2 * len(grid), 2)))
    return np.moveaxis(pooled, 1, -1).reshape(-1, c)


@pytest.mark.parametrize(
    "spatial,grid",
    [((8, 12), (4, 4, 4)), ((8, 6), (2, 3)), ((4, 8, 12), (4, 4, 4)), ((6, 4, 4), (3, 2, 2))],
)
def test_mad_loss_spatial_equals_pooled_mad(spatial: tuple[int, ...], grid: tuple[int, ...]) -> None:
    rng = np.random.default_rng(4)
    b = 2
    s = rng.normal(size=(b, 3, *spatial))
    t = rng.normal(size=(b, 5, *spatial))
    logits = rng.normal(size=(b, 4, *spatial)) * 2
    got = mad_loss_spatial(_t(s), _t(t), _t(logits), grid=grid)

    g = grid[: len(spatial)] if len(set(grid)) == 1 else grid
    rows_s, rows_t, rows_l = (_np_pool_rows(x, g) for x in (s, t, logits))
    assert rows_s.shape[0] == b * int(np.prod(g))
    assert got.item() == pytest.approx(_np_mad(rows_s, rows_t, rows_l), abs=1e-6)
    via_mad = mad_loss(_t(rows_s), _t(rows_t), _t(rows_l))
    assert got.item() == pytest.approx(via_mad.item(), abs=1e-10)


def test_mad_loss_spatial_gradients_and_bad_grid() -> None:
    s = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(2, 4, 16, 16, dtype=torch.float64)  # other resolution is allowed
    mad_loss_spatial(s, t, logits).backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ValueError):
        mad_loss_spatial(s, t, logits, grid=(4, 2, 2))


# ----------------------------------------------------------------------------- KD helpers


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_kd_kl_loss_matches_numpy(temperature: float) -> None:
    rng = np.random.default_rng(5)
    s = rng.normal(size=(6, 5)) * 2
    t = rng.normal(size=(6, 5)) * 2
    ls = _np_log_softmax(s / temperature)
    lt = _np_log_softmax(t / temperature)
    expected = (np.exp(lt) * (lt - ls)).sum(axis=1).mean() * temperature**2
    st = _t(s, grad=True)
    tt = _t(t, grad=True)
    got = kd_kl_loss(st, tt, temperature=temperature)
    assert got.item() == pytest.approx(expected, abs=1e-9)
    got.backward()
    assert tt.grad is None and st.grad is not None
    assert kd_kl_loss(_t(s), _t(s), temperature).item() == pytest.approx(0.0, abs=1e-12)


def test_kd_kl_loss_on_segmentation_maps() -> None:
    rng = np.random.default_rng(6)
    s = rng.normal(size=(2, 3, 4, 5))
    t = rng.normal(size=(2, 3, 4, 5))
    ls = _np_log_softmax(s, axis=1)
    lt = _np_log_softmax(t, axis=1)
    expected = (np.exp(lt) * (lt - ls)).sum(axis=1).mean()
    assert kd_kl_loss(_t(s), _t(t)).item() == pytest.approx(expected, abs=1e-9)


def test_cosine_distill_loss_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    s = rng.normal(size=(5, 2, 3))
    t = rng.normal(size=(5, 6))
    sf = s.reshape(5, -1)
    cos = (sf * t).sum(1) / (np.linalg.norm(sf, axis=1) * np.linalg.norm(t, axis=1))
    st = _t(s, grad=True)
    tt = _t(t, grad=True)
    got = cosine_distill_loss(st, tt)
    assert got.item() == pytest.approx(1 - cos.mean(), abs=1e-9)
    got.backward()
    assert tt.grad is None and st.grad is not None
    assert cosine_distill_loss(_t(t), _t(2 * t)).item() == pytest.approx(0.0, abs=1e-12)


def _np_attention_kl(t: np.ndarray, s: np.ndarray, mask: np.ndarray) -> float:
    mask = np.broadcast_to(mask, t.shape)
    lead = t.shape[:-1]
    total, rows = 0.0, 0
    for idx in np.ndindex(*lead):
        valid = mask[idx]
        if not valid.any():
            continue
        lt = _np_log_softmax(t[idx][valid])
        ls = _np_log_softmax(s[idx][valid])
        total += float((np.exp(lt) * (lt - ls)).sum())
        rows += 1
    return total / rows


def test_attention_kl_loss_with_mask_matches_numpy() -> None:
    rng = np.random.default_rng(8)
    t = rng.normal(size=(2, 3, 4, 6)) * 2  # (B, heads, Lq, Lk)
    s = rng.normal(size=(2, 3, 4, 6)) * 2
    mask = rng.random(size=(2, 1, 4, 6)) > 0.4
    mask[0, 0, 1, :] = False  # a row without any valid key is ignored
    mask[1, 0, 2, :] = True
    st = _t(s, grad=True)
    got = attention_kl_loss(_t(t), st, torch.tensor(mask))
    assert got.item() == pytest.approx(_np_attention_kl(t, s, mask), abs=1e-9)
    got.backward()
    assert torch.isfinite(st.grad).all()
    # scores of invalid keys do not matter and receive no gradient
    assert (st.grad[torch.tensor(np.broadcast_to(~mask, s.shape).copy())] == 0).all()
    s2 = s.copy()
    s2[np.broadcast_to(~mask, s.shape)] = 100.0
    assert attention_kl_loss(_t(t), _t(s2), torch.tensor(mask)).item() == pytest.approx(got.item(), abs=1e-12)


def test_attention_kl_loss_without_mask_and_all_masked() -> None:
    rng = np.random.default_rng(9)
    t = rng.normal(size=(3, 5, 5))
    s = rng.normal(size=(3, 5, 5))
    full = np.ones((5,), dtype=bool)
    assert attention_kl_loss(_t(t), _t(s)).item() == pytest.approx(_np_attention_kl(t, s, full), abs=1e-9)
    st = _t(s, grad=True)
    teacher = _t(t, grad=True)
    none_valid = attention_kl_loss(teacher, st, torch.zeros(5, dtype=torch.bool))
    assert none_valid.item() == 0.0
    none_valid.backward()
    assert teacher.grad is None


# ----------------------------------------------------------------------------- focal


def test_focal_loss_reduces_to_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g) * 3
    targets = torch.randint(0, 5, (16,), generator=g)
    # per-sample values are bit-identical; the batch mean may differ in summation order only
    none = focal_loss(logits, targets, alpha=None, gamma=0.0, reduction="none")
    assert torch.equal(none, F.cross_entropy(logits, targets, reduction="none"))
    got = focal_loss(logits, targets, alpha=None, gamma=0.0)
    torch.testing.assert_close(got, F.cross_entropy(logits, targets), rtol=1e-6, atol=0.0)
    got64 = focal_loss(logits.double(), targets, alpha=None, gamma=0.0)
    torch.testing.assert_close(got64, F.cross_entropy(logits.double(), targets), rtol=1e-14, atol=0.0)


def _np_focal(logits: np.ndarray, y: np.ndarray, alpha_per_class: np.ndarray | None, gamma: float) -> np.ndarray:
    lp = _np_log_softmax(logits)[np.arange(len(y)), y]
    a = np.ones(len(y)) if alpha_per_class is None else alpha_per_class[y]
    return -a * (1 - np.exp(lp)) ** gamma * lp


def test_focal_loss_is_the_reference_formula_by_hand() -> None:
    """ITCFN reference: FL = −α (1 − p_y)^γ log p_y with one α for every sample, whatever its class.
    Two samples, logits [0, ln 3] (p = [1/4, 3/4]): class 1 → −0.25·(1/4)²·ln(3/4); class 0 →
    −0.25·(3/4)²·ln(1/4)."""
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    hand = [-0.25 * (1 / 4) ** 2 * math.log(3 / 4), -0.25 * (3 / 4) ** 2 * math.log(1 / 4)]
    per = focal_loss(logits, y, alpha=0.25, gamma=2.0, reduction="none")
    assert per.tolist() == pytest.approx(hand, rel=1e-12)
    assert focal_loss(logits, y).item() == pytest.approx(sum(hand) / 2, rel=1e-12)  # defaults α 0.25, γ 2
    # the class-weighted variant gives class 0 the weight 1 − α instead
    weighted = class_weighted_focal_loss(logits, y, alpha=0.25, gamma=2.0, reduction="none")
    assert weighted.tolist() == pytest.approx([hand[0], hand[1] * 0.75 / 0.25], rel=1e-12)
    with pytest.raises(ValueError, match="class_weighted_focal_loss"):
        focal_loss(logits, y, alpha=[0.25, 0.75])


@pytest.mark.parametrize(
    "n_classes,alpha,alpha_np",
    [
        (2, 0.25, np.array([0.75, 0.25])),
        (4, 0.25, np.full(4, 0.25)),
        (3, [0.2, 0.5, 1.3], np.array([0.2, 0.5, 1.3])),
        (3, None, None),
    ],
)
def test_class_weighted_focal_loss_matches_numpy(n_classes: int, alpha: object, alpha_np: np.ndarray | None) -> None:
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(12, n_classes)) * 2
    y = rng.integers(0, n_classes, size=12)
    expected = _np_focal(logits, y, alpha_np, gamma=2.0)
    lt = _t(logits, grad=True)
    yt = torch.tensor(y)
    per = class_weighted_focal_loss(lt, yt, alpha=alpha, gamma=2.0, reduction="none")
    np.testing.assert_allclose(per.detach().numpy(), expected, atol=1e-9)
    assert class_weighted_focal_loss(lt, yt, alpha=alpha).item() == pytest.approx(expected.mean(), abs=1e-9)
    total = class_weighted_focal_loss(lt, yt, alpha=alpha, reduction="sum")
    assert total.item() == pytest.approx(expected.sum(), abs=1e-9)
    total.backward()
    assert torch.isfinite(lt.grad).all()


@pytest.mark.parametrize("n_classes", [2, 4])
def test_focal_loss_alpha_scales_every_sample(n_classes: int) -> None:
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(12, n_classes)) * 2
    y = rng.integers(0, n_classes, size=12)
    expected = _np_focal(logits, y, np.full(n_classes, 0.25), gamma=2.0)
    per = focal_loss(_t(logits), torch.tensor(y), alpha=0.25, gamma=2.0, reduction="none")
    np.testing.assert_allclose(per.numpy(), expected, atol=1e-12)


def test_focal_loss_down_weights_easy_examples_and_validates() -> None:
    logits = torch.tensor([[5.0, -5.0], [0.1, 0.0]])
    y = torch.tensor([0, 0])
    per = focal_loss(logits, y, alpha=None, gamma=2.0, reduction="none")
    ce = F.cross_entropy(logits, y, reduction="none")
    assert (per < ce).all()
    assert per[0] / ce[0] < per[1] / ce[1]
    with pytest.raises(ValueError):
        class_weighted_focal_loss(logits, y, alpha=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        focal_loss(logits, y, reduction="avg")


# ----------------------------------------------------------------------------- SDM


def _np_sdm(a: np.ndarray, b: np.ndarray, y: np.ndarray, tau: float, eps: float) -> float:
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    sim = an @ bn.T
    same = (y[:, None] == y[None, :]).astype(float)
    q = same / same.sum(axis=1, keepdims=True)
    total = 0.0
    for logits in (tau * sim, tau * sim.T):
        lp = _np_log_softmax(logits)
        total += (np.exp(lp) * (lp - np.log(q + eps))).sum(axis=1).mean()
    return float(total)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdm_loss_matches_numpy_and_is_nonnegative(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(9, 6))
    b = rng.normal(size=(9, 6))
    y = rng.integers(0, 3, size=9)
    tau = [2.0, 0.5, 10.0][seed]
    got = sdm_loss(_t(a), _t(b), torch.tensor(y), tau=tau)
    assert got.item() == pytest.approx(_np_sdm(a, b, y, tau, 1e-8), abs=1e-6)
    assert got.item() >= 0
    swapped = sdm_loss(_t(b), _t(a), torch.tensor(y), tau=tau)
    assert swapped.item() == pytest.approx(got.item(), abs=1e-10)


def test_sdm_loss_gradients_flow_to_both() -> None:
    a = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    sdm_loss(a, b, torch.tensor([0, 0, 1, 1, 2, 2])).backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- survival


def _np_survival_nll(logits: np.ndarray, y: np.ndarray, c: np.ndarray, alpha: float, eps: float) -> float:
    total = 0.0
    for i in range(logits.shape[0]):
        h = 1 / (1 + np.exp(-logits[i]))
        s = [1.0]
        for k in range(len(h)):
            s.append(s[-1] * (1 - h[k]))
        unc = -(1 - c[i]) * (np.log(max(s[y[i]], eps)) + np.log(max(h[y[i]], eps)))
        cen = -c[i] * np.log(max(s[y[i] + 1], eps))
        total += (1 - alpha) * (unc + cen) + alpha * unc
    return total / logits.shape[0]


@pytest.mark.parametrize("alpha", [0.0, 0.4])
@pytest.mark.parametrize("censoring", ["mixed", "none", "all"])
def test_discrete_survival_nll_matches_numpy(alpha: float, censoring: str) -> None:
    rng = np.random.default_rng(11)
    b, k = 10, 4
    logits = rng.normal(size=(b, k)) * 2
    y = rng.integers(0, k, size=b)
    y[:2] = [0, k - 1]  # both boundary bins
    c = {"mixed": rng.integers(0, 2, size=b), "none": np.zeros(b), "all": np.ones(b)}[censoring]
    c = c.astype(float)
    lt = _t(logits, grad=True)
    got = discrete_survival_nll(lt, torch.tensor(y), torch.tensor(c), alpha=alpha)
    assert got.item() == pytest.approx(_np_survival_nll(logits, y, c, alpha, 1e-7), abs=1e-6)
    got.backward()
    assert torch.isfinite(lt.grad).all()


def test_discrete_survival_nll_eps_clamp_and_bad_bins() -> None:
    logits = torch.tensor([[-40.0, 40.0, 40.0]], dtype=torch.float64)  # h_0 ≈ 0, S after bin 1 ≈ 0
    got = discrete_survival_nll(logits, torch.tensor([0]), torch.tensor([0.0]))
    assert got.item() == pytest.approx(-math.log(1e-7), rel=1e-6)
    got = discrete_survival_nll(logits, torch.tensor([2]), torch.tensor([1.0]))
    assert got.item() == pytest.approx(-math.log(1e-7), rel=1e-6)
    got = discrete_survival_nll(logits, torch.tensor([2]), torch.tensor([0.0]))  # S_padded[2] ≈ 0
    assert got.item() == pytest.approx(-math.log(1e-7), rel=1e-6)
    with pytest.raises(ValueError):
        discrete_survival_nll(logits, torch.tensor([3]), torch.tensor([0.0]))


def test_survival_curve_and_risk() -> None:
    rng = np.random.default_rng(12)
    logits = rng.normal(size=(5, 4))
    h = 1 / (1 + np.exp(-logits))
    s = np.cumprod(1 - h, axis=1)
    np.testing.assert_allclose(survival_curve(_t(logits)).numpy(), s, atol=1e-12)
    np.testing.assert_allclose(survival_risk(_t(logits)).numpy(), -s.sum(axis=1), atol=1e-12)
    # larger hazards -> higher risk
    assert survival_risk(_t(logits + 1.0)).gt(survival_risk(_t(logits))).all()


def _np_cox(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    terms = []
    for i in range(len(risk)):
        if not event[i]:
            continue
        denom = sum(math.exp(risk[j]) for j in range(len(risk)) if time[j] >= time[i])
        terms.append(-(risk[i] - math.log(denom)))
    return float(np.mean(terms))


@pytest.mark.parametrize("ties", [False, True])
def test_cox_ph_loss_matches_numpy(ties: bool) -> None:
    rng = np.random.default_rng(13)
    n = 12
    risk = rng.normal(size=n)
    time = rng.integers(1, 5, size=n).astype(float) if ties else rng.permutation(n).astype(float) + 0.5
    event = rng.random(n) < 0.6
    event[0] = True
    rt = _t(risk, grad=True)
    got = cox_ph_loss(rt, torch.tensor(time), torch.tensor(event))
    assert got.item() == pytest.approx(_np_cox(risk, time, event), abs=1e-9)
    got.backward()
    assert torch.isfinite(rt.grad).all()


def test_cox_ph_loss_ordering_and_no_events() -> None:
    time = torch.arange(1.0, 9.0)
    event = torch.ones(8, dtype=torch.bool)
    ordered = -time  # earliest event has the highest risk
    assert cox_ph_loss(ordered, time, event) < cox_ph_loss(-ordered, time, event)
    risk = torch.randn(8, requires_grad=True)
    zero = cox_ph_loss(risk, time, torch.zeros(8, dtype=torch.bool))
    assert zero.item() == 0.0 and zero.requires_grad
    zero.backward()
    plain = cox_ph_loss(torch.randn(8), time, torch.zeros(8))
    assert plain.item() == 0.0 and plain.requires_grad


# ----------------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_losses_run_on_cuda() -> None:
    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    cases = {
        "mad": (mad_loss, (r(4, 6), r(4, 6), r(4, 3))),
        "mad_spatial": (mad_loss_spatial, (r(2, 3, 8, 8, 8), r(2, 3, 8, 8, 8), r(2, 4, 8, 8, 8))),
        "kd": (kd_kl_loss, (r(4, 5), r(4, 5))),
        "cos": (cosine_distill_loss, (r(4, 5), r(4, 5))),
        "att": (attention_kl_loss, (r(2, 3, 4), r(2, 3, 4), torch.rand(2, 1, 4, generator=g) > 0.3)),
        "focal": (focal_loss, (r(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]))),
        "sdm": (sdm_loss, (r(6, 4), r(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]))),
        "nll": (discrete_survival_nll, (r(5, 4), torch.tensor([0, 1, 2, 3, 1]), torch.tensor([0.0, 1, 0, 1, 0]))),
        "cox": (cox_ph_loss, (r(6), torch.arange(6.0), torch.tensor([1, 0, 1, 1, 0, 1]))),
    }
    for name, (fn, args) in cases.items():
        cpu = fn(*args)
        gpu = fn(*(a.to(dev) for a in args))
        assert gpu.device.type == "cuda", name
        assert gpu.item() == pytest.approx(cpu.item(), abs=1e-9), name
