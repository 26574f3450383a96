"""Cost and spam benchmarks: real crowd datasets replayed as live Kyodo campaigns.

    .venv/bin/python -m bench.quality.replay [--data DIR] [--seeds 3] [--out RESULTS.md]

Each dataset's answers arrive one at a time in a random order (one order per seed). An answer is
used only if its item is still open and its worker is not suspended; otherwise it is never asked
for (a closed item gets no more leases, a suspended worker no more tasks). The campaign runs the
product's own rules from `quality.aggregation` (the same functions `quality.services` calls):

- each used answer updates its item's posterior with the last refit's worker confusion matrices
  (a worker the last refit has not seen, and every worker before the first refit, counts as the
  cold-start worker: right with probability KYODO_QUALITY_PRIOR_ACCURACY = 0.85);
- the item closes by `policy.should_close` (`min_labels`, `target_confidence`, no `max_labels`
  beyond the answers the dataset has);
- a full refit (`campaign.fit_campaign`) runs after max(50, 10 % of the labels so far) new labels,
  as the product's trigger does, re-scores every open item (closing those now confident) and
  suspends likely spammers;
- when an item closes, each of its labels is accepted for a reward if it agrees with the decided
  label and its worker is not suspended. An accepted reward is paid at the next of 10 epochs
  (every tenth of the stream) if its worker is *trusted* by then (90 % sure to be informative and
  right more often than chance, `CampaignFit.trusted`); it is held while the worker is unproven,
  and rejected if the worker is suspended. Rewards still held when the campaign ends are reported
  as withheld, in all and for the honest workers above the trust bar by the dataset's gold
  (`able_workers`: a reward withheld from a worker below it is the rule working).

Accuracy is that of the final refit's labels on the gold tasks. The reference is majority vote
with every answer the dataset has (fixed, full overlap). Duplicate (worker, task) pairs (s_rel has
1,570) are dropped first: a Kyodo contributor labels an item once.

Spam: 30 % of the workers of the final crowd are uniform-random spammers, each with as many answers
as a real worker of the dataset drawn at random, on distinct random items.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quality.aggregation import Answers, majority_vote, score
from quality.aggregation._numeric import FloatArray, IntArray, decide
from quality.aggregation._passes import item_layout, log_likelihood_scores
from quality.aggregation.campaign import (
    SPAM_THRESHOLD,
    CampaignFit,
    fit_campaign,
    live_parameters,
)
from quality.aggregation.io import read_answers, read_gold
from quality.aggregation.policy import (
    MIN_GAIN,
    Policy,
    label_value,
    one_coin_matrix,
    should_close,
)
from quality.aggregation.spam import kappa

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ("bluebirds", "rte", "temp", "d_product", "s_rel")
PRIOR_ACCURACY = 0.85  # settings.KYODO_QUALITY_PRIOR_ACCURACY
REFIT_MIN_NEW = 50  # settings.KYODO_QUALITY_REFIT_MIN_NEW_LABELS
REFIT_GROWTH = 0.1  # settings.KYODO_QUALITY_REFIT_GROWTH
EPOCHS = 10
SPAM_SHARE = 0.3
COST_TARGET = 0.6  # at most this share of the labels ...
SPAM_ACCURACY_LOSS = 1.0  # points
SPAM_REWARD_SHARE = 0.02
GOLD_SHARE = 0.05  # the campaign's gold items; their labels count as labels used


@dataclass(frozen=True)
class Dataset:
    name: str
    answers: Answers  # duplicates dropped, no gold attached (gold is for scoring only)
    gold: dict[int, int]
    n_real_workers: int


def default_data_dir() -> Path:
    return ROOT.parent / "shared" / "data" / "crowd"


def load(directory: Path, name: str) -> Dataset:
    gold = read_gold(directory / name / "gold.csv")
    answers, codebook = read_answers(directory / name / "answers.csv", extra_classes=gold.values())
    return Dataset(
        name=name,
        answers=dedupe(answers),
        gold=codebook.encode_gold(gold),
        n_real_workers=answers.n_workers,
    )


def dedupe(answers: Answers) -> Answers:
    pair = answers.worker_idx.astype(np.int64) * answers.n_items + answers.item_idx
    _, first = np.unique(pair, return_index=True)
    keep = np.sort(first)
    return Answers(
        worker_idx=answers.worker_idx[keep],
        item_idx=answers.item_idx[keep],
        label_idx=answers.label_idx[keep],
        n_workers=answers.n_workers,
        n_items=answers.n_items,
        n_classes=answers.n_classes,
    )


def with_spammers(data: Dataset, *, share: float, seed: int) -> Dataset:
    """Add uniform-random spammers: `share` of the workers, each as busy as a random real one."""
    rng = np.random.default_rng(seed)
    answers = data.answers
    n_spam = round(share / (1.0 - share) * answers.n_workers)
    activity = np.bincount(answers.worker_idx, minlength=answers.n_workers)
    workers, items, labels = [answers.worker_idx], [answers.item_idx], [answers.label_idx]
    for s in range(n_spam):
        n = int(min(rng.choice(activity), answers.n_items))
        chosen = rng.choice(answers.n_items, size=n, replace=False)
        workers.append(np.full(n, answers.n_workers + s))
        items.append(chosen)
        labels.append(rng.integers(0, answers.n_classes, size=n))
    spiked = Answers(
        worker_idx=np.concatenate(workers),
        item_idx=np.concatenate(items),
        label_idx=np.concatenate(labels),
        n_workers=answers.n_workers + n_spam,
        n_items=answers.n_items,
        n_classes=answers.n_classes,
    )
    return Dataset(data.name, spiked, data.gold, data.n_real_workers)


def gold_items(data: Dataset, *, share: float, seed: int) -> dict[int, int]:
    """The campaign's gold items: `share` of the items, drawn (seeded) among those with gold."""
    n = round(share * data.answers.n_items)
    if n <= 0:
        return {}
    known = np.array(sorted(data.gold), dtype=np.intp)
    chosen = np.random.default_rng(2000 + seed).choice(
        known, size=min(n, known.size), replace=False
    )
    return {int(i): data.gold[int(i)] for i in np.sort(chosen)}


