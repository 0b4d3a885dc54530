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
  pools uniformly. ``bias_strength_train`` applies to the train split (and to valid, which is
  in-distribution) and ``bias_strength_test`` to test, so a model that learns the shortcut in
  training loses accuracy at test time (the language bias MACI removes).

Mechanism knobs (``data.synthetic`` keys of ``data.kind: mmsa``; version 2 of the generator):

- ``validation`` ("in_distribution" | "shifted", default "in_distribution"): the valid split is
  drawn like train (bias strength and shortcut words of train), so early stopping and
  validation-chosen settings do not see the test shift; "shifted" draws it like test (what
  version 1 did for every file).
- ``shortcut_words`` ("every_split" | "train_only", default "every_split"): with "train_only" the
  bias words appear only in in-distribution splits (train, and valid unless ``validation:
  shifted``); test utterances keep their ordinary words in those slots, so the shortcut is absent
  at test rather than uncorrelated.
- ``bias_strength_train`` / ``bias_strength_test`` (0..1): how often a bias word matches the
  label's sign (see above); ``bias_words_per_sample`` (default 2) and ``sentiment_word_rate``
  (default 0.15: a word is a real sentiment word with probability
  min(0.6, rate * |v_text|)) set the shortcut's strength relative to the real sentiment words.
- ``signal_fraction`` (per modality, 0 < f <= 1, default 1 for text/audio/vision): fraction of a
  sample's real positions (tokens of the text *features*, audio/vision frames) that carry its
  sentiment view, amplitude scaled by 1/sqrt(f) so complete data hold the same information. With
  f = 1 every frame carries the signal and it survives heavy RMFM feature dropout; with small f
  it sits in a few frames and dropout removes it. Token ids carry text sentiment through
  sentiment words (``sentiment_word_rate``), which RMFM drops one by one.
- ``view_noise`` (per modality, default text 1.0, audio 1.6, vision 1.6): noise sd of each
  modality's view of the label (the strength of each modality).
- ``sentiment_vocab`` (default 30, at most 100): sentiment words per polarity (positive ids
  2000..2000+k-1, negative 2100..2100+k-1). A larger vocabulary makes each word rarer, so a
  network that learns token ids from scratch learns each word's polarity from fewer labels.
