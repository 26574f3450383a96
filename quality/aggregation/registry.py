"""Every aggregator under one name, with one signature: `(answers) -> Result`."""

from __future__ import annotations

from collections.abc import Callable

from quality.aggregation.answers import Answers
from quality.aggregation.confusion import dawid_skene, gold_dawid_skene
from quality.aggregation.one_coin import one_coin_dawid_skene
from quality.aggregation.result import Result
from quality.aggregation.voting import majority_vote, weighted_vote

Aggregator = Callable[[Answers], Result]

METHODS: dict[str, Aggregator] = {
    "majority_vote": majority_vote,
    "weighted_vote": weighted_vote,
    "dawid_skene": dawid_skene,
    "one_coin_dawid_skene": one_coin_dawid_skene,
    "gold_dawid_skene": gold_dawid_skene,
}

METHOD_SUMMARIES: dict[str, str] = {
    "majority_vote": "one vote per answer; ties to the more frequent class",
    "weighted_vote": "votes weighted by each worker's agreement with the majority",
    "dawid_skene": "full confusion matrices by EM, empirical-Bayes priors (default)",
    "one_coin_dawid_skene": "one accuracy per worker by EM",
    "gold_dawid_skene": "Dawid-Skene with known-answer items fixed (needs gold/anchor items)",
}

# The most accurate method on the real crowd data sets in bench/quality (see docs/quality.md).
DEFAULT_METHOD = "dawid_skene"

# Methods that need gold items in their input.
NEEDS_GOLD = frozenset({"gold_dawid_skene"})


def aggregate(answers: Answers, *, method: str = DEFAULT_METHOD) -> Result:
    """Run the aggregator registered as `method`; `KeyError` names the known ones."""
    try:
        aggregator = METHODS[method]
    except KeyError:
        raise KeyError(f"unknown method {method!r}; known: {', '.join(METHODS)}") from None
    return aggregator(answers)
