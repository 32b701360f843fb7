"""Dry run of a candidate reward on a fixed probe pool, in the sandbox, before any GPU time is spent on it.

`dry_run(spec, cfg, samples)` builds, for each (question, gold) sample, conversational completions of known
quality (`PROBE_KINDS`): correct and formatted, wrong and formatted, correct but unformatted, empty, garbage,
a 64 KiB text, doubled tags, unicode digits, an empty formatted answer and 0..1000 number spam. It scores them
one at a time, in batches of 8, as a whole pool (twice), and as a shuffled pool.

Rejections (`ok=False`): the code does not load (stage "load"); a call fails (error, timeout, bad result); two
runs of the same batch differ (nondeterminism); a shuffled batch does not give the correspondingly shuffled
scores (index dependence); every score in the pool is equal or None ("constant reward gives GRPO no signal").
Flags (kept, shown to the proposer and in the report): `golden_pair_violated` (correct formatted does not beat
wrong formatted on average), `format_only` (an empty formatted answer scores >= the correct one),
`number_spam` (1001 numbers inside the solution tags score >= the correct one), `batch_dependent` (an item's
score changes with the batch it is in; legitimate for group-relative rewards, suspicious otherwise).

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
from rewardsearch.tasks.base import SYSTEM_PROMPT

PROBE_KINDS = (
    "correct", "wrong", "unformatted", "empty", "garbage", "huge", "doubled_tags", "unicode_digits",
    "empty_formatted", "number_spam",
)  # fmt: skip
HUGE_CHARS = 64 * 1024
BATCH_SIZES = (1, 8)
_SHUFFLE_SEED = 1234
_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


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


def _formatted(answer: str, thinking: str = "Let me work through the problem step by step.") -> str:
    return f"<thinking>{thinking}</thinking><solution>{answer}</solution>"


def build_pool(samples: list[tuple[str, str]]) -> list[_Probe]:
    """Every probe kind for every sample, in sample-major order."""
    pool: list[_Probe] = []
    spam = " ".join(str(i) for i in range(1001))
    for i, (_question, gold) in enumerate(samples):
        filler = "The quick brown fox jumps over the lazy dog. "
        texts = {
            "correct": _formatted(gold),
            "wrong": _formatted(_wrong_answer(gold)),
            "unformatted": f"The answer is {gold}.",
            "empty": "",
            "garbage": "}}{{ <sol ution> \x00\ufffd asdf;; ))((</thinking> ::: \u202e zz",
            "huge": (filler * (HUGE_CHARS // len(filler) + 1))[:HUGE_CHARS],
            "doubled_tags": f"<thinking><thinking>Step by step.</thinking></thinking>"
            f"<solution><solution>{gold}</solution></solution>",
            "unicode_digits": _formatted(gold.translate(_ARABIC_INDIC)),
            "empty_formatted": "<thinking></thinking><solution></solution>",
            "number_spam": _formatted(spam),
        }
        pool.extend(_Probe(i, kind, texts[kind]) for kind in PROBE_KINDS)
    return pool


def _batch(pool: list[_Probe], samples: list[tuple[str, str]]) -> dict[str, Any]:
    """TRL's call shape: conversational prompts and completions, plus the `answer` column."""
    return {
        "prompts": [
            [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": samples[p.sample][0]}]
            for p in pool
        ],
        "completions": [[{"role": "assistant", "content": p.text}] for p in pool],
        "answer": [samples[p.sample][1] for p in pool],
    }


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


class _ProbeFailed(Exception):
    pass


def dry_run(spec: RewardSpec, cfg: SandboxConfig, samples: list[tuple[str, str]]) -> CheckResult:
    """Run the probe suite on `spec` in a sandboxed worker; see the module docstring."""
    if not samples:
        raise ValueError("dry_run needs at least one (question, gold answer) sample")
    pool = build_pool(samples)
    with SandboxedReward(spec, cfg) as reward:
        error = reward.start()
        if error is not None:
            return CheckResult(
                "load", False, f"the code does not load: {error}", details={"stats": reward.stats}
            )

        def score(items: list[_Probe], what: str) -> list[float | None]:
            failures = reward.failures
            out = reward(**_batch(items, samples))
            if reward.failures != failures:
                raise _ProbeFailed(f"call failed ({what}, batch of {len(items)}): {reward.last_error}")
            return out

        try:
            full = score(pool, "whole pool")
            again = score(pool, "whole pool, second run")
            order = list(range(len(pool)))
            random.Random(_SHUFFLE_SEED).shuffle(order)
            shuffled = score([pool[j] for j in order], "shuffled pool")
            by_size: dict[int, list[float | None]] = {}
            for size in BATCH_SIZES:
                # batches of 1 cover the first sample's probes (one call each); batches of 8 the whole pool
                items = pool[: len(PROBE_KINDS)] if size == 1 else pool
                scores: list[float | None] = []
                for start in range(0, len(items), size):
                    scores.extend(score(items[start : start + size], f"batches of {size}"))
                by_size[size] = scores
        except _ProbeFailed as exc:
            return CheckResult("probe", False, str(exc), details={"stats": reward.stats})
        stats = reward.stats

    details: dict[str, Any] = {
        "pool_size": len(pool),
        "p50_latency_ms": stats["p50_latency_ms"],
        "p99_latency_ms": stats["p99_latency_ms"],
        "stats": stats,
    }
    by_kind = {kind: [s for p, s in zip(pool, full, strict=True) if p.kind == kind] for kind in PROBE_KINDS}
    details["mean_by_kind"] = {kind: _mean(values) for kind, values in by_kind.items()}
    details["scores"] = full  # the behaviour signature: identical vectors are duplicates (search/dedup.py)

    if not all(_same(a, b) for a, b in zip(full, again, strict=True)):
        i = next(k for k, (a, b) in enumerate(zip(full, again, strict=True)) if not _same(a, b))
        reason = f"nondeterministic: probe {i} ({pool[i].kind}) scored {full[i]} then {again[i]}"
        return CheckResult("probe", False, reason, details=details)
    for pos, j in enumerate(order):
        if not _same(shuffled[pos], full[j]):
            reason = (
                f"index dependence: probe {j} ({pool[j].kind}) scored {full[j]} in order but {shuffled[pos]} "
                f"at position {pos} of a shuffled batch"
            )
            return CheckResult("probe", False, reason, details=details)
    present = {s for s in full if s is not None}
    if len(present) <= 1:
        what = "None on every probe" if not present else f"{present.pop()} on every probe"
        return CheckResult("probe", False, f"constant reward gives GRPO no signal ({what})", details=details)

    flags: list[str] = []
    means = details["mean_by_kind"]
    correct = means["correct"]

    def not_below_correct(kind: str) -> bool:
        value = means[kind]
        return value is not None and (correct is None or value >= correct)

    if correct is None or means["wrong"] is None or not correct > means["wrong"]:
        flags.append("golden_pair_violated")
    if not_below_correct("empty_formatted"):
        flags.append("format_only")
    if not_below_correct("number_spam"):
        flags.append("number_spam")
    if not all(_same(a, b) for size in BATCH_SIZES for a, b in zip(by_size[size], full, strict=False)):
        flags.append("batch_dependent")
    return CheckResult("probe", True, None, flags=flags, details=details)