# The ML model joins through this hook: given the answers used so far and the last fit, it returns
# its predicted class for some items (out of fold), or None while it has nothing to say.
ModelHook = Callable[[Answers, CampaignFit, np.ndarray], tuple[IntArray, IntArray] | None]


@dataclass(frozen=True)
class Settings:
    min_labels: int = 1
    target_confidence: float = 0.95
    max_labels: int = 10**6
    suspend: bool = True
    gold_share: float = GOLD_SHARE  # share of the items whose answer the campaign knows (gold)
    min_gain: float = MIN_GAIN  # KYODO_QUALITY_MIN_GAIN


@dataclass
class Outcome:
    labels_used: int
    labels_available: int
    accuracy: float
    refits: int
    paid: FloatArray  # rewards paid per worker (one unit per accepted label)
    withheld: FloatArray  # accepted but never paid: the worker was never proven
    suspended: np.ndarray
    closed: int
    n_items: int
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def label_share(self) -> float:
        return self.labels_used / self.labels_available


class LiveCampaign:
    """The state of one replayed campaign; `feed` one answer at a time, then `finish`."""

    def __init__(
        self,
        answers: Answers,
        *,
        settings: Settings,
        model: ModelHook | None = None,
        prior_accuracy: float = PRIOR_ACCURACY,
        gold: dict[int, int] | None = None,
    ) -> None:
        self.all = answers
        self.gold = dict(gold or {})
        self.policy = Policy(
            settings.min_labels, settings.max_labels, settings.target_confidence, settings.min_gain
        )
        self.temperature = 1.0
        self.typical: FloatArray | None = None
        self.settings = settings
        self.model = model
        k, n_items, n_workers = answers.n_classes, answers.n_items, answers.n_workers
        self.k = k
        self.default = one_coin_matrix(prior_accuracy, k)
        self.log_conf = np.log(np.broadcast_to(self.default, (n_workers, k, k)).copy())
        self.priors = np.full(k, 1.0 / k)
        self.scores = np.tile(np.log(self.priors), (n_items, 1))
        self.n_labels = np.zeros(n_items, dtype=np.int64)
        self.closed = np.zeros(n_items, dtype=bool)
        self.suspended = np.zeros(n_workers, dtype=bool)
        self.used: list[int] = []  # indices into `answers`
        self.by_item: list[list[int]] = [[] for _ in range(n_items)]
        self.model_items: IntArray = np.zeros(0, dtype=np.intp)
        self.model_labels: IntArray = np.zeros(0, dtype=np.intp)
        self.model_log: FloatArray | None = None  # (K, K) log of the capped model matrix
        self.next_refit = REFIT_MIN_NEW
        self.refits = 0
        self.pending: list[list[int]] = [[] for _ in range(n_workers)]  # accepted, unpaid
        self.paid = np.zeros(n_workers)
        self.trusted = np.zeros(n_workers, dtype=bool)
        self.last_fit: CampaignFit | None = None

    # -- the stream -------------------------------------------------------------------------
    def feed(self, index: int) -> None:
        a = self.all
        item, worker = int(a.item_idx[index]), int(a.worker_idx[index])
        if self.closed[item] or self.suspended[worker]:
            return
        self.used.append(index)
        self.by_item[item].append(index)
        if item in self.gold:
            # Gold items never close; each label on one is judged at once against the known label.
            if a.label_idx[index] == self.gold[item]:
                self.pending[worker].append(index)
            if len(self.used) >= self.next_refit:
                self.refit()
            return
        self.n_labels[item] += 1
        self.scores[item] += self.log_conf[worker, :, a.label_idx[index]]
        self._maybe_close(item)
        if len(self.used) >= self.next_refit:
            self.refit()

    def settle_epoch(self) -> None:
        # A campaign that cannot yet tell workers apart pays on agreement alone; one with gold
        # items judges them from the start (quality.selectors.annotation_verdicts).
        calibrated = self.last_fit is not None and self.last_fit.calibrated
        judged = calibrated or bool(self.gold)
        payable = self.trusted if judged else np.ones_like(self.trusted)
        for worker in np.flatnonzero(payable & ~self.suspended):
            self.paid[worker] += len(self.pending[worker])
            self.pending[worker].clear()

    def withheld(self) -> FloatArray:
        return np.array([len(p) for p in self.pending], dtype=np.float64)

    def _posterior(self, item: int) -> FloatArray:
        row = self.scores[item] - self.scores[item].max()
        e = np.exp(row)
        return np.asarray(e / e.sum())

    def _maybe_close(self, item: int, value: float | None = None) -> None:
        posterior = self._posterior(item)
        calibrated = self.last_fit is not None and self.last_fit.calibrated
        if value is None:
            # As quality.services.consensus: only a calibrated campaign values labels.
            value = (
                float(label_value(posterior, matrix=self.typical, temperature=self.temperature)[0])
                if calibrated and self.typical is not None
                else float("inf")
            )
        if should_close(
            policy=self.policy,
            n_labels=int(self.n_labels[item]),
            confidence=float(posterior.max()),
            is_gold=False,
            value=value,
        ):
            self._close(item, posterior)

    def _close(self, item: int, posterior: FloatArray) -> None:
        self.closed[item] = True
        label = int(decide(posterior[None], class_priors=self.priors)[0])
        a = self.all
        for index in self.by_item[item]:
            worker = int(a.worker_idx[index])
            if a.label_idx[index] == label and not self.suspended[worker]:
                self.pending[worker].append(index)

    # -- refits ------------------------------------------------------------------------------
    def used_answers(self) -> Answers:
        idx = np.asarray(self.used, dtype=np.intp)
        a = self.all
        used = Answers(
            worker_idx=a.worker_idx[idx],
            item_idx=a.item_idx[idx],
            label_idx=a.label_idx[idx],
            n_workers=a.n_workers,
            n_items=a.n_items,
            n_classes=a.n_classes,
        )
        return used.with_gold(self.gold) if self.gold else used

    def fit(self) -> CampaignFit:
        used = self.used_answers()
        if self.model is not None and self.last_fit is not None:
            predicted = self.model(used, self.last_fit, self.closed)
            if predicted is not None:
                self.model_items, self.model_labels = predicted
        return fit_campaign(used, model_items=self.model_items, model_labels=self.model_labels)

    def refit(self) -> None:
        fit = self.fit()
        self.last_fit = fit
        self.refits += 1
        live = live_parameters(fit)
        self.default = live.default
        self.typical = live.typical
        self.temperature = live.temperature
        self.priors = live.class_priors
        self.log_conf = live.temperature * np.log(live.confusions)
        used = self.used_answers()
        scores = log_likelihood_scores(
            item_layout(used), log_confusions=self.log_conf, log_priors=np.log(self.priors)
        ).T
        if live.model is not None and self.model_items.size:
            self.model_log = live.temperature * np.log(live.model)
            scores[self.model_items] += self.model_log[:, self.model_labels].T
        self.scores = np.ascontiguousarray(scores)
        self.apply_statuses(fit)
        candidates = np.array(
            [i for i in np.flatnonzero(~self.closed & (self.n_labels > 0)) if i not in self.gold],
            dtype=np.intp,
        )
        values = np.full(candidates.size, np.inf)
        if fit.calibrated and candidates.size and self.typical is not None:
            # As quality.services.refit_items: every open item valued at once.
            shifted = self.scores[candidates] - self.scores[candidates].max(axis=1, keepdims=True)
            posteriors = np.exp(shifted)
            posteriors /= posteriors.sum(axis=1, keepdims=True)
            values = label_value(posteriors, matrix=self.typical, temperature=self.temperature)
        for item, value in zip(candidates.tolist(), values.tolist(), strict=True):
            self._maybe_close(item, value)
        self.next_refit = len(self.used) + max(REFIT_MIN_NEW, int(REFIT_GROWTH * len(self.used)))

    def apply_statuses(self, fit: CampaignFit) -> None:
        # Trust and suspension are sticky, as in the product (staff can lift a suspension).
        self.trusted |= fit.trusted
        if self.settings.suspend:
            newly = fit.likely_spammers & ~self.suspended
            self.suspended |= fit.likely_spammers
            for worker in np.flatnonzero(newly):
                self.pending[worker].clear()  # accepted but unpaid: rejected

    def finish(self) -> CampaignFit:
        fit = self.fit()
        self.last_fit = fit
        self.apply_statuses(fit)
        self.settle_epoch()
        return fit