- ``word_echo`` (audio / vision, default 0; aligned files only): the frame aligned with a
  sentiment word also carries that word's polarity, ``echo * (+1 | -1) * echo_direction_m``
  (:func:`echo_directions`: orthogonal to the modality's sentiment direction, same norm). A word dropped by RMFM is then recoverable from its aligned
  frame and vice versa: cross-modal, position-level redundancy of a *discrete* token's meaning,
  which MSSD's reconstruction and representation targets can teach the text pathway.
- ``label_flip`` (0 <= q < 0.5, default 0): the written train and valid labels have their sign
  flipped with probability q (magnitude and neutral labels kept; the inputs carry the latent
  label); test labels are the latent ones. Drawn from its own stream, so the inputs are those
  of ``label_flip = 0``.

With every knob at its default the files are byte-identical to version 2 (the new knobs draw
nothing from the main stream), so the version stays 2. The oracle ceilings below model neither
``word_echo`` nor ``label_flip`` (they understate the audio ceiling with an echo).

Oracle ceilings (:func:`oracle_ceilings`, in ``SYNTHETIC_DATA.json`` under ``oracle``):
Non0_acc_2 of a logistic regression on each modality's read-out of the planted signal (text:
signed count of surviving sentiment words, as with ``text_mode: ids``; audio/vision: the
modality's view measured on its surviving signal frames), fitted on 20 000 simulated
train-split samples and scored on 20 000 test-split samples; per modality subset, under RMFM
rates, and with / without the bias-word shortcut.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np

from robustmm.data.base import SYNTHETIC_MARKER, write_synthetic_marker
from robustmm.data.mmsa import converted_path, save_mmsa_npz
from robustmm.io import create_folder, replace_synced

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
GENERATOR_VERSION = 2  # 2: valid split in-distribution by default (1: valid drawn like test)
MODALITIES = ("text", "audio", "vision")
KNOB_DEFAULTS: dict = {
    "validation": "in_distribution", "shortcut_words": "every_split", "bias_words_per_sample": N_BIAS_WORDS_PER_SAMPLE,
    "sentiment_word_rate": 0.15, "signal_fraction": {m: 1.0 for m in MODALITIES}, "view_noise": dict(VIEW_NOISE),
    "label_flip": 0.0, "word_echo": {m: 0.0 for m in ("audio", "vision")}, "sentiment_vocab": len(POSITIVE_WORDS),
}
MAX_SENTIMENT_VOCAB = 100  # ids 2000-2099 positive, 2100-2199 negative (below the bias words)


def sentiment_pools(vocab: int = len(POSITIVE_WORDS)) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The positive and negative sentiment-word ids of a file written with ``sentiment_vocab``."""
    return (tuple(range(POSITIVE_WORDS[0], POSITIVE_WORDS[0] + vocab)),
            tuple(range(NEGATIVE_WORDS[0], NEGATIVE_WORDS[0] + vocab)))
LABEL_FLIP_STREAM = 7211  # seeds the label-flip streams ([seed, this, split])
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
    if POSITIVE_WORDS[0] <= token < POSITIVE_WORDS[0] + MAX_SENTIMENT_VOCAB:
        return f"good{token - POSITIVE_WORDS[0]}"
    if NEGATIVE_WORDS[0] <= token < NEGATIVE_WORDS[0] + MAX_SENTIMENT_VOCAB:
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
    shortcut: bool = True,
    knobs: dict | None = None,
    label_rng: np.random.Generator | None = None,
) -> dict:
    """One split. ``label_rng`` (train/valid with ``label_flip`` > 0): the stream that flips the
    written labels' signs; everything else is drawn from ``rng`` exactly as without it."""
    knobs = knobs or KNOB_DEFAULTS
    d_t, d_a, d_v = dims
    y = _labels(rng, n)
    views = {m: y + s * rng.normal(size=n).astype(np.float32) for m, s in knobs["view_noise"].items()}
    fraction = knobs["signal_fraction"]
    rate = float(knobs["sentiment_word_rate"])
    n_bias = int(knobs["bias_words_per_sample"])
    positive_words, negative_words = sentiment_pools(int(knobs["sentiment_vocab"]))
    echo = knobs["word_echo"]
    echo_any = any(v > 0 for v in echo.values())
    if echo_any and not aligned:
        raise ValueError("word_echo needs an aligned file (one audio/vision frame per token)")

    def carriers(length: int, f: float) -> np.ndarray | float:
        """Per-position signal weight: 1 everywhere (f = 1), else 1/sqrt(f) on a random ~f of them."""
        if f >= 1.0:
            return 1.0
        mask = rng.random(length) < f
        if not mask.any():
            mask[int(rng.integers(length))] = True
        return (mask / np.sqrt(f)).astype(np.float32)[:, None]

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
        p_sent = min(0.6, rate * abs(v_t))
        words: list[int] = []
        for _ in range(n_words):
            if v_t != 0.0 and rng.random() < p_sent:
                pool = positive_words if v_t > 0 else negative_words
            else:
                pool = FILLER_WORDS
            words.append(int(pool[rng.integers(len(pool))]))
        if shortcut and n_bias > 0:
            for pos in rng.choice(n_words, size=min(n_bias, n_words), replace=False):
                words[int(pos)] = _bias_word(rng, float(y[i]), strength)
        tokens = [CLS_ID, *words, SEP_ID]
        n_real = len(tokens)
        input_ids[i, :n_real] = tokens
        raw_text.append(" ".join(_word_name(t) for t in words))

        text[i, :n_real] = (
            embedding[tokens]
            + carriers(n_real, fraction["text"]) * (v_t / 3.0) * directions["text"]
            + 0.5 * rng.normal(size=(n_real, d_t))
        )

        if aligned:
            # aligned files: one audio/vision frame per token position
            a_n = v_n = n_real
        else:
            a_n = int(rng.integers(max(1, audio_len // 4), audio_len + 1))
            v_n = int(rng.integers(max(1, vision_len // 4), vision_len + 1))
        audio_lengths[i], vision_lengths[i] = a_n, v_n
        audio[i, :a_n] = (carriers(a_n, fraction["audio"]) * (float(views["audio"][i]) / 3.0) * directions["audio"]
                          + rng.normal(size=(a_n, d_a)))
        vision[i, :v_n] = (carriers(v_n, fraction["vision"]) * (float(views["vision"][i]) / 3.0) * directions["vision"]
                           + rng.normal(size=(v_n, d_v)))
        if echo_any:
            # word_echo: the frame aligned with a sentiment word carries that word's polarity
            polarity = np.array([1.0 if t in positive_words else -1.0 if t in negative_words else 0.0
                                 for t in tokens], dtype=np.float32)[:, None]
            for m, frames in (("audio", audio), ("vision", vision)):
                if echo[m] > 0:
                    frames[i, :n_real] += echo[m] * polarity * directions[f"echo_{m}"]

    if label_rng is not None and knobs["label_flip"] > 0:
        # the inputs carry the latent sentiment y; the written label's sign is flipped with
        # probability label_flip (annotation noise), magnitude and neutral labels unchanged
        # (adding 0.0 turns a flipped neutral label's -0.0 back into 0.0)
        y = np.where(label_rng.random(n) < knobs["label_flip"], -y, y).astype(np.float32) + np.float32(0.0)
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
    *,
    validation: str = "in_distribution",
    shortcut_words: str = "every_split",
    bias_words_per_sample: int = N_BIAS_WORDS_PER_SAMPLE,
    sentiment_word_rate: float = 0.15,
    signal_fraction: dict[str, float] | None = None,
    view_noise: dict[str, float] | None = None,
    label_flip: float = 0.0,
    word_echo: dict[str, float] | None = None,
    sentiment_vocab: int = len(POSITIVE_WORDS),
    oracle: bool = True,
) -> Path:
    """Write a synthetic MMSA pickle (keys ``train``/``valid``/``test``) and return its path.

    Aligned files have audio/vision of length ``seq_len`` and no ``*_lengths`` keys; unaligned
    files default to MOSI's lengths (375 audio, 500 vision frames) and write
    ``audio_lengths``/``vision_lengths``. A ``<stem>.README.md`` describing the planted signal
    and the folder's synthetic-data marker are written next to the file, all four or none. The keyword-only
    mechanism knobs are described in the module docstring; ``oracle=False`` skips the oracle
    ceilings in the marker.
    """
    knobs = validate_knobs(validation=validation, shortcut_words=shortcut_words,
                           bias_words_per_sample=bias_words_per_sample, sentiment_word_rate=sentiment_word_rate,
                           signal_fraction=signal_fraction, view_noise=view_noise, label_flip=label_flip,
                           word_echo=word_echo, sentiment_vocab=sentiment_vocab)
    path = Path(path)
    # moved next to each other in this order, the pickle last (its presence means the set is whole)
    written = [converted_path(path).name, f"{path.stem}.README.md", SYNTHETIC_MARKER, path.name]
    present = [name for name in written if (path.parent / name).exists()]
    if present:  # a replace would overwrite them: e.g. the user's converted .npz, another file's marker
        raise ValueError(f"{path.parent} already holds {', '.join(present)}, which writing {path.name} would "
                         f"replace ({', '.join(written)} are written together; the folder-wide "
                         f"{SYNTHETIC_MARKER} describes one synthetic file); choose a new folder")
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
    directions.update(echo_directions(seed, directions))
    embedding = rng.normal(size=(VOCAB_SIZE, d_t)).astype(np.float32)
    positive_words, negative_words = sentiment_pools(knobs["sentiment_vocab"])
    embedding[list(positive_words)] += directions["text"]
    embedding[list(negative_words)] -= directions["text"]

    common = dict(aligned=aligned, seq_len=seq_len, audio_len=audio_len, vision_len=vision_len,
                  dims=(d_t, d_a, d_v), embedding=embedding, directions=directions, knobs=knobs)
    in_test = knobs["shortcut_words"] == "every_split"
    valid_like_train = knobs["validation"] == "in_distribution"
    # label noise has its own streams, so the inputs (and test labels) equal those of label_flip = 0
    flips = ({split: np.random.default_rng([seed, LABEL_FLIP_STREAM, k]) for k, split in enumerate(("train", "valid"))}
             if knobs["label_flip"] > 0 else {})
    data = {
        "train": _write_split(rng, "tr", n_train, bias_strength_train, label_rng=flips.get("train"), **common),
        "valid": _write_split(rng, "va", n_valid, bias_strength_train if valid_like_train else bias_strength_test,
                              shortcut=valid_like_train or in_test, label_rng=flips.get("valid"), **common),
        "test": _write_split(rng, "te", n_test, bias_strength_test, shortcut=in_test, **common),
    }

    details = dict(file=path.name, seed=seed, aligned=aligned, seq_len=seq_len, audio_len=audio_len,
                   vision_len=vision_len, dims=[d_t, d_a, d_v], n=[n_train, n_valid, n_test],
                   bias_strength_train=bias_strength_train, bias_strength_test=bias_strength_test, **knobs)
    extra = {}
    if oracle:
        extra["oracle"] = oracle_ceilings(seed=seed, aligned=aligned, seq_len=seq_len, audio_len=audio_len,
                                          vision_len=vision_len, dims=(d_t, d_a, d_v),
                                          bias_strength_train=bias_strength_train,
                                          bias_strength_test=bias_strength_test, **knobs)

    # the files are written into a hidden sibling folder and moved next to each other only when
    # all four are complete: a failure or an interrupt leaves nothing that would make a rerun refuse
    # an existing --out
    create_folder(path.parent, str(path), exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        staged = staging / path.name
        with open(staged, "wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
        save_mmsa_npz(data, converted_path(staged), source=staged)  # the safe copy loaders read (no unpickling)
        (staging / f"{path.stem}.README.md").write_text(_readme(details))
        write_synthetic_marker(staging, "robustmm.data.synth.mmsa.write_synthetic_mmsa", version=GENERATOR_VERSION,
                               **details, **extra)
        for name in written:
            replace_synced(staging / name, path.parent / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


ECHO_STREAM = 7212  # seeds the word-echo directions ([seed, this])


def echo_directions(seed: int, directions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``word_echo``'s direction per audio/vision modality: drawn from its own stream (the main
    stream is untouched), made orthogonal to the modality's sentiment direction and scaled to its
    norm, so the echo is not drowned in the utterance-level view (which varies along that
    direction by the view noise)."""
    rng = np.random.default_rng([seed, ECHO_STREAM])
    out = {}
    for m in ("audio", "vision"):
        d = directions[m].astype(np.float64)
        r = rng.normal(size=d.shape)
        r -= (r @ d) / (d @ d) * d
        out[f"echo_{m}"] = (r * np.linalg.norm(d) / np.linalg.norm(r)).astype(np.float32)
    return out


def validate_knobs(**given) -> dict:
    """The knobs with defaults filled in (per-modality dicts merged over the defaults)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in KNOB_DEFAULTS.items()}
    for key, value in given.items():
        if key not in KNOB_DEFAULTS:
            raise ValueError(f"unknown MMSA synthetic knob {key!r} (known: {sorted(KNOB_DEFAULTS)})")
        if value is None:
            continue
        if isinstance(KNOB_DEFAULTS[key], dict):
            unknown = set(value) - set(KNOB_DEFAULTS[key])
            if unknown:
                raise ValueError(f"{key}: unknown modalities {sorted(unknown)} (use {list(KNOB_DEFAULTS[key])})")
            out[key].update({m: float(v) for m, v in value.items()})
        else:
            out[key] = value
    if out["validation"] not in ("in_distribution", "shifted"):
        raise ValueError(f"validation must be 'in_distribution' or 'shifted', got {out['validation']!r}")
    if out["shortcut_words"] not in ("every_split", "train_only"):
        raise ValueError(f"shortcut_words must be 'every_split' or 'train_only', got {out['shortcut_words']!r}")
    out["bias_words_per_sample"] = int(out["bias_words_per_sample"])
    if out["bias_words_per_sample"] < 0:
        raise ValueError("bias_words_per_sample must be >= 0")
    out["sentiment_word_rate"] = float(out["sentiment_word_rate"])
    if out["sentiment_word_rate"] < 0:
        raise ValueError("sentiment_word_rate must be >= 0")
    for m, f in out["signal_fraction"].items():
        if not 0.0 < f <= 1.0:
            raise ValueError(f"signal_fraction.{m} must be in (0, 1], got {f}")
    for m, v in out["view_noise"].items():
        if v < 0:
            raise ValueError(f"view_noise.{m} must be >= 0, got {v}")
    for m, v in out["word_echo"].items():
        if v < 0:
            raise ValueError(f"word_echo.{m} must be >= 0, got {v}")
    out["sentiment_vocab"] = int(out["sentiment_vocab"])
    if not 1 <= out["sentiment_vocab"] <= MAX_SENTIMENT_VOCAB:
        raise ValueError(f"sentiment_vocab must be in [1, {MAX_SENTIMENT_VOCAB}], got {out['sentiment_vocab']}")
    out["label_flip"] = float(out["label_flip"])
    if not 0.0 <= out["label_flip"] < 0.5:
        raise ValueError(f"label_flip must be in [0, 0.5), got {out['label_flip']}")
    return out


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
- Each modality m sees `v_m = y + noise`, noise std text {d['view_noise']['text']}, audio
  {d['view_noise']['audio']}, vision {d['view_noise']['vision']} (independent per sample and modality):
  each modality alone is a partial, noisy predictor; together they are better.
- Text ids: `[CLS]`=101 first, `[SEP]`=102 last real token, `[PAD]`=0 after. Each word is a
  sentiment word with probability min(0.6, {d['sentiment_word_rate']}·|v_text|): positive ids
  {POSITIVE_WORDS[0]}–{POSITIVE_WORDS[-1]} when v_text > 0, negative ids
  {NEGATIVE_WORDS[0]}–{NEGATIVE_WORDS[-1]} when v_text < 0; other words are filler ids
  {FILLER_WORDS[0]}–{FILLER_WORDS[-1]}.
- Text features: fixed random embedding of the token id (sentiment words shifted along a
  sentiment direction) + (v_text/3)·direction on every real token + N(0, 0.5²) noise; padding 0.
- Audio / vision: every real frame is (v_m/3)·direction_m + N(0, 1) noise; padding 0.

## Planted language bias
Each utterance has {d['bias_words_per_sample']} bias words, ids {BIAS_WORDS_POSITIVE[0]}–{BIAS_WORDS_POSITIVE[-1]}
("positive" pool) and {BIAS_WORDS_NEGATIVE[0]}–{BIAS_WORDS_NEGATIVE[-1]} ("negative" pool). With
probability `strength` a bias word comes from the pool matching the label's sign (for y != 0),
otherwise uniformly from both pools. strength = {d['bias_strength_train']} in train,
{d['bias_strength_test']} in test; valid is drawn like {'train' if d['validation'] == 'in_distribution' else 'test'}
(validation: {d['validation']}). Bias words appear in {'every split' if d['shortcut_words'] == 'every_split'
else 'the in-distribution splits only (never in test)'} (shortcut_words: {d['shortcut_words']}). A model that
uses these words as a shortcut in training loses accuracy at test time; MACI's bias-word mining
should find them.

## Mechanism knobs of this file
bias_words_per_sample={d['bias_words_per_sample']}, sentiment_word_rate={d['sentiment_word_rate']},
signal_fraction={d['signal_fraction']}, view_noise={d['view_noise']}, sentiment_vocab={d['sentiment_vocab']},
word_echo={d['word_echo']}, label_flip={d['label_flip']} (train/valid labels only). See the docstring of
`robustmm.data.synth.mmsa` for their meaning; the oracle ceilings are in SYNTHETIC_DATA.json.
"""


# ---------------------------------------------------------------------------- oracle ceilings
ORACLE_RATES = (0.0, 0.3, 0.6, 0.9)


def _direction_norms(seed: int, dims: tuple[int, int, int]) -> dict[str, float]:
    """Norms of the planted sentiment directions of a file written with ``seed`` (the writer's first draws)."""
    rng = np.random.default_rng(seed)
    d_t, d_a, d_v = dims
    return {"text": float(np.linalg.norm(rng.normal(size=d_t))),
            "audio": float(np.linalg.norm(2.0 * rng.normal(size=d_a))),
            "vision": float(np.linalg.norm(2.0 * rng.normal(size=d_v)))}


def simulate_readouts(n: int, rng: np.random.Generator, *, split: str, rate: float = 0.0, aligned: bool = True,
                      seq_len: int = 50, audio_len: int | None = None, vision_len: int | None = None,
                      norms: dict[str, float], bias_strength_train: float = 0.8, bias_strength_test: float = 0.0,
                      **knobs) -> dict[str, np.ndarray]:
    """``n`` samples of one split (``"train"`` or ``"test"``) as the read-outs of the planted signal
    that survive RMFM dropout at ``rate``: ``text`` (signed count of sentiment words), ``shortcut``
    (signed count of bias words), ``audio`` / ``vision`` (the view measured on the surviving signal
    frames, 0 when none survives) with ``*_seen`` flags, and ``y`` (the regression label)."""
    knobs = validate_knobs(**knobs)
    y = _labels(rng, n)
    sign = np.sign(y)
    views = {m: y + knobs["view_noise"][m] * rng.normal(size=n) for m in MODALITIES}
    keep = 1.0 - rate
    n_words = rng.integers(min(3, seq_len - 2), seq_len - 2 + 1, size=n)
    # text ids: sentiment words (some overwritten by bias words), each dropped by RMFM with p = rate
    p_sent = np.minimum(0.6, knobs["sentiment_word_rate"] * np.abs(views["text"]))
    n_sent = rng.binomial(n_words, p_sent)
    shortcut_here = split == "train" or knobs["shortcut_words"] == "every_split"
    n_bias = np.minimum(knobs["bias_words_per_sample"], n_words) if shortcut_here else np.zeros(n, int)
    n_sent = rng.binomial(n_sent, np.clip((n_words - n_bias) / n_words, 0, 1))
    text = np.sign(views["text"]) * rng.binomial(n_sent, keep)
    strength = bias_strength_train if split == "train" else bias_strength_test
    matched = rng.binomial(n_bias, strength * (sign != 0))
    uniform = n_bias - matched
    pos_uniform = rng.binomial(uniform, 0.5)
    # RMFM drops bias words like any other word: each is kept with probability 1 - rate
    kept_matched = rng.binomial(matched, keep)
    kept_pos_u, kept_neg_u = rng.binomial(pos_uniform, keep), rng.binomial(uniform - pos_uniform, keep)
    shortcut = sign * kept_matched + kept_pos_u - kept_neg_u
    out = {"y": y, "text": text.astype(float)[:, None], "shortcut": shortcut.astype(float)[:, None]}
    lengths = {"audio": audio_len or (seq_len if aligned else 375), "vision": vision_len or (seq_len if aligned else 500)}
    for m in ("audio", "vision"):
        if aligned:
            frames = n_words + 2
        else:
            frames = rng.integers(max(1, lengths[m] // 4), lengths[m] + 1, size=n)
        f = knobs["signal_fraction"][m]
        carriers = frames if f >= 1.0 else np.maximum(rng.binomial(frames, f), 1)
        alive = rng.binomial(carriers, keep)
        # per-frame noise along the direction, in label units: 3 / (amplitude * |direction|)
        per_frame = 3.0 / (norms[m] / np.sqrt(f))
        readout = views[m] + per_frame * rng.normal(size=n) / np.sqrt(np.maximum(alive, 1))
        seen = alive > 0
        out[m] = np.column_stack([np.where(seen, readout, 0.0), seen.astype(float)])
    return out


def oracle_ceilings(seed: int = 0, n: int | None = None, *, aligned: bool = True, seq_len: int = 50,
                    audio_len: int | None = None, vision_len: int | None = None,
                    dims: tuple[int, int, int] = (768, 5, 20), bias_strength_train: float = 0.8,
                    bias_strength_test: float = 0.0, **knobs) -> dict:
    """Non0_acc_2 ceilings from the planted read-outs (see the module docstring)."""
    from robustmm.data.synth.oracle import ORACLE_SUBJECTS, all_subsets, logistic_accuracy, subset_name, summary

    knobs = validate_knobs(**knobs)
    n = n or ORACLE_SUBJECTS
    common = dict(aligned=aligned, seq_len=seq_len, audio_len=audio_len, vision_len=vision_len,
                  norms=_direction_norms(seed, dims), bias_strength_train=bias_strength_train,
                  bias_strength_test=bias_strength_test, **knobs)

    def draw(split: str, rate: float, stream: int) -> dict[str, np.ndarray]:
        sim = simulate_readouts(n, np.random.default_rng([seed, stream, int(round(rate * 100))]), split=split,
                                rate=rate, **common)
        nonzero = sim["y"] != 0
        return {k: v[nonzero] for k, v in sim.items()}

    def accuracy(fit, score, parts) -> float:
        return logistic_accuracy(np.column_stack([fit[p] for p in parts]), fit["y"] > 0,
                                 np.column_stack([score[p] for p in parts]), score["y"] > 0)

    fit, score = draw("train", 0.0, 201), draw("test", 0.0, 202)
    ceilings = {subset_name(s): accuracy(fit, score, s) for s in all_subsets(list(MODALITIES))}
    rmfm = {}
    for rate in ORACLE_RATES:
        f_r, s_r = draw("train", rate, 203), draw("test", rate, 204)
        rmfm[f"{rate:g}"] = {subset_name(s): round(accuracy(f_r, s_r, s), 4)
                            for s in (("text",), ("audio",), ("vision",), MODALITIES)}
    train_score = draw("train", 0.0, 205)
    shortcut = {
        "shortcut_only_train_split": accuracy(fit, train_score, ("shortcut",)),
        "sentiment_words_only_train_split": accuracy(fit, train_score, ("text",)),
        "text+shortcut_train_split": accuracy(fit, train_score, ("text", "shortcut")),
        "text+shortcut_fit_train_score_test": accuracy(fit, score, ("text", "shortcut")),
        "text_fit_train_score_test": accuracy(fit, score, ("text",)),
        "all+shortcut_fit_train_score_test": accuracy(fit, score, (*MODALITIES, "shortcut")),
    }
    return summary("Non0_acc_2", "logistic regression on the planted read-outs of each subset", ceilings, n, seed,
                   "fit on simulated train-split samples, scored on test-split samples, no shortcut features "
                   "unless named; text = sentiment-word counts (text_mode: ids). rmfm: ceilings at RMFM rate p "
                   "(fitted at that rate). shortcut: how predictive the bias words are in train and what "
                   "leaning on them costs at test.",
                   rmfm={k: v for k, v in rmfm.items()},
                   shortcut={k: round(v, 4) for k, v in shortcut.items()},
                   knobs={**knobs, "bias_strength_train": bias_strength_train,
                          "bias_strength_test": bias_strength_test})
