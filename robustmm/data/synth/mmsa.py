"""Synthetic CMU-MOSI/MOSEI-style files in exactly the MMSA pickle layout.

The real MMSA pickles are not redistributable, so loaders, the RMFM engine and the emotion
methods (CIDer's MSSD and MACI) are exercised on files written here. Every sample has a latent
sentiment ``y`` in [-3, 3] (the regression label). Each modality sees its own noisy copy of
it, ``v_m = y + noise_m`` (independent per sample and modality), so every modality carries
partial signal and dropping one hurts without destroying the prediction:

- text ids: a fraction of the words, growing with ``|v_text|``, are drawn from
  :data:`POSITIVE_WORDS` or :data:`NEGATIVE_WORDS` by the sign of ``v_text``; the rest are
  filler ids. ``[CLS]`` (101) first, ``[SEP]`` (102) last, ``[PAD]`` (0) after it.
- text features (BERT-like, (N, L, d_t)): a fixed random embedding per token id, plus
  ``v_text / 3`` times a sentiment direction on every real token, plus noise. Sentiment words'
  embeddings also lean along that direction.
- audio / vision frames: ``v_m / 3`` times a per-modality direction plus frame noise.
- bias words: every utterance contains :data:`N_BIAS_WORDS_PER_SAMPLE` words from
  :data:`BIAS_WORDS_POSITIVE` / :data:`BIAS_WORDS_NEGATIVE`. With probability ``strength``
  a bias word is taken from the pool that matches the sign of the label, otherwise from both
  pools uniformly. ``bias_strength_train`` applies to the train split and
  ``bias_strength_test`` to valid and test, so a model that learns the shortcut in training
  loses accuracy at test time (the language bias MACI removes).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from robustmm.data.base import write_synthetic_marker
from robustmm.data.mmsa import converted_path, save_mmsa_npz

CLS_ID, SEP_ID, PAD_ID, UNK_ID = 101, 102, 0, 100
POSITIVE_WORDS: tuple[int, ...] = tuple(range(2000, 2030))
NEGATIVE_WORDS: tuple[int, ...] = tuple(range(2100, 2130))
BIAS_WORDS_POSITIVE: tuple[int, ...] = tuple(range(2200, 2205))
BIAS_WORDS_NEGATIVE: tuple[int, ...] = tuple(range(2300, 2305))
FILLER_WORDS: tuple[int, ...] = tuple(range(3000, 5000))
N_BIAS_WORDS_PER_SAMPLE = 2
VOCAB_SIZE = 5000  # ids below this get an embedding (covers every id written here)

# Sample-level noise of each modality's view of the label (in label units). Text is the
# strongest modality on MOSI/MOSEI, audio and vision weaker: keep that ordering.
VIEW_NOISE = {"text": 1.0, "audio": 1.6, "vision": 1.6}
NEUTRAL_FRACTION = 0.12  # labels forced to exactly 0.0 on top of the ones rounded to 0


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Labels on MOSI's 0.2 grid (averages of five annotators), clipped to [-3, 3]."""
    y = np.clip(rng.normal(0.0, 1.4, size=n), -3.0, 3.0)
    y = np.round(y * 5.0) / 5.0
    y[rng.random(n) < NEUTRAL_FRACTION] = 0.0
    return (y + 0.0).astype(np.float32)  # + 0.0 turns -0.0 into 0.0


def _bias_word(rng: np.random.Generator, label: float, strength: float) -> int:
    both = BIAS_WORDS_POSITIVE + BIAS_WORDS_NEGATIVE
    if label != 0.0 and rng.random() < strength:
        pool = BIAS_WORDS_POSITIVE if label > 0 else BIAS_WORDS_NEGATIVE
        return int(pool[rng.integers(len(pool))])
    return int(both[rng.integers(len(both))])


def _word_name(token: int) -> str:
    if token in POSITIVE_WORDS:
        return f"good{token - POSITIVE_WORDS[0]}"
    if token in NEGATIVE_WORDS:
        return f"bad{token - NEGATIVE_WORDS[0]}"
    if token in BIAS_WORDS_POSITIVE or token in BIAS_WORDS_NEGATIVE:
        return f"bias{token}"
    return f"w{token}"