def replay(
    data: Dataset, *, seed: int, settings: Settings, model: ModelHook | None = None
) -> Outcome:
    started = time.perf_counter()
    answers = data.answers
    order = np.random.default_rng(seed).permutation(answers.n_answers)
    campaign_gold = gold_items(data, share=settings.gold_share, seed=seed)
    live = LiveCampaign(answers, settings=settings, model=model, gold=campaign_gold)
    epoch_ends = set(np.linspace(0, answers.n_answers, EPOCHS + 1).astype(int)[1:-1].tolist())
    for position, index in enumerate(order):
        live.feed(int(index))
        if position + 1 in epoch_ends:
            live.settle_epoch()
    fit = live.finish()
    return Outcome(
        labels_used=len(live.used),
        labels_available=answers.n_answers,
        # Scored on the items whose answer the campaign did not know.
        accuracy=score(
            fit.labels, gold={i: g for i, g in data.gold.items() if i not in campaign_gold}
        ).accuracy,
        refits=live.refits,
        paid=live.paid,
        withheld=live.withheld(),
        suspended=live.suspended,
        closed=int(live.closed.sum()),
        n_items=answers.n_items,
        seconds=time.perf_counter() - started,
    )


# -- the report ----------------------------------------------------------------------------------


def able_workers(data: Dataset) -> np.ndarray:
    """Honest workers above the trust bar by the dataset's gold (for the report only): the kappa
    of their answers on every gold-known item (confusion rows from the gold, a worker without an
    answer on some class counted at chance there) at least sqrt(spam threshold), the bar
    `spam.trust_evidence` asks the campaign to be 90 % sure of. A reward withheld from a worker
    below it is the rule working, not a cost of the rule."""
    a = data.answers
    k = a.n_classes
    gold_of = np.full(a.n_items, -1, dtype=np.intp)
    for item, label in data.gold.items():
        gold_of[item] = label
    known = gold_of[a.item_idx]
    on = known >= 0
    counts = np.bincount(
        (a.worker_idx[on] * k + known[on]) * k + a.label_idx[on], minlength=a.n_workers * k * k
    ).reshape(a.n_workers, k, k)
    rows = counts.sum(axis=2, keepdims=True)
    matrices = np.where(rows > 0, counts / np.maximum(rows, 1), 1.0 / k)
    priors = np.bincount(np.array(list(data.gold.values())), minlength=k) / len(data.gold)
    return np.asarray(kappa(matrices, class_priors=priors) >= np.sqrt(SPAM_THRESHOLD))


