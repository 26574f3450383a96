"""Bounding boxes from several contributors: matching by IoU, weighted box fusion, agreement.

Coordinates are fractions of the image (0 to 1, origin top left): `x`, `y` the top-left corner,
`w`, `h` the size, as `labeling.schema` stores them. Per item:

1. Every contributor's boxes, heaviest contributor first, join the cluster of the same class whose
   fused box they overlap most, if that IoU is at least `iou_threshold` (0.5, the PASCAL VOC
   criterion) and the cluster holds no box of the same contributor yet; otherwise they start a
   cluster of their own.
2. A cluster's fused box is the weighted mean of its boxes' corners (weighted box fusion, Solovyev
   et al. 2021), the weights being the contributors' skills.
3. A cluster's *support* is the weight of the contributors who drew it over the weight of all who
   annotated the item. Clusters with support of at least `min_support` (0.5: a weighted majority)
   are kept as the consensus boxes; the rest are dropped as one contributor's extra.
4. A contributor's box is accepted if its cluster is kept and it overlaps the fused box by at
   least `iou_threshold`. The item's confidence is the least decisive cluster's
   `max(support, 1 - support)`: 1 when everyone agrees on every box, 0.5 when a box has exactly
   half the weight behind it (1 for an item where nobody drew anything).
5. A contributor's annotation as a whole scores F1 = 2 * matched / (its boxes + consensus boxes),
   where matched counts its accepted boxes (1 when both are empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quality.aggregation._numeric import FloatArray, IntArray

IOU_THRESHOLD = 0.5
MIN_SUPPORT = 0.5


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    label: int

    @property
    def corners(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)


@dataclass(frozen=True)
class FusedBox:
    x: float
    y: float
    w: float
    h: float
    label: int
    support: float  # weight share of the item's contributors who drew it
    contributors: tuple[int, ...]  # indexes into the item's contributions
    kept: bool


@dataclass(frozen=True)
class BoxConsensus:
    boxes: list[FusedBox]  # kept and dropped clusters; `consensus` are the kept ones
    accepted: list[list[bool]]  # per contribution, per box: accepted
    f1: list[float]  # per contribution
    confidence: float

    @property
    def consensus(self) -> list[FusedBox]:
        return [box for box in self.boxes if box.kept]


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """(n, m) intersection over union of corner boxes (x1, y1, x2, y2), rows of `a` and `b`."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(
        np.divide(inter, union, out=np.zeros_like(inter), where=union > 0), dtype=np.float64
    )


@dataclass
class _Cluster:
    label: int
    corners: list[tuple[float, float, float, float]]
    weights: list[float]
    members: list[tuple[int, int]]  # (contribution, box index)

    def fused(self) -> FloatArray:
        w = np.asarray(self.weights)
        return np.asarray(
            (np.asarray(self.corners) * w[:, None]).sum(axis=0) / w.sum(), dtype=np.float64
        )


def fuse_boxes(
    contributions: Sequence[Sequence[Box]],
    *,
    weights: Sequence[float] | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    min_support: float = MIN_SUPPORT,
) -> BoxConsensus:
    """The consensus of one item's contributions (one list of boxes per contributor)."""
    n = len(contributions)
    weight = np.ones(n) if weights is None else np.maximum(np.asarray(weights, float), 1e-9)
    clusters: list[_Cluster] = []
    # Heaviest contributor first (stable on ties), each contributor's boxes in the given order.
    for c in sorted(range(n), key=lambda i: (-weight[i], i)):
        for b, box in enumerate(contributions[c]):
            home = _best_cluster(clusters, box, contributor=c, iou_threshold=iou_threshold)
            if home is None:
                clusters.append(_Cluster(box.label, [box.corners], [weight[c]], [(c, b)]))
            else:
                home.corners.append(box.corners)
                home.weights.append(float(weight[c]))
                home.members.append((c, b))
    total = float(weight.sum()) if n else 1.0
    fused_boxes: list[FusedBox] = []
    accepted = [[False] * len(boxes) for boxes in contributions]
    for cluster in clusters:
        corners = cluster.fused()
        support = float(sum(weight[c] for c, _ in cluster.members) / total)
        kept = support >= min_support
        fused_boxes.append(
            FusedBox(
                x=float(corners[0]),
                y=float(corners[1]),
                w=float(corners[2] - corners[0]),
                h=float(corners[3] - corners[1]),
                label=cluster.label,
                support=support,
                contributors=tuple(c for c, _ in cluster.members),
                kept=kept,
            )
        )
        if kept:
            overlaps = iou_matrix(np.asarray(cluster.corners), corners[None])[:, 0]
            for (c, b), overlap in zip(cluster.members, overlaps, strict=True):
                accepted[c][b] = bool(overlap >= iou_threshold)
    kept_count = sum(box.kept for box in fused_boxes)
    f1 = [
        1.0 if not boxes and not kept_count else 2.0 * sum(accepted[c]) / (len(boxes) + kept_count)
        for c, boxes in enumerate(contributions)
    ]
    confidence = min((max(b.support, 1.0 - b.support) for b in fused_boxes), default=1.0)
    return BoxConsensus(boxes=fused_boxes, accepted=accepted, f1=f1, confidence=confidence)


