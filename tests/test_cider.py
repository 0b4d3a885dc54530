"""CIDer's building blocks on hand-built inputs with known answers: MCT branch masks, WSAM
masks, the causal module, bias-word mining, counterfactual text, RMFM filling and MSSD losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustmm.data.batch import Batch, ModalitySpec, collate
from robustmm.methods.cider.layers import (BRANCHES, MODALITY_LETTERS, CompositeAttention, CompositeTransformer,
                                           WordAlignedAttention, masked_softmax)
from robustmm.methods.cider.maci import best_tau, mine_bias_words, reference_cv_classes
from robustmm.methods.cider.mssd import (MSSDModule, TwoStepData, attention_loss, reconstruction_loss,
                                         representation_loss)
from robustmm.methods.cider.network import MASK_TOKEN_ID, CausalModule, CIDerNet
from robustmm.missing.scenarios import RMFM

CLS, SEP, UNK, PAD = 101, 102, 100, 0


# ---------------------------------------------------------------- MCT
def _branch_weights(key_valid: torch.Tensor, lengths=(3, 3, 3), heads: int = 2):
    torch.manual_seed(0)
    attn = CompositeAttention(dim=8, heads=heads)
    modality_of = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    x = torch.randn(key_valid.shape[0], sum(lengths), 8)
    out, scores, weights = attn(x, modality_of, key_valid, return_branch_weights=True)
    return modality_of, out, scores, weights, attn, x


def test_a_token_in_branch_a_attends_only_to_audio_tokens() -> None:
    key_valid = torch.ones(2, 9, dtype=torch.bool)
    key_valid[1, 5] = False  # one padded audio frame in the second sample
    modality_of, _, _, weights, _, _ = _branch_weights(key_valid)
    w = weights["A"]  # (B, H, N, N)
    audio = modality_of == MODALITY_LETTERS.index("A")
    # audio queries: all their weight on real audio keys, none on text or vision
    assert torch.all(w[:, :, audio][..., ~audio] == 0)
    assert torch.allclose(w[:, :, audio].sum(-1), torch.ones(2, 2, int(audio.sum())))
    assert torch.all(w[1, :, :, 5] == 0)  # the padded audio frame gets nothing
    assert torch.all(w[1, :, audio][..., torch.tensor([3, 4])] > 0)
    # text and vision queries take no part in branch A
    assert torch.all(w[:, :, ~audio] == 0)


def test_every_branch_mask() -> None:
    key_valid = torch.ones(2, 9, dtype=torch.bool)
    key_valid[0, 8] = False
    modality_of, _, _, weights, _, _ = _branch_weights(key_valid)
    assert set(weights) == set(BRANCHES) and len(BRANCHES) == 7
    for branch, w in weights.items():
        inside = torch.tensor([MODALITY_LETTERS[int(i)] in branch for i in modality_of])
        allowed = inside[:, None] & inside[None, :] & key_valid[:, None, :]  # (B, N, N)
        assert torch.all(w[~allowed.unsqueeze(1).expand_as(w)] == 0), branch
        assert torch.all(w[allowed.unsqueeze(1).expand_as(w)] > 0), branch
        rows = w.sum(-1)  # (B, H, N): 1 for the branch's queries, 0 for the others
        assert torch.allclose(rows[:, :, inside], torch.ones_like(rows[:, :, inside])), branch
        assert torch.all(rows[:, :, ~inside] == 0), branch


def test_raw_scores_and_modality_outputs_use_the_right_branches() -> None:
    key_valid = torch.ones(1, 9, dtype=torch.bool)
    modality_of, out, scores, _, attn, x = _branch_weights(key_valid)
    q, k, _ = attn.qkv(x).view(1, 9, 3, 2, 4).permute(2, 0, 3, 1, 4)
    torch.testing.assert_close(scores, q @ k.transpose(-2, -1) / 2.0)  # sqrt(head_dim = 4)
    # perturbing the vision tokens cannot change an audio token's A-only branch, but its
    # output (which mixes LAV, LA, AV and A) does change
    x2 = x.clone()
    x2[:, 6:] += 1.0
    _, _, w2 = attn(x2, modality_of, key_valid, return_branch_weights=True)
    _, _, w1 = attn(x, modality_of, key_valid, return_branch_weights=True)
    torch.testing.assert_close(w2["A"], w1["A"])
    assert not torch.allclose(w2["AV"], w1["AV"])


def test_mct_returns_one_score_map_per_layer_and_ignores_padding() -> None:
    torch.manual_seed(0)
    mct = CompositeTransformer(dim=8, heads=2, layers=3, dropout=0.0).eval()
    seqs = [torch.randn(2, 4, 8) for _ in range(3)]
    valid = [torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)] * 3
    outs, scores, weights = mct(seqs, valid, return_branch_weights=True)
    assert [o.shape for o in outs] == [(2, 4, 8)] * 3
    assert len(scores) == 3 and scores[-1].shape == (2, 2, 12, 12)
    for layer in weights:
        for w in layer.values():
            assert torch.all(w[0, :, :, [3, 7, 11]] == 0)  # padded keys of sample 0
    # padding content does not leak into real positions
    seqs2 = [s.clone() for s in seqs]
    for s in seqs2:
        s[0, 3] = 100.0
    outs2, _, _ = mct(seqs2, valid)
    for a, b in zip(outs, outs2):
        torch.testing.assert_close(a[0, :3], b[0, :3])


def test_masked_softmax_formula() -> None:
    s = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    m = torch.tensor([[True, False, True], [False, False, False]])
    out = masked_softmax(s, m)
    e1, e3 = math.exp(1.0), math.exp(3.0)
    torch.testing.assert_close(out[0], torch.tensor([e1 / (e1 + e3), 0.0, e3 / (e1 + e3)]))
    assert torch.all(out[1] == 0)  # a row without allowed keys contributes nothing


# ---------------------------------------------------------------- WSAM
def test_wsam_masks_cls_row_sep_query_and_padding() -> None:
    torch.manual_seed(0)
    wsam = WordAlignedAttention(8)
    text_valid = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)  # [SEP] at 3 and 5
    audio_valid = torch.zeros(2, 10, dtype=torch.bool)
    audio_valid[0, :7] = True
    audio_valid[1, :10] = True
    out, w = wsam(torch.randn(2, 6, 8), torch.randn(2, 10, 8), text_valid, audio_valid, return_weights=True)
    assert out.shape == (2, 6, 8)  # audio resampled to the text length
    assert torch.all(w[:, 0] == 0)                       # [CLS] row
    assert torch.all(w[0, 3] == 0) and torch.all(w[1, 5] == 0)  # [SEP] queries
    assert torch.all(w[0, 4:] == 0)                      # text padding
    assert torch.all(w[0, :, 7:] == 0)                   # audio padding
    torch.testing.assert_close(w[0, 1:3].sum(-1), torch.ones(2))
    torch.testing.assert_close(w[1, 1:5].sum(-1), torch.ones(4))
    # rows without attention output W_o . 0 = the output bias
    torch.testing.assert_close(out[:, 0], wsam.out.bias.expand(2, -1))


# ---------------------------------------------------------------- MCM
def test_causal_module_training_and_evaluation_adjustment() -> None:
    torch.manual_seed(0)
    mcm = CausalModule(rep_dim=6, dim=4, feature_dims={"text": 3, "audio": 2, "vision": 2}, num_classes=3)
    mcm.priors.copy_(torch.tensor([0.5, 0.3, 0.2]))
    protos = {"text": torch.randn(3, 3), "audio": torch.randn(3, 2), "vision": torch.randn(3, 2)}
    rep = torch.randn(5, 6)

    def by_hand(proto_rows: dict, prior: torch.Tensor) -> torch.Tensor:
        g = torch.cat([mcm.encoders[m](proto_rows[m]) for m in ("text", "audio", "vision")], -1)
        probs = sum(prior[i] * torch.softmax(mcm.classifiers[i](torch.cat([rep, g[i].expand(5, -1)], -1)), -1)
                    for i in range(3))
        return torch.log(probs)

    mcm.train()
    torch.testing.assert_close(mcm(rep, protos), by_hand(protos, mcm.priors))
    mcm.eval()  # mean prototype for every i, uniform prior: the training label prior is gone
    mean = {m: p.mean(0, keepdim=True).expand_as(p) for m, p in protos.items()}
    evaluated = mcm(rep, protos)
    torch.testing.assert_close(evaluated, by_hand(mean, torch.full((3,), 1 / 3)))
    torch.testing.assert_close(evaluated.exp().sum(-1), torch.ones(5))


# ---------------------------------------------------------------- MACI
def test_bias_word_mining_by_hand() -> None:
    # three classes; rows: tokens, labels
    ids = np.array([
        [CLS, 7, 8, 9, SEP, PAD],
        [CLS, 7, 8, 7, SEP, PAD],
        [CLS, 8, 9, SEP, PAD, PAD],
        [CLS, 8, 11, SEP, PAD, PAD],
        [CLS, 9, UNK, 103, SEP, PAD],
    ])
    valid = ids != PAD
    labels = np.array([0, 0, 1, 2, 2])
    words = mine_bias_words(ids, valid, labels, num_classes=3, cv_threshold=0.1, top_k=100)
    # counts per class: 7 -> (3, 0, 0), cv = std/mean = 1.414/1 = 1.414
    #                   8 -> (2, 1, 1), cv = 0.471/1.333 = 0.354
    #                   9 -> (1, 1, 1), cv = 0 (dropped)
    #                  11 -> (0, 0, 1), cv = 1.414
    # special ids ([CLS], [SEP], [PAD], [UNK], [MASK]) are never counted
    assert words.ids == [8, 7, 11]  # most frequent first: 8 occurs 4 times, 7 three times, 11 once
    assert words.counts[7] == [3, 0, 0] and words.counts[8] == [2, 1, 1]
    assert words.cv[8] == pytest.approx(np.std([2, 1, 1]) / np.mean([2, 1, 1]))
    assert mine_bias_words(ids, valid, labels, 3, cv_threshold=0.4).ids == [7, 11]
    assert mine_bias_words(ids, valid, labels, 3, top_k=1).ids == [8]
    # equal counts are ordered by token id, so the dictionary is reproducible
    assert mine_bias_words(ids[:, :3], valid[:, :3], labels, 3, cv_threshold=0.0).ids == [8, 7, 9, 11]  # 7 and 9: twice each
    with pytest.raises(ValueError):
        mine_bias_words(ids, valid, np.array([0, 0, 1, 2, 3]), num_classes=3)


def test_bias_word_mining_reference_classes() -> None:
    """The reference's 3-class CV uses the negative and positive counts only: an evenly used
    word in a cohort with fewer neutral samples is not a bias word, a polar word is."""
    # 4 negative, 2 neutral, 4 positive utterances; word 7 in every one (counts 4, 2, 4), word 8
    # in the positive ones only, word 9 in the neutral ones only
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    ids = np.array([[CLS, 7, 8 if y == 2 else (9 if y == 1 else 20 + i), SEP] for i, y in enumerate(labels)])
    valid = ids != PAD
    every = mine_bias_words(ids, valid, labels, 3)
    # over all three classes: cv(7) = std(4, 2, 4) / mean = 0.943 / 3.333 = 0.283 >= 0.1
    assert 7 in every.ids and every.cv[7] == pytest.approx(np.std([4, 2, 4]) / np.mean([4, 2, 4]))
    polar = mine_bias_words(ids, valid, labels, 3, cv_classes=reference_cv_classes(3))
    assert 7 not in polar.ids  # cv over (4, 4) = 0
    assert polar.ids[0] == 8 and polar.cv[8] == pytest.approx(1.0)  # (0, 4): std 2 / mean 2
    assert 9 not in polar.ids  # never in a negative or positive utterance: skipped
    assert polar.counts[8] == [0, 0, 4]  # counts keep every class
    assert reference_cv_classes(7) is None and reference_cv_classes(2) is None
    with pytest.raises(ValueError):
        mine_bias_words(ids, valid, labels, 3, cv_classes=(0, 3))


def test_best_tau_prefers_the_smallest_of_equal_scores() -> None:
    assert best_tau({0.0: 0.7, 0.5: 0.8, 1.0: 0.8, 1.5: 0.6}) == 0.5
    assert best_tau({0.0: float("nan"), 0.3: 0.1}) == 0.3
    assert best_tau({0.0: float("nan")}) == 0.0


# ---------------------------------------------------------------- inputs: RMFM fill and counterfactual text
def _tiny_batch(text_features: bool) -> tuple[Batch, dict[str, ModalitySpec]]:
    ids = torch.tensor([[CLS, 7, 8, 9, SEP, PAD], [CLS, 8, SEP, PAD, PAD, PAD]])
    valid = ids != PAD
    samples = []
    for i in range(2):
        text = ids[i] if not text_features else torch.arange(1, 19, dtype=torch.float32).view(6, 3) * valid[i, :, None]
        samples.append({"inputs": {"text": text, "audio": torch.ones(6, 2) * valid[i, :, None],
                                   "vision": torch.ones(6, 2) * valid[i, :, None]},
                        "present": {"text": True, "audio": True, "vision": True},
                        "valid": {"text": valid[i], "audio": valid[i].clone(), "vision": valid[i].clone()},
                        "target": i, "meta": {"subject": f"s{i}", "token_ids": ids[i],
                                              "regression_label": float(i)}})
    if text_features:
        text_spec = ModalitySpec("text", "sequence", (6, 3), special_ids=(CLS, SEP))
    else:
        text_spec = ModalitySpec("text", "tokens", (6,), special_ids=(CLS, SEP), unk_id=UNK, pad_id=PAD)
    specs = {"text": text_spec, "audio": ModalitySpec("audio", "sequence", (6, 2)),
             "vision": ModalitySpec("vision", "sequence", (6, 2))}
    return collate(samples), specs


def test_prepare_fills_dropped_positions_and_builds_counterfactual_ids() -> None:
    batch, specs = _tiny_batch(text_features=False)
    net = CIDerNet(specs, num_classes=2, hidden=8, layers=1, heads=2, vocab_size=200)
    net.bias_word_ids = torch.tensor([8])
    observed = batch.valid["text"].clone()
    observed[0, 3] = False  # word 9 of sample 0 dropped
    audio_obs = batch.valid["audio"].clone()
    audio_obs[0, 1] = False
    dropped = batch.with_masks(batch.present, {**batch.feature_mask, "text": observed, "audio": audio_obs})
    inputs = net.prepare(dropped)
    assert inputs.text.tolist() == [[CLS, 7, 8, UNK, SEP, PAD], [CLS, 8, SEP, PAD, PAD, PAD]]
    assert inputs.audio[0, 1].abs().sum() == 0 and inputs.audio[0, 2].abs().sum() > 0
    assert inputs.dropped["text"].tolist()[0] == [False, False, False, True, False, False]
    cf = net.prepare(dropped, counterfactual=True)
    # bias word 8 and special tokens stay; other observed words -> [MASK]; the dropped one stays [UNK]
    assert cf.text.tolist() == [[CLS, MASK_TOKEN_ID, 8, UNK, SEP, PAD], [CLS, 8, SEP, PAD, PAD, PAD]]
    torch.testing.assert_close(cf.audio, inputs.audio)  # audio/vision unchanged


def test_prepare_with_text_features_uses_learned_unknown_and_mask_vectors() -> None:
    batch, specs = _tiny_batch(text_features=True)
    net = CIDerNet(specs, num_classes=2, hidden=8, layers=1, heads=2)
    with torch.no_grad():
        net.unknown_vector.fill_(-1.0)
        net.mask_vector.fill_(-2.0)
    net.bias_word_ids = torch.tensor([8])
    out = RMFM(rate_value=1.0).apply(batch, specs, seed=0)  # every word dropped, [CLS]/[SEP] kept
    inputs = net.prepare(out)
    x = batch.inputs["text"]
    for i, words in ((0, [1, 2, 3]), (1, [1])):
        assert torch.all(inputs.text[i, words] == -1.0)
        real = batch.valid["text"][i]
        ends = real.nonzero().flatten()[[0, -1]]
        torch.testing.assert_close(inputs.text[i, ends], x[i, ends])
        assert torch.all(inputs.text[i, ~real] == 0)  # padding untouched
    cf = net.prepare(batch, counterfactual=True)  # complete text
    assert torch.all(cf.text[0, [1, 3]] == -2.0)  # words 7 and 9 -> mask vector
    torch.testing.assert_close(cf.text[0, 2], x[0, 2])  # bias word 8 kept
    with pytest.raises(KeyError, match="token_ids"):
        net.prepare(Batch(batch.inputs, batch.present, batch.valid, batch.feature_mask, batch.target,
                          {"subject": ["a", "b"]}), counterfactual=True)


# ---------------------------------------------------------------- MSSD
def test_attention_loss_is_the_reference_batchmean_kl() -> None:
    """Reference: F.kl_div(log_softmax(S_m), softmax(S_c), reduction="batchmean") on (B*H, N, N)
    maps = sum over every (map, query row, key) of p_c (log p_c - log p_m), divided by B*H."""
    g = torch.Generator().manual_seed(0)
    b, h, n = 2, 3, 5
    s_c, s_m = torch.randn(b, h, n, n, generator=g), torch.randn(b, h, n, n, generator=g)
    pc = np.exp(s_c.numpy().astype(np.float64))
    pc /= pc.sum(-1, keepdims=True)
    pm = np.exp(s_m.numpy().astype(np.float64))
    pm /= pm.sum(-1, keepdims=True)
    hand = float((pc * (np.log(pc) - np.log(pm))).sum() / (b * h))
    all_keys = torch.ones(b, n, dtype=torch.bool)
    assert float(attention_loss(s_m, s_c, all_keys)) == pytest.approx(hand, rel=1e-5)
    ref = F.kl_div(F.log_softmax(s_m.reshape(b * h, n, n), dim=-1), F.softmax(s_c.reshape(b * h, n, n), dim=-1),
                   reduction="batchmean")
    assert float(attention_loss(s_m, s_c, all_keys)) == pytest.approx(float(ref), rel=1e-5)
    # it is N times the former per-row mean
    rows = (pc * (np.log(pc) - np.log(pm))).sum(-1).mean()
    assert float(attention_loss(s_m, s_c, all_keys)) == pytest.approx(n * rows, rel=1e-5)


def test_mssd_losses_by_hand() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert float(representation_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(representation_loss(a, torch.tensor([[0.0, 1.0], [3.0, 0.0]]))) == pytest.approx(1.0)

    # one head, keys (real, real, padding): teacher row [0, 0] -> (1/2, 1/2); student [ln 3, 0] -> (3/4, 1/4)
    key_valid = torch.tensor([[True, True, False]])
    s_c = torch.zeros(1, 1, 3, 3)
    s_m = torch.zeros(1, 1, 3, 3)
    s_m[..., 0] = math.log(3.0)
    s_m[..., 2] = 50.0  # padding key: ignored
    row = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    # summed over the two real query rows (the padding row adds nothing), divided by B*H = 1
    assert float(attention_loss(s_m, s_c, key_valid)) == pytest.approx(2 * row, rel=1e-5)
    assert float(attention_loss(s_c, s_c, key_valid)) == pytest.approx(0.0, abs=1e-7)

    # reconstruction: only dropped positions count; SmoothL1 of |d| = 0.5 -> 0.125, |d| = 2 -> 1.5
    target = {"audio": torch.zeros(1, 3, 2)}
    recon = {"audio": torch.tensor([[[0.5, 0.5], [2.0, 2.0], [9.0, 9.0]]])}
    dropped = {"audio": torch.tensor([[True, True, False]])}
    assert float(reconstruction_loss(recon, target, dropped)) == pytest.approx((2 * 0.125 + 2 * 1.5) / 4, rel=1e-5)


class _Ctx:
    def __init__(self, step: int, epoch: int = 0) -> None:
        self.step, self.epoch = step, epoch


def test_two_step_training_order() -> None:
    from robustmm.data.base import TaskSpec
    from robustmm.methods.base import MethodContext
    from robustmm.methods.task import task_adapter

    batch, specs = _tiny_batch(text_features=True)

    class Loaders:
        def loader(self, split, shuffle=False, epoch=0, **kw):
            return [batch, batch] if split == "train" else [batch]

    two = TwoStepData(Loaders())
    assert len(list(two.loader("train"))) == 4 and len(list(two.loader("val"))) == 1
    items = list(two.loader("train"))
    assert items[0] is items[1] and items[2] is items[3]

    task = task_adapter(TaskSpec("multiclass", 2))
    ctx = MethodContext("cider", specs, TaskSpec("multiclass", 2), None, None, seed=0)
    net = CIDerNet(specs, num_classes=2, hidden=8, layers=1, heads=2)
    module = MSSDModule(net, task, ctx, RMFM(training=True), 0.5, 0.1, 0.6)
    with pytest.raises(RuntimeError, match="complete step"):
        module.training_step(batch, _Ctx(1))
    loss_complete, parts = module.training_step(batch, _Ctx(0))
    assert parts == {} and loss_complete.requires_grad
    loss_masked, parts = module.training_step(batch, _Ctx(1))
    assert set(parts) == {"task_masked", "rep", "attn", "rec"} and loss_masked.requires_grad
    expected = parts["task_masked"] + 0.5 * parts["rep"] + 0.1 * parts["attn"] + 0.6 * parts["rec"]
    assert float(loss_masked.detach()) == pytest.approx(expected, rel=1e-5)
    plain = MSSDModule(net, task, ctx, RMFM(training=True), 0.5, 0.1, 0.6, distill=False)
    plain.training_step(batch, _Ctx(0))
    assert set(plain.training_step(batch, _Ctx(1))[1]) == {"task_masked"}


def test_contextual_text_reconstruction_target_for_token_ids() -> None:
    """text_recon_target='contextual': the text head reconstructs the complete view's text GRU
    states (width hidden), not the learned token embeddings (width token_dim)."""
    from robustmm.data.base import TaskSpec
    from robustmm.methods.base import MethodContext
    from robustmm.methods.task import task_adapter

    batch, specs = _tiny_batch(text_features=False)
    plain = CIDerNet(specs, num_classes=2, hidden=8, layers=1, heads=2, token_dim=12, vocab_size=200)
    ctxnet = CIDerNet(specs, num_classes=2, hidden=8, layers=1, heads=2, token_dim=12, vocab_size=200,
                      text_recon_target="contextual")
    inputs = ctxnet.prepare(batch)
    out = ctxnet(inputs, reconstruct=True)
    assert out["recon"]["text"].shape[-1] == 8 and plain(plain.prepare(batch), reconstruct=True)["recon"]["text"].shape[-1] == 12
    target = ctxnet.recon_text_target(inputs, out)
    torch.testing.assert_close(target, out["text_context"].detach())
    assert target.shape == (2, 6, 8) and not target.requires_grad
    with pytest.raises(ValueError, match="text_recon_target"):
        CIDerNet(specs, num_classes=2, hidden=8, layers=1, heads=2, vocab_size=200, text_recon_target="bert")
    # the MSSD masked step uses it as the teacher target: its L_rec equals a hand call on the teacher states
    task = task_adapter(TaskSpec("multiclass", 2))
    ctx = MethodContext("cider", specs, TaskSpec("multiclass", 2), None, None, seed=0)
    module = MSSDModule(ctxnet.eval(), task, ctx, RMFM(training=True), 0.5, 0.1, 0.6)
    module.training_step(batch, _Ctx(0))
    torch.testing.assert_close(module._teacher["text"], out["text_context"].detach())
    _, parts = module.training_step(batch, _Ctx(1))
    assert math.isfinite(parts["rec"])


def test_counterfactual_fill_unk_uses_the_trained_missing_word_token() -> None:
    batch, specs = _tiny_batch(text_features=False)
    net = CIDerNet(specs, num_classes=2, hidden=8, layers=1, heads=2, vocab_size=200)
    net.bias_word_ids = torch.tensor([8])
    net.counterfactual_fill = "unk"
    cf = net.prepare(batch, counterfactual=True)
    # words 7 and 9 -> [UNK] (RMFM's fill for dropped words) instead of [MASK]; bias word 8 kept
    assert cf.text.tolist() == [[CLS, UNK, 8, UNK, SEP, PAD], [CLS, 8, SEP, PAD, PAD, PAD]]
    batch_f, specs_f = _tiny_batch(text_features=True)
    netf = CIDerNet(specs_f, num_classes=2, hidden=8, layers=1, heads=2)
    netf.bias_word_ids = torch.tensor([8])
    with torch.no_grad():
        netf.unknown_vector.fill_(-1.0)
        netf.mask_vector.fill_(-2.0)
    netf.counterfactual_fill = "unk"
    assert torch.all(netf.prepare(batch_f, counterfactual=True).text[0, [1, 3]] == -1.0)