def mv_accuracy(data: Dataset) -> float:
    return score(majority_vote(data.answers).labels, gold=data.gold).accuracy


def mean(values: list[float]) -> float:
    return float(np.mean(values))


def cost_and_spam(data: Dataset, *, seeds: int, settings: Settings) -> dict[str, float]:
    clean = [replay(data, seed=s, settings=settings) for s in range(seeds)]
    spiked_runs = []
    spam_share: list[float] = []
    honest_withheld: list[float] = []
    able = able_workers(data)
    able_withheld: list[float] = []
    for s in range(seeds):
        spiked = with_spammers(data, share=SPAM_SHARE, seed=1000 + s)
        outcome = replay(spiked, seed=s, settings=settings)
        spiked_runs.append(outcome)
        spam_paid = outcome.paid[data.answers.n_workers :].sum()
        spam_share.append(float(spam_paid / max(outcome.paid.sum(), 1.0)))
        honest = slice(0, data.answers.n_workers)
        honest_accepted = outcome.paid[honest].sum() + outcome.withheld[honest].sum()
        honest_withheld.append(float(outcome.withheld[honest].sum() / max(honest_accepted, 1.0)))
        held = outcome.withheld[: able.size][able].sum()
        able_paid = outcome.paid[: able.size][able].sum()
        able_withheld.append(float(held / max(held + able_paid, 1.0)))
    mv_full = 100 * mv_accuracy(data)
    return {
        "mv_full": mv_full,
        "seeds_met": float(
            sum(100 * o.accuracy >= mv_full and o.label_share <= COST_TARGET for o in clean)
        ),
        **{f"accuracy_{i}": 100 * o.accuracy for i, o in enumerate(clean)},
        **{f"label_share_{i}": o.label_share for i, o in enumerate(clean)},
        **{f"spam_reward_share_{i}": v for i, v in enumerate(spam_share)},
        **{f"spam_accuracy_{i}": 100 * o.accuracy for i, o in enumerate(spiked_runs)},
        "accuracy": 100 * mean([o.accuracy for o in clean]),
        "label_share": mean([o.label_share for o in clean]),
        "refits": mean([o.refits for o in clean]),
        "seconds": mean([o.seconds for o in clean]),
        "suspended_clean": mean([float(o.suspended.sum()) for o in clean]),
        "spam_accuracy": 100 * mean([o.accuracy for o in spiked_runs]),
        "spam_label_share": mean([o.label_share for o in spiked_runs]),
        "spam_reward_share": mean(spam_share),
        "honest_withheld": mean(honest_withheld),
        "able_withheld": mean(able_withheld),
        "able_workers": float(able.mean()),
        **{f"honest_withheld_{i}": v for i, v in enumerate(honest_withheld)},
        "clean_withheld": mean(
            [float(o.withheld.sum() / max(o.withheld.sum() + o.paid.sum(), 1.0)) for o in clean]
        ),
        "spammers_suspended": mean(
            [
                float(o.suspended[data.answers.n_workers :].mean())
                for o in spiked_runs
                if o.suspended.size > data.answers.n_workers
            ]
        ),
        "honest_suspended": mean(
            [float(o.suspended[: data.answers.n_workers].sum()) for o in spiked_runs]
        ),
    }