def _best_cluster(
    clusters: list[_Cluster], box: Box, *, contributor: int, iou_threshold: float
) -> _Cluster | None:
    candidates = [
        cluster
        for cluster in clusters
        if cluster.label == box.label and all(c != contributor for c, _ in cluster.members)
    ]
    if not candidates:
        return None
    overlaps = iou_matrix(np.asarray([box.corners]), np.stack([c.fused() for c in candidates]))[0]
    best = int(np.argmax(overlaps))
    return candidates[best] if overlaps[best] >= iou_threshold else None


# --- contributors: who draws boxes that others do not see ---------------------------------------

# A box contributor is a spammer when 95 % sure that fewer than this share of their annotations
# would be accepted against the other contributors' consensus (random boxes: about none; a careful
# contributor: most). Trusted when 90 % sure of at least this share.
BOX_SPAM_RATE = 0.25
BOX_DRAWS = 256


def leave_one_out_accepted(
    contributions: Sequence[Sequence[Box]],
    *,
    weights: Sequence[float] | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    accept_f1: float = 0.5,
) -> list[bool | None]:
    """Per contribution: would it be accepted (F1 >= `accept_f1`) against the consensus of the
    item's *other* contributions? None when there are no others (no evidence either way).

    A contributor's own boxes never vouch for themselves: with two contributors, each is judged
    against the other alone."""
    n = len(contributions)
    weight = [1.0] * n if weights is None else list(weights)
    out: list[bool | None] = []
    for j in range(n):
        others = [c for i, c in enumerate(contributions) if i != j]
        if not others:
            out.append(None)
            continue
        fused = fuse_boxes(
            others, weights=[w for i, w in enumerate(weight) if i != j], iou_threshold=iou_threshold
        )
        out.append(_f1_against(contributions[j], fused.consensus, iou_threshold) >= accept_f1)
    return out


def _f1_against(boxes: Sequence[Box], consensus: Sequence[FusedBox], iou_threshold: float) -> float:
    """F1 of one contribution against fixed consensus boxes (one-to-one, same class, IoU)."""
    if not boxes and not consensus:
        return 1.0
    if not boxes or not consensus:
        return 0.0
    a = np.asarray([b.corners for b in boxes])
    c = np.asarray([(f.x, f.y, f.x + f.w, f.y + f.h) for f in consensus])
    overlaps = iou_matrix(a, c)
    same = np.asarray([b.label for b in boxes])[:, None] == np.asarray([f.label for f in consensus])
    overlaps = np.where(same, overlaps, 0.0)
    rows: set[int] = set()
    cols: set[int] = set()
    # Greedy by overlap, highest first: each box on either side matches at most once.
    for flat in np.argsort(-overlaps, axis=None, kind="stable").tolist():
        i, k = divmod(flat, overlaps.shape[1])
        if overlaps[i, k] < iou_threshold:
            break
        if i in rows or k in cols:
            continue
        rows.add(i)
        cols.add(k)
    return 2.0 * len(rows) / (len(boxes) + len(consensus))


def box_worker_status(
    accepted: IntArray,
    judged: IntArray,
    *,
    rate: float = BOX_SPAM_RATE,
    spam_certainty: float = 0.95,
    trust_certainty: float = 0.9,
    draws: int = BOX_DRAWS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, FloatArray]:
    """(spammers, trusted, P(acceptance rate >= `rate`)) per contributor, from how many of their
    judged annotations were accepted leave-one-out. Beta(accepted + 1, rejected + 1) posterior,
    Monte Carlo with a fixed seed (deterministic); few judged annotations keep it undecided."""
    a = np.asarray(accepted, dtype=np.float64) + 1.0
    b = np.asarray(judged, dtype=np.float64) - np.asarray(accepted, dtype=np.float64) + 1.0
    samples = np.random.default_rng(seed).beta(a, b, size=(draws, a.size))
    informative = np.asarray((samples >= rate).mean(axis=0), dtype=np.float64)
    return informative <= 1.0 - spam_certainty, informative >= trust_certainty, informative
