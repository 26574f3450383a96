"""ML agreement benchmark: labels saved by adding the model, against the same policy without it.

    .venv/bin/python -m bench.quality.ml_agreement [--items 600] [--seeds 3] [--out RESULTS.md]

Two generated campaigns with a learnable signal, each labeled by a simulated crowd through the
replay of `bench.quality.replay` (answers arrive in random order, an item stops receiving labels
when the policy closes it: min_labels 1, target_confidence 0.95, max_labels 7, the default
min_gain):

- images: shapes (circle, square, triangle) of random colour, size and position on a noisy
  background, the idea of `tools/seed.py`'s demo campaign, at 64 x 64 pixels;
- texts: three-class reviews (positive, negative, neutral), 8 to 20 words drawn from a shared
  vocabulary with a share of class-bearing words; some reviews carry almost no signal.

The crowd: 40 workers, each right with a probability drawn uniformly from [0.6, 0.95] (errors
spread evenly), who would each answer every item. The model is the product's
(`quality.ml`): trained out of fold on the items whose posterior has reached the target, once
the campaign is calibrated and 30 such items exist, and again whenever they have grown by half;
it joins the refits as one more annotator with its capped confusion matrix
(`quality.aggregation.campaign`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.quality.replay import Dataset, LiveCampaign, Settings
from quality.aggregation import Answers, score
from quality.aggregation._numeric import IntArray
from quality.aggregation.campaign import CampaignFit
from quality.aggregation.policy import MIN_GAIN
from quality.ml.features import image_features
from quality.ml.train import IMAGE, TEXT, learnable, train_out_of_fold

SHAPES = ("circle", "square", "triangle")
WORKERS = 40
ACCURACY_RANGE = (0.6, 0.95)
TRAIN_MIN_ITEMS = 30  # settings.KYODO_QUALITY_TRAIN_MIN_ITEMS
RETRAIN_GROWTH = 1.5  # quality.services.training: next training at 1.5 x trained_on
SETTINGS = Settings(min_labels=1, target_confidence=0.95, max_labels=7)

POSITIVE = [
    "love",
    "great",
    "perfect",
    "happy",
    "excellent",
    "best",
    "recommend",
    "wonderful",
    "works",
    "fantastic",
]
NEGATIVE = [
    "hate",
    "broke",
    "terrible",
    "waste",
    "awful",
    "worst",
    "refund",
    "disappointed",
    "useless",
    "poor",
]
NEUTRAL = [
    "arrived",
    "box",
    "tuesday",
    "blue",
    "size",
    "delivered",
    "ordered",
    "color",
    "package",
    "weight",
]
FILLER = [
    "the",
    "it",
    "this",
    "a",
    "i",
    "my",
    "was",
    "is",
    "and",
    "with",
    "for",
    "of",
    "to",
    "on",
    "in",
    "one",
    "after",
    "day",
    "phone",
    "lamp",
    "kettle",
    "chair",
    "camera",
    "blender",
    "jacket",
    "backpack",
    "really",
    "very",
    "quite",
    "just",
]


def shape_png(shape: str, rng: np.random.Generator, size: int = 64) -> bytes:
    """A shape on a noisy background: easy for people, learnable for a small model."""
    background = tuple(int(v) for v in rng.integers(190, 256, 3))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        draw.point((x, y), fill=tuple(int(v) for v in rng.integers(120, 256, 3)))
    colour = tuple(int(v) for v in rng.integers(0, 150, 3))
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def review(label: int, rng: np.random.Generator) -> str:
    words = (POSITIVE, NEGATIVE, NEUTRAL)[label]
    length = int(rng.integers(8, 21))
    signal = float(rng.uniform(0.05, 0.4))  # share of class-bearing words: some reviews are vague
    out = [
        str(rng.choice(words)) if rng.random() < signal else str(rng.choice(FILLER))
        for _ in range(length)
    ]
    return " ".join(out)


def image_campaign(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    features = np.stack([image_features(shape_png(SHAPES[t], rng)) for t in truth])
    return truth, features


def text_campaign(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    return truth, [review(int(t), rng) for t in truth]


def crowd_answers(truth: np.ndarray, *, seed: int, k: int = 3) -> Answers:
    """Every worker answers every item (the pool the replay draws from)."""
    rng = np.random.default_rng(seed)
    accuracy = rng.uniform(*ACCURACY_RANGE, WORKERS)
    n = truth.size
    workers = np.repeat(np.arange(WORKERS), n)
    items = np.tile(np.arange(n), WORKERS)
    right = rng.random(workers.size) < accuracy[workers]
    wrong = (truth[items] + rng.integers(1, k, workers.size)) % k
    labels = np.where(right, truth[items], wrong)
    return Answers.from_arrays(
        worker_idx=workers, item_idx=items, label_idx=labels, n_classes=k, n_items=n
    )


class ModelHook:
    """Retrains the product's model as the campaign's confident items grow."""

    def __init__(self, inputs: object, *, kind: str, target: float, n_classes: int) -> None:
        self.inputs = inputs
        self.kind = kind
        self.target = target
        self.n_classes = n_classes
        self.trained_on = 0
        self.trainings = 0
        self.oof_accuracy: list[float] = []
        self.current: tuple[IntArray, IntArray] | None = None

    def _rows(self, idx: np.ndarray) -> object:
        if self.kind == IMAGE:
            return np.asarray(self.inputs)[idx]
        texts = self.inputs
        assert isinstance(texts, list)
        return [texts[i] for i in idx]

    def __call__(
        self, used: Answers, fit: CampaignFit, closed: np.ndarray
    ) -> tuple[IntArray, IntArray] | None:
        if not fit.calibrated:
            return self.current
        labeled = np.bincount(used.item_idx, minlength=used.n_items) > 0
        confident = np.flatnonzero(labeled & (fit.posteriors.max(axis=1) >= self.target))
        if confident.size < max(TRAIN_MIN_ITEMS, RETRAIN_GROWTH * self.trained_on):
            return self.current
        y = fit.labels[confident]
        keep = learnable(y)
        train_idx, y = confident[keep], y[keep]
        trained = train_out_of_fold(
            self._rows(train_idx), y, kind=self.kind, n_classes=self.n_classes
        )
        if trained is None:
            return self.current
        self.trained_on = int(train_idx.size)
        self.trainings += 1
        self.oof_accuracy.append(trained.oof_accuracy)
        rest = np.setdiff1d(np.arange(used.n_items), train_idx)
        proba = np.zeros((used.n_items, self.n_classes))
        proba[train_idx] = trained.oof_proba  # out of fold: no item scored by a model that saw it
        proba[rest] = trained.predict_proba(self._rows(rest))
        self.current = (np.arange(used.n_items), np.argmax(proba, axis=1))
        return self.current


def run(
    truth: np.ndarray, inputs: object, *, kind: str, seed: int, with_model: bool
) -> dict[str, float]:
    answers = crowd_answers(truth, seed=seed)
    data = Dataset(
        name=kind,
        answers=answers,
        gold=dict(enumerate(truth.tolist())),
        n_real_workers=WORKERS,
    )
    hook = ModelHook(inputs, kind=kind, target=SETTINGS.target_confidence, n_classes=3)
    live = LiveCampaign(data.answers, settings=SETTINGS, model=hook if with_model else None)
    order = np.random.default_rng(100 + seed).permutation(answers.n_answers)
    started = time.perf_counter()
    for index in order:
        live.feed(int(index))
        if live.closed.all():
            break
    fit = live.finish()
    return {
        "labels_per_item": len(live.used) / truth.size,
        "accuracy": 100 * score(fit.labels, gold=data.gold).accuracy,
        "trainings": float(hook.trainings),
        "oof": 100 * (hook.oof_accuracy[-1] if hook.oof_accuracy else float("nan")),
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="append the table to this file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    campaigns = {
        "images (shapes)": (IMAGE, *image_campaign(args.items, seed=1)),
        "texts (reviews)": (TEXT, *text_campaign(args.items, seed=2)),
    }
    rows = []
    for name, (kind, truth, inputs) in campaigns.items():
        without = [
            run(truth, inputs, kind=kind, seed=s, with_model=False) for s in range(args.seeds)
        ]
        with_model = [
            run(truth, inputs, kind=kind, seed=s, with_model=True) for s in range(args.seeds)
        ]

        def mean(runs: list[dict[str, float]], key: str) -> float:
            return float(np.mean([r[key] for r in runs]))

        saved = 1 - mean(with_model, "labels_per_item") / mean(without, "labels_per_item")
        rows.append(
            f"| {name} | {mean(without, 'labels_per_item'):.2f} | {mean(without, 'accuracy'):.2f}"
            f" | {mean(with_model, 'labels_per_item'):.2f} | {mean(with_model, 'accuracy'):.2f}"
            f" | {100 * saved:.0f}% | {mean(with_model, 'trainings'):.1f}"
            f" | {mean(with_model, 'oof'):.1f} |"
        )
        print(rows[-1], flush=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            "## ML agreement: labels saved by the model (`bench/quality/ml_agreement.py`)",
            "",
            f"Made by `python -m bench.quality.ml_agreement` on {stamp} in "
            f"{time.perf_counter() - started:.0f} s: {args.items} items per campaign, "
            f"{WORKERS} simulated workers (accuracy uniform in {ACCURACY_RANGE}), policy "
            f"min_labels 1, target 0.95, max_labels 7, min_gain {MIN_GAIN}; "
            f"mean of {args.seeds} answer orders.",
            "",
            "| campaign | labels/item without model | accuracy (%) | labels/item with model | "
            "accuracy (%) | labels saved | trainings | model's last out-of-fold accuracy (%) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