# (gold share, min_gain) of the trade-off table: the previous policy first, then this one's knobs.
CURVE = (
    (0.0, 0.0),
    (GOLD_SHARE, 0.0),
    (GOLD_SHARE, 0.01),
    (GOLD_SHARE, MIN_GAIN),
    (GOLD_SHARE, 0.03),
)


def curve(data: Dataset, *, points: tuple[tuple[float, float], ...] = CURVE) -> list[str]:
    cells = []
    for gold, gain in points:
        o = replay(data, seed=0, settings=Settings(min_gain=gain, gold_share=gold))
        cells.append(f"{100 * o.accuracy:.2f} @ {100 * o.label_share:.1f}%")
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--out", type=Path, default=None, help="append the tables to this file")
    parser.add_argument("--no-curve", action="store_true")
    args = parser.parse_args(argv)
    settings = Settings()
    started = time.perf_counter()
    rows: dict[str, dict[str, float]] = {}
    curves: dict[str, list[str]] = {}
    for name in args.datasets:
        data = load(args.data, name)
        rows[name] = cost_and_spam(data, seeds=args.seeds, settings=settings)
        print(name, {k: round(v, 4) for k, v in rows[name].items()}, flush=True)
        if not args.no_curve:
            curves[name] = curve(data)
            print(name, curves[name], flush=True)
    text = report(rows, curves, seeds=args.seeds, seconds=time.perf_counter() - started)
    text_curve_header = [f"gold {g:.0%}, min_gain {gain}" for g, gain in CURVE]
    if curves:
        text += curve_table(curves, text_curve_header)
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0


