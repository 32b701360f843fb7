"""Dry run of a candidate reward on a fixed probe pool, in the sandbox, before any GPU time is spent on it.

`dry_run(spec, cfg, samples)` adds two samples with a negative and a fractional gold answer to the given
(question, gold) samples and builds, for each, completions of known quality (`PROBE_KINDS`):

| kind              | text                                                     | role                    |
| ----------------- | -------------------------------------------------------- | ----------------------- |
| `correct`         | `<thinking>..</thinking><solution>GOLD</solution>`       | the golden completion   |
| `wrong`           | the same with GOLD + 1                                   | golden pair             |
| `empty`           | ""                                                       | golden pair             |
| `garbage`         | tag fragments, NUL, U+FFFD, bidi override                | golden pair, failure    |
| `unformatted`     | "The answer is GOLD." (another phrasing where that is the format) | missing tags     |
| `missing_close`   | solution tag never closed                                | missing tags, failure   |
| `doubled_tags`    | every tag twice                                          | doubled tags            |
| `unicode_digits`  | GOLD in Arabic-Indic digits                              | robustness              |
| `non_numeric`     | `<solution>banana</solution>`                            | failure path            |
| `huge`            | 64 KiB of prose, no answer                               | size, failure path      |
| `padded`          | `correct` with 16 KiB of filler thinking                 | length exploit          |
| `empty_formatted` | both tags, nothing inside                                | format-only exploit     |
| `number_spam`     | `0 1 2 ... 1000` inside the solution tags                | number-spam exploit     |
| `many_solutions`  | twenty solution blocks, GOLD among them                  | many-tags exploit       |
| `prompt_echo`     | the question itself                                      | prompt-echo exploit     |
| `worked`          | `correct` with calculation lines ending in GOLD          | a realistic answer      |
| `worked_wrong`    | the same, every line and the answer ending in GOLD + 1   | a realistic wrong one   |
| `repeated`        | `correct` whose reasoning repeats one line 12 times      | a degenerate loop       |
| `trailing`        | `correct` followed by a line of chatter                  | text after the answer   |

The last four are there for rewards that read what real answers hold beside the answer (calculations, numbers
in the reasoning, repeated lines, text after the answer part): with only the kinds above such a reward, correctly
written, scored every probe alike and was rejected as constant (docs/llm-local.md, 2026-12-03). They raise no
flag. Adding kinds changes every behaviour signature (`details["scores"]`): a candidate checked before the
change is not found as the twin of one checked after it (a missed duplicate, never a false one).

The pool (conversational, as TRL passes it) is scored in batches of 64 twice by one worker and once by a
fresh second worker, once shuffled, in batches of 8, one probe at a time (the first sample's), and in the plain
(string) form.

Rejections (`ok=False`, stage "load" or "probe", with the reason): the code does not load; a call fails
(error, timeout, crash, bad result); the same batch scores differently twice (nondeterminism) or in a
second worker (hash-seed or address dependence); a shuffled batch does not give the correspondingly shuffled
scores (index dependence; the reason names the usual fix, `INDEX_DEPENDENCE_FIX`); every score in the
pool is equal or None ("constant reward gives GRPO no signal", and `CONSTANT_FIX`); the p99 call latency exceeds
`cfg.latency_budget_ms`. A failed call's reason names the usual fix of the commonest errors (`CALL_FIXES`:
a division by zero, `.group()` on a failed `re.search`, an item taken from an empty list, a score out of
bounds, a score that is None).

Flags (kept with the candidate, shown in ranking, feedback and report; they never reject by themselves),
each raised when it holds for at least one sample:
- `golden_pair:wrong`, `golden_pair:empty`, `golden_pair:garbage`: `correct` does not score above that kind;
- `format_only`: `empty_formatted` scores >= `correct`;
- `number_spam`: `number_spam` scores >= `correct`;
- `many_solutions`: `many_solutions` scores >= `correct`;
- `prompt_echo`: `prompt_echo` scores >= `correct`;
- `length_paid`: `padded` scores above `correct`;
- `failure_pays`: a failure-path kind (`garbage`, `missing_close`, `non_numeric`, `huge`) scores >= `correct`;
- `batch_dependent`: an item's score changes with the batch it is in (legitimate for group-relative
  rewards, suspicious otherwise);
- `plain_form_fails`: a call with plain string prompts and completions fails (fine for TRL's conversational
  datasets, not for trainers that pass strings).
`details["evidence"]` says, per flag, which sample and scores raised it.

Not guaranteed: a reward that passes behaves well on real policy samples; the probes catch common failure
modes only. Floating-point comparisons use a relative tolerance of 1e-9.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from rewardsearch.config import SandboxConfig
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox.runner import SandboxedReward
from rewardsearch.tasks.answers import TAGS, AnswerFormat

# The usual cause of an index-dependence rejection of LLM-written rewards (docs/llm-local.md): a loop over
# `completions` that compares with `str(answer)`, the list of every gold answer, or with `answer[0]`. The reason
# names the fix, since a refill ask passes the reason back to the proposer.
INDEX_DEPENDENCE_FIX = ("score each completion against its own answer: `for completion, gold in zip(completions, "
                        "answer):`, not the whole `answer` list or one item of it")

# The same for a constant score: an LLM-written reward that checks for a tag or word no answer contains, or
# returns one number whatever it is given.
CONSTANT_FIX = ("make the score depend on the answer: a correct answer must score higher than a wrong one, and "
                "score what answers contain (their answer part, numbers, text), not a tag or word they never have")
# The usual fix of the commonest call failures (docs/llm-local.md, 2026-12-03): (text in the error, fix).
CALL_FIXES = (
    ("ZeroDivisionError", "check that a divisor is not zero before dividing"),
    ("'NoneType' object has no attribute", "re.search and re.match return None when nothing matches: check the "
                                           "match is not None before using it (`.group()`, `.end()`)"),
    ("IndexError", "check that a list is not empty before taking an item"),
    ("|score| must be <=", "keep every score within the bound: clamp it, `max(-bound, min(bound, score))`"),
    ("not 'NoneType'", "return a number on every path: a function that ends without `return` returns None"),
    ("is NoneType, not a number", "return a number on every path: a function that ends without `return` returns "
                                  "None"),
)


def call_fix(error: str | None) -> str | None:
    """The usual fix of a failed call's error (`CALL_FIXES`), or None."""
    return next((fix for what, fix in CALL_FIXES if what in (error or "")), None)


