"""`evolve`: the offline proposer. Reward programs built from typed primitives, mutated and recombined.

A candidate is a *genome*, a small JSON-able dict of typed genes, rendered into standalone Python source that
goes through the same static check, sandbox and probes as an LLM's code. The genes:

- `extract`: where the predicted answer comes from: `solution` (last number inside the answer segment of the
  task's answer format: the last `<solution>...</solution>`, `\\boxed{...}`, the line after `####`, ...),
  `last_number` (last number anywhere), `solution_else_last` (the answer segment, falling back to the last
  number at reduced credit), `answer_phrase` ("answer is N" / "= N" / the answer segment).
- `match`: how the prediction is compared with gold: `exact`, `tolerance` (relative `tol` counts as exact), or
  `graded` (tiers of relative error earning partial credit: `[[0.1, 0.5], [0.25, 0.2]]`).
- `correct`, `wrong`, `missing`: the scores of a right answer, a wrong one, and no answer at all.
- `format`: weighted format terms: `tag_once` (the share of the format's markers seen exactly once),
  `solution_block` (an answer segment is there), `thinking_block` (a `<thinking>` block; formats with that
  marker only), `layout` (the whole completion has the format's layout), `solution_numeric` (the answer
  segment holds a number and little else).
- `length`: `{target, w}`: a penalty growing with the distance of the completion's length (characters) from
  the band [target/4, target]; `repetition`: `{w}` times the share of repeated lines and words;
  `steps`: `{w, cap}` per arithmetic equation (`a op b = c`) in the text, up to `cap`;
  `spam_guard`: `{max_numbers}`: no answer credit when the answer span holds more numbers than that.

Round 1 draws genomes from a prior that covers every gene. Later rounds rank the history (dev accuracy, best
first), take the top `parents` genomes and make children by mutation (share `mutation_rate`) or uniform
crossover of two parents followed by one mutation; parents are picked with weights falling by rank. Every child
is new: its id (hash of the normalized source) is neither in the run nor earlier in the batch. The random
stream is derived from (seed, round), so a run is reproducible.

The primitives follow the task's answer format (`RoundContext.answer_format`): the answer segment is the
format's own `segment_source`, the markers and the layout are its own, so a task with a new format gets
rewards that read it without a change here.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from rewardsearch.config import ProposerConfig
from rewardsearch.propose.base import HistoryEntry, RoundContext
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.tasks.answers import TAGS, AnswerFormat

Genome = dict[str, Any]

EXTRACTORS = ("solution", "last_number", "solution_else_last", "answer_phrase")
MATCHES = ("exact", "tolerance", "graded")
FORMAT_TERMS = ("tag_once", "solution_block", "thinking_block", "layout", "solution_numeric")
_MAX_TRIES = 200  # draws per wanted child before the proposer admits it has run dry


# --- the prior and the operators -----------------------------------------------------------------------------


def _draw_match(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(MATCHES)
    if kind == "exact":
        return {"kind": "exact"}
    if kind == "tolerance":
        return {"kind": "tolerance", "tol": rng.choice([0.001, 0.01, 0.05])}
    first = rng.choice([0.05, 0.1, 0.2])
    return {"kind": "graded", "tiers": [[first, rng.choice([0.3, 0.5])], [first * 2.5, rng.choice([0.1, 0.2])]]}


def format_terms(fmt: AnswerFormat) -> tuple[str, ...]:
    """The format terms that mean something under `fmt` (a thinking block needs a `<thinking>` marker)."""
    return tuple(t for t in FORMAT_TERMS if t != "thinking_block" or "<thinking>" in fmt.markers)


def _draw_format(rng: random.Random, fmt: AnswerFormat) -> list[dict[str, Any]]:
    terms = rng.sample(format_terms(fmt), rng.randint(0, 3))
    return [{"kind": t, "w": rng.choice([0.25, 0.5, 1.0])} for t in sorted(terms)]


_OPTIONAL: dict[str, Any] = {
    "length": lambda rng: {"target": rng.choice([120, 200, 400, 800]), "w": rng.choice([0.2, 0.5, 1.0])},
    "repetition": lambda rng: {"w": rng.choice([0.5, 1.0, 2.0])},
    "steps": lambda rng: {"w": rng.choice([0.1, 0.2, 0.3]), "cap": rng.choice([2, 3, 5])},
    "spam_guard": lambda rng: {"max_numbers": rng.choice([1, 2, 3])},
}


def random_genome(rng: random.Random, fmt: AnswerFormat = TAGS) -> Genome:
    g: Genome = {
        "extract": rng.choice(EXTRACTORS),
        "match": _draw_match(rng),
        "correct": rng.choice([1.0, 2.0, 3.0]),
        "wrong": rng.choice([0.0, -0.25, -0.5, -1.0]),
        "missing": rng.choice([0.0, -0.5, -1.0]),
        "format": _draw_format(rng, fmt),
    }
    for key, draw in _OPTIONAL.items():
        g[key] = draw(rng) if rng.random() < 0.4 else None
    return g


def _scale(rng: random.Random, x: float) -> float:
    return round(x * rng.choice([0.5, 0.75, 1.5, 2.0]), 3)


def mutate(g: Genome, rng: random.Random, fmt: AnswerFormat = TAGS) -> Genome:
    """One point change of one gene (a copy; the parent is untouched)."""
    g = copy.deepcopy(g)
    gene = rng.choice(["extract", "match", "scores", "format", *_OPTIONAL])
    if gene == "extract":
        g["extract"] = rng.choice([e for e in EXTRACTORS if e != g["extract"]])
    elif gene == "match":
        g["match"] = _draw_match(rng)
    elif gene == "scores":
        key = rng.choice(["correct", "wrong", "missing"])
        g[key] = _scale(rng, g[key]) if g[key] else rng.choice([-0.5, 0.5])
        g["correct"] = max(g["correct"], 0.25)  # a right answer must stay worth something
    elif gene == "format":
        present = {t["kind"] for t in g["format"]}
        action = rng.choice(["add", "drop", "reweight"]) if present else "add"
        terms = format_terms(fmt)
        if action == "add" and len(present) < len(terms):
            kind = rng.choice([k for k in terms if k not in present])
            g["format"] = sorted([*g["format"], {"kind": kind, "w": rng.choice([0.25, 0.5, 1.0])}],
                                 key=lambda t: t["kind"])
        elif action == "drop" and present:
            g["format"].pop(rng.randrange(len(g["format"])))
        elif g["format"]:
            term = rng.choice(g["format"])
            term["w"] = _scale(rng, term["w"])
    else:
        g[gene] = None if g.get(gene) is not None and rng.random() < 0.5 else _OPTIONAL[gene](rng)
    return g


def crossover(a: Genome, b: Genome, rng: random.Random) -> Genome:
    """Uniform crossover: each top-level gene from one parent or the other."""
    return {k: copy.deepcopy(a.get(k) if rng.random() < 0.5 else b.get(k)) for k in sorted(set(a) | set(b))}


# --- rendering a genome as source --------------------------------------------------------------------------------

_HEADER = '''\
import re
from fractions import Fraction

_NUM = re.compile(r"-?\\d[\\d,]*(?:\\.\\d+)?(?:/\\d+)?")


def _text(completion):
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)) and completion:
        return _text(completion[-1])
    return ""


def _numbers(text):
    out = []
    for token in _NUM.findall(text or ""):
        token = token.replace(",", "")
        try:
            out.append(Fraction(token))
        except (ValueError, ZeroDivisionError):
            continue
    return out
'''

_EXTRACT = {
    "solution": '''

def _answer_span(text):
    # the answer segment of the format, or nothing: only an answer laid out as asked earns answer credit
    return _solution(text), 1.0
''',
    "last_number": '''

def _answer_span(text):
    # the whole completion: its last number is taken as the answer
    return text, 1.0
''',
    "solution_else_last": '''

def _answer_span(text):
    # the answer segment at full credit, else the last number anywhere at half credit
    block = _solution(text)
    return (block, 1.0) if block is not None else (text, 0.5)
''',
    "answer_phrase": '''

_PHRASE = re.compile(r"(?:answer is|answer:|=)\\s*\\$?(-?\\d[\\d,]*(?:\\.\\d+)?(?:/\\d+)?)", re.IGNORECASE)


def _answer_span(text):
    # the answer segment, else the number after the last "answer is" / "answer:" / "="
    block = _solution(text)
    if block is not None:
        return block, 1.0
    found = _PHRASE.findall(text)
    return (found[-1], 0.75) if found else (None, 1.0)
''',
}


def _render_match(match: dict[str, Any]) -> str:
    if match["kind"] == "exact":
        body = "    return 1.0 if pred == gold else 0.0\n"
    elif match["kind"] == "tolerance":
        body = (
            f"    if gold == 0:\n        return 1.0 if pred == 0 else 0.0\n"
            f"    return 1.0 if abs(pred - gold) <= Fraction({match['tol']!r}) * abs(gold) else 0.0\n"
        )
    else:
        lines = ["    if pred == gold:", "        return 1.0", "    if gold == 0:", "        return 0.0",
                 "    error = abs(pred - gold) / abs(gold)"]
        for tol, credit in match["tiers"]:
            lines += [f"    if error <= Fraction({tol!r}):", f"        return {float(credit)!r}"]
        body = "\n".join(lines) + "\n    return 0.0\n"
    return f"\n\ndef _credit(pred, gold):\n    # share of the correct-answer score this prediction earns\n{body}"


_FORMAT = {
    "tag_once": "sum(1 for tag in _MARKERS if text.count(tag) == 1) / len(_MARKERS)",
    "solution_block": "(1.0 if _solution(text) is not None else 0.0)",
    "thinking_block": "(1.0 if re.search(r'<thinking>.+?</thinking>', text, re.DOTALL) else 0.0)",
    "layout": "(1.0 if re.fullmatch(_LAYOUT, text, re.DOTALL) else 0.0)",
    "solution_numeric": "(1.0 if _solution(text) is not None and len(_numbers(_solution(text))) == 1"
                        " and len(_solution(text).strip()) <= 24 else 0.0)",
}


def _format_source(fmt: AnswerFormat) -> str:
    """The answer format's primitives as source: its markers, its layout and its answer-segment function."""
    return (f"\n\n_MARKERS = {tuple(fmt.markers)!r}\n_LAYOUT = {fmt.layout!r}\n\n\n"
            f"{fmt.segment_source.strip()}\n")