def report(
    rows: dict[str, dict[str, float]], curves: dict[str, list[str]], *, seeds: int, seconds: float
) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Cost and spam: live-campaign replay (`bench/quality/replay.py`)",
        "",
        f"Made by `python -m bench.quality.replay` on {stamp} in {seconds:.0f} s; "
        f"{platform.machine()}, Python {sys.version.split()[0]}, numpy {np.__version__}. "
        f"Policy: min_labels 1, target_confidence 0.95, min_gain {MIN_GAIN} (labels valued once "
        f"the campaign is calibrated), {GOLD_SHARE:.0%} of the items gold (their labels counted), "
        f"no max_labels beyond the data; mean of {seeds} random answer orders.",
        "",
        "| dataset | MV, full overlap (%) | Kyodo live (%) | labels used | refits | "
        "target met | +30% spammers (%) | loss (pts) | spammers' share of rewards paid | "
        "spammers suspended | honest suspended | honest rewards withheld (no spam / spam) | "
        "workers above the trust bar | their rewards withheld (spam) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        met = r["accuracy"] >= r["mv_full"] and r["label_share"] <= COST_TARGET
        loss = r["accuracy"] - r["spam_accuracy"]
        lines.append(
            f"| {name} | {r['mv_full']:.2f} | {r['accuracy']:.2f} | "
            f"{100 * r['label_share']:.1f}% | {r['refits']:.0f} | {'yes' if met else 'no'} | "
            f"{r['spam_accuracy']:.2f} | {loss:+.2f} | {100 * r['spam_reward_share']:.2f}% | "
            f"{100 * r['spammers_suspended']:.0f}% | {r['honest_suspended']:.1f} | "
            f"{100 * r['clean_withheld']:.0f}% / {100 * r['honest_withheld']:.0f}% | "
            f"{100 * r['able_workers']:.0f}% | {100 * r['able_withheld']:.0f}% |"
        )
    lines += [
        "",
        "Per answer order (accuracy % @ labels used; with spammers: accuracy %, loss in points, "
        "spammers' share of rewards, honest rewards withheld):",
        "",
        "| dataset | " + " | ".join(f"order {i}" for i in range(seeds)) + " | orders meeting "
        "the cost target |",
        "|---|" + "---:|" * seeds + "---:|",
    ]
    for name, r in rows.items():
        cells = [
            f"{r[f'accuracy_{i}']:.2f} @ {100 * r[f'label_share_{i}']:.1f}%; "
            f"{r[f'spam_accuracy_{i}']:.2f}, "
            f"{r[f'accuracy_{i}'] - r[f'spam_accuracy_{i}']:+.2f}, "
            f"{100 * r[f'spam_reward_share_{i}']:.2f}%, {100 * r[f'honest_withheld_{i}']:.0f}%"
            for i in range(seeds)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['seeds_met']:.0f} of {seeds} |")
    lines.append("")
    return "\n".join(lines) + "\n"


def curve_table(curves: dict[str, list[str]], header: list[str]) -> str:
    lines = [
        "Accuracy (%) @ share of the labels used, one answer order (seed 0), by gold share and "
        "min_gain (0: items close on target_confidence alone, as before):",
        "",
        "| dataset | " + " | ".join(header) + " |",
        "|---|" + "---:|" * len(header),
    ]
    for name, cells in curves.items():
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