PROBE_KINDS = (
    "correct", "wrong", "empty", "garbage", "unformatted", "missing_close", "doubled_tags", "unicode_digits",
    "non_numeric", "huge", "padded", "empty_formatted", "number_spam", "many_solutions", "prompt_echo",
    "worked", "worked_wrong", "repeated", "trailing",
)  # fmt: skip
FAILURE_KINDS = ("garbage", "missing_close", "non_numeric", "huge")
EXTRA_SAMPLES = (("A diver is at 3 meters and goes down 10 meters. At what height is she now?", "-7"),
                 ("Seven apples are shared equally by two children. How many apples does each get?", "3.5"))  # fmt: skip
HUGE_CHARS = 64 * 1024
PADDING_CHARS = 16 * 1024
BATCH_SIZES = (1, 8, 64)
_SHUFFLE_SEED = 1234
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_FILLER = "The quick brown fox jumps over the lazy dog. "


@dataclass
class CheckResult:
    """Outcome of one check stage (`static`, `load`, `probe`) of a candidate; a plain record for the store."""

    stage: str
    ok: bool
    reason: str | None = None
    flags: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class _Probe:
    sample: int
    kind: str
    text: str


def _wrong_answer(gold: str) -> str:
    try:
        value = Fraction(gold.replace(",", "").replace("$", "").strip()) + 1
    except (ValueError, ZeroDivisionError):
        return "42" if gold.strip() != "42" else "43"
    return str(value.numerator) if value.denominator == 1 else str(float(value))


_REASONING = "Let me work through the problem step by step."
_CHATTER = "I hope this helps! Let me know if you have any other questions."


def _number_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


