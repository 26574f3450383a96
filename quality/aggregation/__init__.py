"""Label aggregation for crowd answers: pure numpy, no Django, so anything can import it.

Typical use::

    answers, codebook = encode_answers(workers=..., tasks=..., labels=...)
    result = aggregate(answers)                      # DEFAULT_METHOD
    codebook.decode_labels(result.labels), result.confidence

On each new answer between full runs, `item_posterior` re-scores one item with the confusion
matrices and class priors of the last full `Result`.
"""

from quality.aggregation.answers import AnswerEncoder, Answers, Codebook, encode_answers
from quality.aggregation.confusion import dawid_skene, gold_dawid_skene
from quality.aggregation.incremental import item_posterior, posteriors_given
from quality.aggregation.metrics import Score, score
from quality.aggregation.one_coin import one_coin_dawid_skene
from quality.aggregation.registry import (
    DEFAULT_METHOD,
    METHOD_SUMMARIES,
    METHODS,
    NEEDS_GOLD,
    aggregate,
)
from quality.aggregation.result import Result
from quality.aggregation.voting import majority_vote, weighted_vote

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "METHOD_SUMMARIES",
    "NEEDS_GOLD",
    "AnswerEncoder",
    "Answers",
    "Codebook",
    "Result",
    "Score",
    "aggregate",
    "dawid_skene",
    "encode_answers",
    "gold_dawid_skene",
    "item_posterior",
    "majority_vote",
    "one_coin_dawid_skene",
    "posteriors_given",
    "score",
    "weighted_vote",
]