_REPETITION = '''

def _repetition(text):
    # share of repeated lines plus share of repeated words: 0 for varied text, near 2 for a loop
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    words = text.split()
    rep_lines = 1 - len(set(lines)) / len(lines) if lines else 0.0
    rep_words = 1 - len(set(words)) / len(words) if len(words) > 8 else 0.0
    return rep_lines + rep_words
'''

_STEPS = '''

_EQUATION = re.compile(r"-?\\d[\\d,.]*\\s*[-+*/x\\u00d7]\\s*-?\\d[\\d,.]*\\s*=\\s*-?\\d")
'''


def render(g: Genome, name: str, fmt: AnswerFormat = TAGS) -> str:
    """Python source of the reward `name` described by genome `g` under answer format `fmt` (standalone,
    allowlisted imports only)."""
    unusable = [t["kind"] for t in g["format"] if t["kind"] not in format_terms(fmt)]
    if unusable:
        raise ValueError(f"genome format terms {unusable} mean nothing under answer format {fmt.name!r}")
    parts = [_HEADER, _format_source(fmt), _EXTRACT[g["extract"]], _render_match(g["match"])]
    if g.get("repetition"):
        parts.append(_REPETITION)
    if g.get("steps"):
        parts.append(_STEPS)
    body = [
        "",
        "",
        f"def {name}(prompts, completions, answer, **kwargs):",
        f'    """{describe(g)}"""',
        "    scores = []",
        "    for completion, gold_text in zip(completions, answer):",
        "        text = _text(completion)",
        "        gold = _numbers(str(gold_text))",
        "        if not gold:",
        "            scores.append(None)  # no gold number: no opinion",
        "            continue",
        "        span, weight = _answer_span(text)",
        "        found = _numbers(span) if span is not None else []",
        "        if not found:",
        f"            score = {float(g['missing'])!r}",
    ]
    guard = g.get("spam_guard")
    if guard:
        body += [
            f"        elif len(found) > {int(guard['max_numbers'])} and span is not text:",
            f"            score = {float(g['wrong'])!r}  # a list of numbers is not an answer",
        ]
    body += [
        "        else:",
        "            credit = _credit(found[-1], gold[-1])",
        f"            score = weight * credit * {float(g['correct'])!r} if credit > 0 else {float(g['wrong'])!r}",
    ]
    for term in g["format"]:
        body.append(f"        score += {float(term['w'])!r} * {_FORMAT[term['kind']]}")
    if g.get("length"):
        target, w = int(g["length"]["target"]), float(g["length"]["w"])
        body += [
            "        size = len(text)",
            f"        if size > {target}:",
            f"            score -= {w!r} * min(1.0, (size - {target}) / {target})",
            f"        elif size < {max(1, target // 4)}:",
            f"            score -= {w!r} * (1 - size / {max(1, target // 4)})",
        ]
    if g.get("repetition"):
        body.append(f"        score -= {float(g['repetition']['w'])!r} * _repetition(text)")
    if g.get("steps"):
        st = g["steps"]
        body.append(
            f"        score += {float(st['w'])!r} * min({int(st['cap'])}, len(_EQUATION.findall(text)))"
        )
    body += ["        scores.append(float(score))", "    return scores", ""]
    return "".join(parts) + "\n".join(body)


