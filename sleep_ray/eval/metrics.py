"""Pure metric functions: answer normalization and scoring, continual-learning metrics, perplexity.

Nothing here touches a model; inputs are strings, counts and accuracy tables, outputs are floats.

Answer scoring follows SQuAD (Rajpurkar et al., 2016): answers are normalized (lowercase, punctuation and
the articles a/an/the removed, whitespace collapsed) and compared by exact match and token F1.

Continual-learning metrics follow Lopez-Paz & Ranzato (2017, GEM) on an accuracy matrix; see
`continual_metrics` for the exact indexing.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

NAN = float("nan")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_STOPS: tuple[str, ...] = ("\n", "</s>")


def _is_punct(ch: str) -> bool:
    # Unicode punctuation (category P*), a superset of string.punctuation's P* characters, plus the ASCII
    # symbols string.punctuation holds that Unicode files under S* ($ + < = > ^ ` | ~).
    return unicodedata.category(ch).startswith("P") or ch in "$+<=>^`|~"


def normalize_answer(s: str) -> str:
    """SQuAD-style normalization: lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace.

    Punctuation is every Unicode punctuation character (so curly quotes and dashes go too) plus the ASCII
    symbols of `string.punctuation`. Removing punctuation joins its neighbours ("U.S." -> "us"), as in SQuAD.

        normalize_answer("The  Quinta-Labs, Inc.!") == "quintalabs inc"
    """
    s = s.lower()
    s = "".join(ch for ch in s if not _is_punct(ch))
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if `prediction` and `gold` are equal after `normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 between the normalized whitespace tokens of `prediction` and `gold`.

    common = multiset intersection of the two token lists; precision = |common| / |pred tokens|,
    recall = |common| / |gold tokens|, F1 = 2PR / (P + R). Both empty -> 1.0; exactly one empty -> 0.0;
    no token in common -> 0.0. Example: "Quinta Labs Inc" vs "Quinta Labs": P = 2/3, R = 1, F1 = 0.8.
    """
    pred_toks = normalize_answer(prediction).split()
    gold_toks = normalize_answer(gold).split()
    if not pred_toks and not gold_toks:
        return 1.0
    if not pred_toks or not gold_toks:
        return 0.0
    common = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_toks)
    recall = common / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def first_answer(generated: str, stops: Sequence[str] = _STOPS) -> str:
    """The answer in a model's raw continuation: text up to the first stop marker, stripped.

    Leading whitespace (including newlines) is skipped first, so a continuation that opens with a newline
    (" \\nParis\\nQ: ...") still yields "Paris". Then the text is cut at the earliest of `stops`
    (default: a newline or the end-of-text marker "</s>") and stripped.
    """
    text = generated.lstrip()
    cut = len(text)
    for stop in stops:
        i = text.find(stop)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].strip()


def _check_lengths(a: Sequence[str], b: Sequence[str], what: str) -> None:
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} predictions but {len(b)} references")


def score_answers(predictions: Sequence[str], golds: Sequence[str]) -> dict[str, float]:
    """Mean exact match and token F1 over aligned `predictions[i]` / `golds[i]` (equal lengths, else ValueError).

    Returns {"em": mean EM, "f1": mean F1, "n": count}; with no pairs, {"em": 0.0, "f1": 0.0, "n": 0}.
    Predictions are compared as given: apply `first_answer` to raw generations beforehand.
    """
    _check_lengths(predictions, golds, "score_answers")
    n = len(predictions)
    if n == 0:
        return {"em": 0.0, "f1": 0.0, "n": 0}
    em = sum(exact_match(p, g) for p, g in zip(predictions, golds, strict=True)) / n
    f1 = sum(token_f1(p, g) for p, g in zip(predictions, golds, strict=True)) / n
    return {"em": em, "f1": f1, "n": n}


def stale_rate(predictions: Sequence[str], stale_answers: Sequence[str]) -> float:
    """Fraction of predictions that exact-match (after normalization) the stale, superseded answer.

    `predictions[i]` is compared with `stale_answers[i]` (equal lengths, else ValueError). Empty input -> 0.0,
    like `score_answers`.
    """
    _check_lengths(predictions, stale_answers, "stale_rate")
    if not predictions:
        return 0.0
    return sum(exact_match(p, s) for p, s in zip(predictions, stale_answers, strict=True)) / len(predictions)


def _nanmean(values: Iterable[float]) -> float:
    kept = [float(v) for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else NAN


def continual_metrics(acc: Sequence[Sequence[float]]) -> dict[str, float]:
    """Continual-learning summary of an accuracy matrix of shape (T+1) x T.

    Indexing (0-based in code, cycles numbered 1..T): `acc[t][j - 1]` is the accuracy on cycle j's probes
    measured after finishing cycle t, for t = 0..T (row 0 = the model before any sleep) and j = 1..T.
    NaN marks "not measured"; every mean below skips NaN terms (and a difference with a NaN side), and is
    NaN when nothing is left.

    - `acc_before`  = mean_{j=1..T} acc[0][j-1]              (row-0 mean: what the model knew beforehand)
    - `acquisition` = mean_{j=1..T} acc[j][j-1]              (diagonal: learned right after its own cycle)
    - `acc_final`   = mean_{j=1..T} acc[T][j-1]              (last row: what is retained at the end)
    - `bwt`         = mean_{j=1..T-1} acc[T][j-1] - acc[j][j-1]   (backward transfer; < 0 is forgetting;
      NaN for T < 2)
    - `fwt`         = mean_{j=2..T} acc[j-1][j-1] - acc[0][j-1]   (forward transfer: accuracy on cycle j
      just before learning it, versus before any sleep; NaN for T < 2)

    Raises ValueError unless T >= 1 and there are T+1 rows of length T.
    """
    n_rows = len(acc)
    if n_rows < 2:
        raise ValueError(f"continual_metrics: need a (T+1) x T matrix with T >= 1, got {n_rows} row(s)")
    t_last = n_rows - 1
    for t, row in enumerate(acc):
        if len(row) != t_last:
            raise ValueError(f"continual_metrics: row {t} has {len(row)} entries, expected T = {t_last}")
    a = [[float(v) for v in row] for row in acc]
    cycles = range(1, t_last + 1)
    return {
        "acc_before": _nanmean(a[0][j - 1] for j in cycles),
        "acquisition": _nanmean(a[j][j - 1] for j in cycles),
        "acc_final": _nanmean(a[t_last][j - 1] for j in cycles),
        "bwt": _nanmean(a[t_last][j - 1] - a[j][j - 1] for j in range(1, t_last)),
        "fwt": _nanmean(a[j - 1][j - 1] - a[0][j - 1] for j in range(2, t_last + 1)),
    }


def gap_closure(closed_before: float, closed_after: float, in_context: float) -> float:
    """Fraction of the closed-book -> in-context gap closed by learning.

    (closed_after - closed_before) / (in_context - closed_before). NaN when the denominator is <= 0 (no gap
    to close) or any input is NaN. 1.0 = closed-book now matches the in-context upper reference; it can
    exceed 1 or be negative.
    """
    denom = in_context - closed_before
    if math.isnan(denom) or math.isnan(closed_after) or denom <= 0:
        return NAN
    return (closed_after - closed_before) / denom


def perplexity(total_nll: float, total_tokens: int) -> float:
    """exp(total_nll / total_tokens), with `total_nll` the summed natural-log negative log-likelihood.

    NaN when `total_tokens` <= 0; inf when the exponent overflows.
    """
    if total_tokens <= 0:
        return NAN
    try:
        return math.exp(total_nll / total_tokens)
    except OverflowError:
        return math.inf