def _write_split(
    rng: np.random.Generator,
    tag: str,
    n: int,
    strength: float,
    *,
    aligned: bool,
    seq_len: int,
    audio_len: int,
    vision_len: int,
    dims: tuple[int, int, int],
    embedding: np.ndarray,
    directions: dict[str, np.ndarray],
) -> dict:
    d_t, d_a, d_v = dims
    y = _labels(rng, n)
    views = {m: y + s * rng.normal(size=n).astype(np.float32) for m, s in VIEW_NOISE.items()}

    input_ids = np.zeros((n, seq_len), dtype=np.int64)
    text = np.zeros((n, seq_len, d_t), dtype=np.float32)
    audio = np.zeros((n, audio_len, d_a), dtype=np.float32)
    vision = np.zeros((n, vision_len, d_v), dtype=np.float32)
    audio_lengths = np.zeros(n, dtype=np.int64)
    vision_lengths = np.zeros(n, dtype=np.int64)
    raw_text: list[str] = []
    ids: list[str] = []

    # clips are grouped into videos so the id looks like MMSA's "video$_$clip"
    video, clip = 0, 0
    clips_in_video = int(rng.integers(1, 7))
    for i in range(n):
        if clip >= clips_in_video:
            video, clip, clips_in_video = video + 1, 0, int(rng.integers(1, 7))
        ids.append(f"syn{tag}{video:04d}$_${clip}")
        clip += 1

        n_words = int(rng.integers(min(3, seq_len - 2), seq_len - 2 + 1))
        v_t = float(views["text"][i])
        p_sent = min(0.6, 0.15 * abs(v_t))
        words: list[int] = []
        for _ in range(n_words):
            if v_t != 0.0 and rng.random() < p_sent:
                pool = POSITIVE_WORDS if v_t > 0 else NEGATIVE_WORDS
            else:
                pool = FILLER_WORDS
            words.append(int(pool[rng.integers(len(pool))]))
        for pos in rng.choice(n_words, size=min(N_BIAS_WORDS_PER_SAMPLE, n_words), replace=False):
            words[int(pos)] = _bias_word(rng, float(y[i]), strength)
        tokens = [CLS_ID, *words, SEP_ID]
        n_real = len(tokens)
        input_ids[i, :n_real] = tokens
        raw_text.append(" ".join(_word_name(t) for t in words))

        text[i, :n_real] = (
            embedding[tokens]
            + (v_t / 3.0) * directions["text"]
            + 0.5 * rng.normal(size=(n_real, d_t))
        )

        if aligned:
            # aligned files: one audio/vision frame per token position
            a_n = v_n = n_real
        else:
            a_n = int(rng.integers(max(1, audio_len // 4), audio_len + 1))
            v_n = int(rng.integers(max(1, vision_len // 4), vision_len + 1))
        audio_lengths[i], vision_lengths[i] = a_n, v_n
        audio[i, :a_n] = (float(views["audio"][i]) / 3.0) * directions["audio"] + rng.normal(size=(a_n, d_a))
        vision[i, :v_n] = (float(views["vision"][i]) / 3.0) * directions["vision"] + rng.normal(size=(v_n, d_v))

    attention = (input_ids != PAD_ID).astype(np.int64)
    text_bert = np.stack([input_ids, attention, np.zeros_like(input_ids)], axis=1)
    classification = np.where(y < 0, 0, np.where(y == 0, 1, 2)).astype(np.int64)
    split = {
        "raw_text": raw_text,
        "id": ids,
        "text": text,
        "text_bert": text_bert,
        "audio": audio,
        "vision": vision,
        "regression_labels": y,
        "classification_labels": classification,
    }
    if not aligned:
        split["audio_lengths"] = audio_lengths
        split["vision_lengths"] = vision_lengths
    return split


def write_synthetic_mmsa(
    path: str | Path,
    n_train: int = 300,
    n_valid: int = 80,
    n_test: int = 200,
    aligned: bool = True,
    seq_len: int = 50,
    audio_len: int | None = None,
    vision_len: int | None = None,
    dims: tuple[int, int, int] = (768, 5, 20),
    seed: int = 0,
    bias_strength_train: float = 0.8,
    bias_strength_test: float = 0.0,
) -> Path:
    """Write a synthetic MMSA pickle (keys ``train``/``valid``/``test``) and return its path.

    Aligned files have audio/vision of length ``seq_len`` and no ``*_lengths`` keys; unaligned
    files default to MOSI's lengths (375 audio, 500 vision frames) and write
    ``audio_lengths``/``vision_lengths``. A ``<stem>.README.md`` describing the planted signal
    and the folder's synthetic-data marker are written next to the file.
    """
    path = Path(path)
    if seq_len < 3:
        raise ValueError(f"seq_len must be >= 3 to hold [CLS], one word and [SEP], got {seq_len}")
    for name, s in (("bias_strength_train", bias_strength_train), ("bias_strength_test", bias_strength_test)):
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {s}")
    if aligned:
        audio_len = seq_len if audio_len is None else audio_len
        vision_len = seq_len if vision_len is None else vision_len
        if audio_len != seq_len or vision_len != seq_len:
            raise ValueError("aligned files have audio_len == vision_len == seq_len")
    else:
        audio_len = 375 if audio_len is None else audio_len
        vision_len = 500 if vision_len is None else vision_len
    d_t, d_a, d_v = dims

    rng = np.random.default_rng(seed)
    directions = {
        "text": rng.normal(size=d_t).astype(np.float32),
        "audio": 2.0 * rng.normal(size=d_a).astype(np.float32),
        "vision": 2.0 * rng.normal(size=d_v).astype(np.float32),
    }
    embedding = rng.normal(size=(VOCAB_SIZE, d_t)).astype(np.float32)
    embedding[list(POSITIVE_WORDS)] += directions["text"]
    embedding[list(NEGATIVE_WORDS)] -= directions["text"]

    common = dict(aligned=aligned, seq_len=seq_len, audio_len=audio_len, vision_len=vision_len,
                  dims=(d_t, d_a, d_v), embedding=embedding, directions=directions)
    data = {
        "train": _write_split(rng, "tr", n_train, bias_strength_train, **common),
        "valid": _write_split(rng, "va", n_valid, bias_strength_test, **common),
        "test": _write_split(rng, "te", n_test, bias_strength_test, **common),
    }

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    save_mmsa_npz(data, converted_path(path), source=path)  # the safe copy loaders read (no unpickling)

    details = dict(file=path.name, seed=seed, aligned=aligned, seq_len=seq_len, audio_len=audio_len,
                   vision_len=vision_len, dims=[d_t, d_a, d_v], n=[n_train, n_valid, n_test],
                   bias_strength_train=bias_strength_train, bias_strength_test=bias_strength_test)
    (path.parent / f"{path.stem}.README.md").write_text(_readme(details))
    write_synthetic_marker(path.parent, "robustmm.data.synth.mmsa.write_synthetic_mmsa", **details)
    return path


def _readme(d: dict) -> str:
    layout = "aligned (audio/vision one frame per token, no *_lengths keys)" if d["aligned"] else (
        f"unaligned (audio {d['audio_len']} frames, vision {d['vision_len']} frames, real lengths in "
        "audio_lengths / vision_lengths, zero padding after them)")
    return f"""# SYNTHETIC DATA: {d['file']}

Written by `robustmm.data.synth.mmsa.write_synthetic_mmsa` (seed {d['seed']}). Not real
CMU-MOSI/MOSEI data: numbers obtained on it say nothing about real emotion recognition.

Layout: the MMSA pickle format (`train` / `valid` / `test`, each with `raw_text`, `id`,
`text` float32 (N, {d['seq_len']}, {d['dims'][0]}), `text_bert` int64 (N, 3, {d['seq_len']}),
`audio` float32 (N, T_a, {d['dims'][1]}), `vision` float32 (N, T_v, {d['dims'][2]}),
`regression_labels` float32 (N,), `classification_labels` int64 (N,) 0 neg / 1 neutral / 2 pos).
Layout here: {layout}. Split sizes train/valid/test: {d['n'][0]} / {d['n'][1]} / {d['n'][2]}.

## Planted signal
- Label `y`: N(0, 1.4) clipped to [-3, 3], rounded to multiples of 0.2; about
  {NEUTRAL_FRACTION:.0%} more are set to exactly 0.0 (neutral).
- Each modality m sees `v_m = y + noise`, noise std text {VIEW_NOISE['text']}, audio
  {VIEW_NOISE['audio']}, vision {VIEW_NOISE['vision']} (independent per sample and modality):
  each modality alone is a partial, noisy predictor; together they are better.
- Text ids: `[CLS]`=101 first, `[SEP]`=102 last real token, `[PAD]`=0 after. Each word is a
  sentiment word with probability min(0.6, 0.15·|v_text|): positive ids
  {POSITIVE_WORDS[0]}–{POSITIVE_WORDS[-1]} when v_text > 0, negative ids
  {NEGATIVE_WORDS[0]}–{NEGATIVE_WORDS[-1]} when v_text < 0; other words are filler ids
  {FILLER_WORDS[0]}–{FILLER_WORDS[-1]}.
- Text features: fixed random embedding of the token id (sentiment words shifted along a
  sentiment direction) + (v_text/3)·direction on every real token + N(0, 0.5²) noise; padding 0.
- Audio / vision: every real frame is (v_m/3)·direction_m + N(0, 1) noise; padding 0.

## Planted language bias
Each utterance has {N_BIAS_WORDS_PER_SAMPLE} bias words, ids {BIAS_WORDS_POSITIVE[0]}–{BIAS_WORDS_POSITIVE[-1]}
("positive" pool) and {BIAS_WORDS_NEGATIVE[0]}–{BIAS_WORDS_NEGATIVE[-1]} ("negative" pool). With
probability `strength` a bias word comes from the pool matching the label's sign (for y != 0),
otherwise uniformly from both pools. strength = {d['bias_strength_train']} in train,
{d['bias_strength_test']} in valid and test. A model that uses these words as a shortcut in
training loses accuracy at test time; MACI's bias-word mining should find them.
"""