def describe(g: Genome) -> str:
    """One line of plain English for a genome (the candidate's description)."""
    m = g["match"]
    match = {"exact": "exact match", "tolerance": f"match within {m.get('tol')} relative error",
             "graded": f"graded credit (tiers {m.get('tiers')})"}[m["kind"]]
    bits = [f"answer from {g['extract']}, {match}: correct {g['correct']}, wrong {g['wrong']}, "
            f"missing {g['missing']}"]
    if g["format"]:
        bits.append("format " + ", ".join(f"{t['kind']}*{t['w']}" for t in g["format"]))
    for key in _OPTIONAL:
        if g.get(key):
            bits.append(f"{key} {json.dumps(g[key], sort_keys=True)}")
    return "; ".join(bits)


def _short(g: Genome) -> str:
    ext = {"solution": "sol", "last_number": "last", "solution_else_last": "solast", "answer_phrase": "phrase"}
    return f"{ext[g['extract']]}_{g['match']['kind'][:5]}_f{len(g['format'])}"


# --- the proposer ------------------------------------------------------------------------------------------------


class EvolveProposer:
    """Seeded genetic programming over reward genomes; see the module docstring."""

    name = "evolve"

    def __init__(self, cfg: ProposerConfig) -> None:
        self.cfg = cfg

    def _parents(self, history: list[HistoryEntry]) -> list[tuple[str, Genome]]:
        # Only evaluated candidates that carry a genome can be bred (an LLM's code has none).
        ranked = [h for h in history if h.state == "evaluated" and h.dev_accuracy is not None
                  and isinstance(h.spec.meta.get("genome"), dict)]
        return [(h.spec.id, h.spec.meta["genome"]) for h in ranked[: self.cfg.parents]]

    def propose(self, ctx: RoundContext, n: int) -> list[RewardSpec]:
        rng = random.Random(f"rewardsearch/evolve/{ctx.seed}/{ctx.round}")
        fmt = ctx.answer_format
        # parents bred under another format (a replayed history) may carry terms this one lacks: not bred from
        parents = [(p, g) for p, g in self._parents(ctx.history)
                   if all(t["kind"] in format_terms(fmt) for t in g["format"])]
        weights = [1.0 / (rank + 1) for rank in range(len(parents))]
        taken = set(ctx.existing_ids)
        out: list[RewardSpec] = []
        tries = 0
        while len(out) < n and tries < _MAX_TRIES * n:
            tries += 1
            if not parents:
                genome, lineage, how = random_genome(rng, fmt), [], "random"
            elif len(parents) == 1 or rng.random() < self.cfg.mutation_rate:
                pid, pg = rng.choices(parents, weights)[0]
                genome, lineage, how = mutate(pg, rng, fmt), [pid], "mutation"
                if rng.random() < 0.5:
                    genome = mutate(genome, rng, fmt)
            else:
                ia, ga = rng.choices(parents, weights)[0]
                others = [(p, w) for p, w in zip(parents, weights, strict=True) if p[0] != ia]
                ib, gb = rng.choices([p for p, _ in others], [w for _, w in others])[0]
                genome, lineage, how = mutate(crossover(ga, gb, rng), rng, fmt), [ia, ib], "crossover"
            # The name derives from the genome, so an identical genome renders identical source (same id) in
            # any round, and `existing_ids` catches it.
            name = f"evo_{_short(genome)}_{RewardSpec(name='r', source=render(genome, 'reward', fmt)).id[:6]}"
            spec = RewardSpec(
                name=name, source=render(genome, name, fmt), description=describe(genome), origin=self.name,
                round=ctx.round, parents=lineage, entrypoint=name, meta={"genome": genome, "operator": how},
            )
            if spec.id in taken:
                continue
            taken.add(spec.id)
            out.append(spec)
        return out
