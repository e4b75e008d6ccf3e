"""Pure metric functions: answer normalization and scoring, continual-learning metrics, perplexity.

Nothing here touches a model; inputs are strings, counts and accuracy tables, outputs are floats.

Answer scoring follows SQuAD (Rajpurkar et al., 2016): answers are normalized (lowercase, punctuation and
the articles a/an/the removed, whitespace collapsed) and compared by exact match and token F1; a free-text
reply (a chat model's sentence) is also scored by whether it contains the gold (`contains_answer`).

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


SCORES = ("exact", "contains", "f1")


def reply_score(reply: str, gold: str, how: str) -> float:
    """One model reply against its gold answer, scored `how`: "exact" (the reply's `first_answer` equals the
    gold after normalisation; bare-value answers), "contains" (`contains_answer` on the first answer: a sentence
    that holds the gold counts) or "f1" (token F1 of the first answer). Returns a float in [0, 1]."""
    first = first_answer(reply)
    if how == "exact":
        return exact_match(first, gold)
    if how == "contains":
        return contains_answer(first, gold)
    if how == "f1":
        return token_f1(first, gold)
    raise ValueError(f"unknown score {how!r}; expected one of {SCORES}")


def agree(answer: str, reference: str, how: str) -> bool:
    """Whether two replies give the same answer: their first answers are equal after normalisation ("exact"),
    or, for free-text replies ("contains", "f1"), share at least half their tokens (token F1 >= 0.5)."""
    a, r = first_answer(answer), first_answer(reference)
    if how == "exact":
        return exact_match(a, r) > 0
    if how not in SCORES:
        raise ValueError(f"unknown score {how!r}; expected one of {SCORES}")
    return token_f1(a, r) >= 0.5


def agreement(answers: Sequence[str], references: Sequence[str], score: str = "exact") -> float:
    """Share of answers that `agree` with their reference (`score`: exact, contains, f1); 0.0 for no pairs."""
    pairs = list(zip(answers, references))
    return sum(agree(a, r, score) for a, r in pairs) / len(pairs) if pairs else 0.0


def per_memory(
    memory_ids: Sequence[str], answers: Sequence[str], references: Sequence[str], score: str = "exact"
) -> dict[str, float]:
    """memory id -> `agreement` of its answers with their references (answers grouped by `memory_ids`)."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for mid, a, r in zip(memory_ids, answers, references):
        groups.setdefault(mid, ([], []))[0].append(a)
        groups[mid][1].append(r)
    return {mid: agreement(a, r, score) for mid, (a, r) in groups.items()}


def _gold_list(gold: str | Sequence[str]) -> list[str]:
    return [gold] if isinstance(gold, str) else list(gold)


def contains_answer(prediction: str, gold: str | Sequence[str]) -> float:
    """1.0 if a normalized gold answer occurs in the normalized prediction as whole tokens, else 0.0.

    `prediction` is one reply (free text, e.g. a chat model's sentence); `gold` is one answer or a sequence of
    accepted answers (the answer and its aliases). Both sides go through `normalize_answer` and are split into
    whitespace tokens; a gold counts when its tokens appear contiguously, in order, in the prediction's tokens.
    So "Paris" is in "It is Paris." but "par" is not in "Paris", and "New York" is not in "York, New". A gold
    that normalizes to nothing ("", "the") never counts; no gold at all -> 0.0.
    """
    pred = normalize_answer(prediction).split()
    for g in _gold_list(gold):
        toks = normalize_answer(g).split()
        if toks and any(pred[i : i + len(toks)] == toks for i in range(len(pred) - len(toks) + 1)):
            return 1.0
    return 0.0


def score_replies(predictions: Sequence[str], golds: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Mean exact match, token F1 and `contains_answer` over aligned free-text replies and their golds.

    `predictions[i]` is a reply and `golds[i]` its gold answer or sequence of accepted answers (equal lengths,
    else ValueError). Per item, EM and F1 take the best over the accepted answers (as SQuAD does; an empty
    sequence scores 0), and `contains` is `contains_answer`. Returns {"em", "f1", "contains", "n"}; with no
    pairs, all means are 0.0 and "n" is 0. Replies are scored as given (no `first_answer` cut), so a sentence
    reply ("It is Paris.") scores EM 0 but contains 1.
    """
    if len(predictions) != len(golds):
        raise ValueError(f"score_replies: {len(predictions)} predictions but {len(golds)} references")
    n = len(predictions)
    if n == 0:
        return {"em": 0.0, "f1": 0.0, "contains": 0.0, "n": 0}
    em = f1 = contains = 0.0
    for p, g in zip(predictions, golds, strict=True):
        accepted = _gold_list(g)
        em += max((exact_match(p, a) for a in accepted), default=0.0)
        f1 += max((token_f1(p, a) for a in accepted), default=0.0)
        contains += contains_answer(p, accepted)
    return {"em": em / n, "f1": f1 / n, "contains": contains / n, "n": n}


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