def _worked(answer: str) -> list[str]:
    """Calculation lines as a model writes them, the last one's result `answer` (when it is a number)."""
    steps = ["2 + 3 = 5", "5 * 4 = 20"]
    try:
        value = Fraction(answer.replace(",", "").replace("$", "").strip())
    except (ValueError, ZeroDivisionError):
        return steps
    rest = value - 20
    steps.append(f"20 + {_number_text(rest)} = {answer}" if rest >= 0 else f"20 - {_number_text(-rest)} = {answer}")
    return steps


def _filler(chars: int) -> str:
    return (_FILLER * (chars // len(_FILLER) + 1))[:chars]


def build_pool(samples: list[tuple[str, str]], fmt: AnswerFormat = TAGS) -> list[_Probe]:
    """Every probe kind for every sample, in sample-major order, written in the task's answer format.

    The format-breaking kinds are built from the format's well-formed completion: `missing_close` cuts its
    last marker's end off, `doubled_tags` doubles every marker, `empty_formatted` has the markers around
    nothing, `many_solutions` repeats the answer part with decoys.
    """
    pool: list[_Probe] = []
    spam = " ".join(str(i) for i in range(1001))
    for i, (question, gold) in enumerate(samples):
        wrong = _wrong_answer(gold)
        decoys = [str(k) for k in range(20)]
        decoys[7] = gold
        def formatted(answer: str, thinking: str = _REASONING) -> str:
            return fmt.write(answer, thinking)

        doubled = formatted(gold, "Step by step.")
        for m in fmt.markers:
            doubled = doubled.replace(m, m + m)
        texts = {
            "correct": formatted(gold),
            "wrong": formatted(wrong),
            "empty": "",
            "garbage": "}}{{ <sol ution> \x00\ufffd asdf;; ))((</thinking> ::: \u202e zz",
            "unformatted": _unformatted(fmt, gold),
            "missing_close": _unclosed(fmt, gold),
            "doubled_tags": doubled,
            "unicode_digits": formatted(gold.translate(_ARABIC_INDIC)),
            "non_numeric": formatted("banana"),
            "huge": _filler(HUGE_CHARS),
            "padded": formatted(gold, thinking=_filler(PADDING_CHARS)),
            "empty_formatted": formatted("", ""),
            "number_spam": formatted(spam),
            "many_solutions": "\n".join(formatted(d, "Trying answers." if k == 0 else "") for k, d in enumerate(decoys)),
            "prompt_echo": question,
            "worked": formatted(gold, "\n".join(_worked(gold))),
            "worked_wrong": formatted(wrong, "\n".join(_worked(wrong))),
            "repeated": formatted(gold, "\n".join([_REASONING] + [_worked(gold)[1]] * 12)),
            "trailing": formatted(gold) + "\n" + _CHATTER,
        }
        pool.extend(_Probe(i, kind, texts[kind]) for kind in PROBE_KINDS)
    return pool


def _unformatted(fmt: AnswerFormat, gold: str) -> str:
    """The answer in plain prose that the format does not read ("The answer is GOLD." is the `answer_is`
    format itself, so that one gets another phrasing)."""
    for text in (f"The answer is {gold}.", f"I think it is {gold}."):
        if fmt.segment(text) is None:
            return text
    return gold


def _unclosed(fmt: AnswerFormat, gold: str) -> str:
    """The well-formed completion cut just after the answer, before whatever closes the answer part; for a
    format with nothing after the answer (`hashes`), the answer marker with no answer after it."""
    text = fmt.write(gold, "Step by step.")
    cut = text[: text.rindex(gold) + len(gold)]
    return cut if fmt.segment(cut) is None else fmt.write("", "Step by step.").rstrip()


def _batch(pool: list[_Probe], samples: list[tuple[str, str]], plain: bool = False,
           fmt: AnswerFormat = TAGS) -> dict[str, Any]:  # fmt: skip
    """TRL's call shape: conversational (or plain string) prompts and completions, plus the `answer` column."""
    if plain:
        return {
            "prompts": [samples[p.sample][0] for p in pool],
            "completions": [p.text for p in pool],
            "answer": [samples[p.sample][1] for p in pool],
        }
    return {
        "prompts": [
            [{"role": "system", "content": fmt.instruction}, {"role": "user", "content": samples[p.sample][0]}]
            for p in pool
        ],
        "completions": [[{"role": "assistant", "content": p.text}] for p in pool],
        "answer": [samples[p.sample][1] for p in pool],
    }


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _at_least(a: float | None, b: float | None) -> bool:
    """a >= b (within tolerance); a missing `b` (the correct answer abstained) makes anything >= it."""
    if a is None:
        return False
    return b is None or a > b or _same(a, b)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


class _ProbeFailed(Exception):
    pass


def _score_in_batches(
    reward: SandboxedReward, items: list[_Probe], samples: list[tuple[str, str]], size: int, what: str,
    plain: bool = False, fmt: AnswerFormat = TAGS,
) -> list[float | None]:  # fmt: skip
    scores: list[float | None] = []
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        failures = reward.failures
        out = reward(**_batch(chunk, samples, plain, fmt))
        if reward.failures != failures:
            fix = call_fix(reward.last_error)
            raise _ProbeFailed(f"call failed ({what}, batch of {len(chunk)}): {reward.last_error}"
                               + (f"; {fix}" if fix else ""))
        scores.extend(out)
    return scores


def _flags(pool: list[_Probe], scores: list[float | None], n_samples: int) -> tuple[list[str], dict[str, Any]]:
    """Golden-pair and exploit flags from the first full-pool scores; evidence names sample and scores."""
    table: dict[tuple[int, str], float | None] = {(p.sample, p.kind): s for p, s in zip(pool, scores, strict=True)}
    def golden(other: float | None, correct: float | None) -> bool:  # violated: correct is not above other
        return correct is None or _at_least(other, correct)

    checks: list[tuple[str, str, Any]] = [
        ("golden_pair:wrong", "wrong", golden),
        ("golden_pair:empty", "empty", golden),
        ("golden_pair:garbage", "garbage", golden),
        ("format_only", "empty_formatted", _at_least),
        ("number_spam", "number_spam", _at_least),
        ("many_solutions", "many_solutions", _at_least),
        ("prompt_echo", "prompt_echo", _at_least),
        ("length_paid", "padded", lambda a, b: a is not None and b is not None and a > b and not _same(a, b)),
        *[("failure_pays", kind, _at_least) for kind in FAILURE_KINDS],
    ]
    flags: list[str] = []
    evidence: dict[str, Any] = {}
    for flag, kind, bad in checks:
        if flag in evidence:
            continue
        for i in range(n_samples):
            correct, other = table[(i, "correct")], table[(i, kind)]
            # bad(other, correct): a golden pair where `correct` is not above `other`, or an exploit whose
            # `other` reaches `correct` (a None score is "no opinion": it neither pays nor beats anything)
            if bad(other, correct):
                flags.append(flag)
                evidence[flag] = {"sample": i, "kind": kind, "score": other, "correct": correct}
                break
    return flags, evidence


def dry_run(
    spec: RewardSpec, cfg: SandboxConfig, samples: list[tuple[str, str]], *, guards: bool = True,
    fmt: AnswerFormat = TAGS,
) -> CheckResult:
    """Run the probe suite on `spec` in sandboxed workers; see the module docstring.

    `guards=False` is a testing aid (see SandboxedReward). Raises SandboxUnavailable when the configured
    sandbox level cannot run here: that is the machine's problem, not the candidate's.
    """
    if not samples:
        raise ValueError("dry_run needs at least one (question, gold answer) sample")
    samples = list(samples) + [s for s in EXTRA_SAMPLES if s not in samples]
    pool = build_pool(samples, fmt)
    # Plain-form failures only flag; they must not quarantine the reward before the other probes ran.
    probe_cfg = cfg.model_copy(update={"max_failures": 1_000_000})
    order = list(range(len(pool)))
    random.Random(_SHUFFLE_SEED).shuffle(order)
    with SandboxedReward(spec, probe_cfg, guards=guards) as reward, \
            SandboxedReward(spec, probe_cfg, guards=guards) as fresh:  # fmt: skip
        error = reward.start()
        if error is not None:
            return CheckResult(
                "load", False, f"the code does not load: {error}",
                details={"stats": reward.stats, "sandbox_level": reward.level},
            )  # fmt: skip
        try:
            full = _score_in_batches(reward, pool, samples, 64, "whole pool", fmt=fmt)
            again = _score_in_batches(reward, pool, samples, 64, "whole pool, second run", fmt=fmt)
            other_worker = _score_in_batches(fresh, pool, samples, 64, "whole pool, second worker", fmt=fmt)
            shuffled = _score_in_batches(reward, [pool[j] for j in order], samples, 64, "shuffled pool", fmt=fmt)
            by_8 = _score_in_batches(reward, pool, samples, 8, "batches of 8", fmt=fmt)
            first = pool[: len(PROBE_KINDS)]  # one call per probe of the first sample
            by_1 = _score_in_batches(reward, first, samples, 1, "batches of 1", fmt=fmt)
        except _ProbeFailed as exc:
            return CheckResult("probe", False, str(exc), details={"stats": reward.stats,
                                                                  "sandbox_level": reward.level})  # fmt: skip
        stats = reward.stats
        plain_error: str | None = None
        try:
            _score_in_batches(reward, pool, samples, 64, "plain string form", plain=True, fmt=fmt)
        except _ProbeFailed as exc:
            plain_error = str(exc)

    details: dict[str, Any] = {
        "pool_size": len(pool),
        "samples": len(samples),
        "sandbox_level": stats["sandbox_level"],
        "sandbox_mechanisms": stats["sandbox_mechanisms"],
        "p50_latency_ms": stats["p50_latency_ms"],
        "p99_latency_ms": stats["p99_latency_ms"],
        "stats": stats,
    }
    by_kind = {kind: [s for p, s in zip(pool, full, strict=True) if p.kind == kind] for kind in PROBE_KINDS}
    details["mean_by_kind"] = {kind: _mean(values) for kind, values in by_kind.items()}
    details["scores"] = full  # the behaviour signature: identical vectors are duplicates (search/dedup.py)

    def differs(a: list[float | None], b: list[float | None]) -> int | None:
        return next((k for k, (x, y) in enumerate(zip(a, b, strict=True)) if not _same(x, y)), None)

    if (i := differs(full, again)) is not None:
        reason = f"nondeterministic: probe {i} ({pool[i].kind}) scored {full[i]} then {again[i]}"
        return CheckResult("probe", False, reason, details=details)
    if (i := differs(full, other_worker)) is not None:
        reason = (
            f"nondeterministic across workers: probe {i} ({pool[i].kind}) scored {full[i]} in one worker and "
            f"{other_worker[i]} in another (hash(), id() or other per-process state)"
        )
        return CheckResult("probe", False, reason, details=details)
    for pos, j in enumerate(order):
        if not _same(shuffled[pos], full[j]):
            reason = (
                f"index dependence: probe {j} ({pool[j].kind}) scored {full[j]} in order but {shuffled[pos]} "
                f"at position {pos} of a shuffled batch; {INDEX_DEPENDENCE_FIX}"
            )
            return CheckResult("probe", False, reason, details=details)
    present = {s for s in full if s is not None}
    if len(present) <= 1:
        what = "None on every probe" if not present else f"{present.pop()} on every probe"
        reason = f"constant reward gives GRPO no signal ({what}); {CONSTANT_FIX}"
        return CheckResult("probe", False, reason, details=details)
    p99 = stats["p99_latency_ms"]
    if p99 is not None and p99 > cfg.latency_budget_ms:
        reason = f"p99 call latency {p99:.0f} ms is over the budget of {cfg.latency_budget_ms:g} ms"
        return CheckResult("probe", False, reason, details=details)

    flags, evidence = _flags(pool, full, len(samples))
    if differs(by_8, full) is not None or differs(by_1, full[: len(first)]) is not None:
        flags.append("batch_dependent")
    if plain_error is not None:
        flags.append("plain_form_fails")
        evidence["plain_form_fails"] = plain_error
    details["evidence"] = evidence
    return CheckResult("probe", True, None, flags=flags, details=details)
