"""The LLM proposer's prompt: jinja2 templates with named slots, feedback trimmed to a budget, secrets redacted.

Templates ship in `propose/templates/` (style `full`) and `propose/templates/compact/` (styles `compact`, `code`; they
fall back to `full` for a template it lacks); a file of the same name in `proposer.template_dir` replaces one.
`compact` exists because small local models (Qwen2.5-Coder 0.5B/1.5B) copy what they are shown: given the full
prompt they echoed the answer template's placeholders or copied the base rewards with helpers a candidate cannot
import. It shows one self-contained worked example (`compact/example.py`, slot `example`; its import and patterns
live inside the function, because the 1.5B copied the function without the module-level helpers around it and
every probe failed with NameError) instead of the base
rewards' source, the contract as a numbered list, and results as one line each. A candidate that is the example
itself (same normalized source) is dropped as a duplicate, so copying it never counts as a proposal.
`code` is compact answered as ```python blocks instead of JSON (slot `code_answers`): inside a JSON string,
grammar-constrained, the models wrote code on one line, unbalanced or cut off (0.5B: 0 of 6 past the static
check; 1.5B: 0-2 of 3), in fenced blocks 1-5 of 5-6 passed it (docs/llm-local.md, idle 2-core CPU machine).
`item` (`templates/item/`, falling back to compact, then full) asks only for a per-item
`def <name>(text: str, gold: str) -> float` and shows a per-item example (`item/example.py`); the proposer wraps
each answer into the batch reward (`item.py`), so the batch bugs small models write (comparing with the whole
`answer` list, an undefined `gold` after dropping the `zip`) cannot be written. The example a copy is compared
with is the wrapped one (`shown_candidate`). The item prompt speaks the task's answer format
(`RoundContext.answer_format`): its example (`item/example.py`) reads the answer part with the format's own
`_solution(text)` (its `segment_source`, supplied to every item candidate that calls it: `item.helpers`), and its
ideas and contract name the answer part in the format's words (`item_words`, from `AnswerFormat.answer_part`); a
copy of any built-in format's example is dropped as a copy.
`proposer.prompt_style=auto` picks item when the run serves its own model (`ProposerConfig.resolved_style`; measured
on 2026-12-03: docs/llm-local.md).

- `system.j2`: the reward contract and the answer format. Slots: `allowed_modules`, `score_bound`,
  `base_rewards` (the source of `rewardsearch/rewards/base.py`), `base_names`, `example`, `code_answers` (the
  code and item styles: answers are ```python blocks, not JSON; also in `user.j2`), `item_answers` (`user.j2`:
  the item style asks for scoring functions), and the answer format's words (`item_words`: `answer_part`,
  `in_answer`, `reasoning`, `outside`; `item/ideas.txt` uses them as `{name}`).
- `user.j2`: the round's request. Slots: `round`, `n`, `task_card`, `samples` (question, answer), `feedback`
  (False in `random` mode: no results at all), `baseline`, `top` and `bottom` (entries: name, id, round,
  accuracy, ci95, n, extraction, flags, description, curves, shift, source), `failures` (name, round, state, reason),
  `omitted` (what was trimmed), `this_round` (name, description: already proposed this round), `notes`
  (what was wrong with the previous answer this round: in a refill ask, first one line per candidate of the
  round the checks rejected, `RoundContext.notes`; then what parsing found).
- `entry.j2`: one ranked candidate, included by `user.j2`.

`shift` (entries and `baseline`) is one line from `search/hacking.py:describe_shift`: the base model's dev numbers
against the trained model's, and the training reward and length from start to end; a `hacking: ...` flag says the
reward rose while those collapsed.

Everything shown comes from the dev split (`HistoryEntry` holds no test numbers). The prompt must fit
`proposer.context_chars`; when it does not, feedback is cut in this order, re-rendering after each cut:
the source of the worst candidates (oldest first), rejection reasons beyond the newest five (oldest first), the
source of the best candidates except the leader (lowest ranked first), the worst candidates themselves, the
remaining rejection reasons, the training samples, the best candidates except the leader, the leader's source.
What was cut is said in the prompt and recorded with the call. A prompt that does not fit even then is an
error naming the budget.

Redaction: known secret shapes (OpenAI/Groq/HF/GitHub/AWS/Google keys, bearer tokens, private keys, quoted
`api_key = "..."`) and the values of secret-looking environment variables (the API key's included) are replaced
with `[REDACTED]` in every slot and in the final text.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardsearch.config import ProposerConfig
from rewardsearch.propose.base import HistoryEntry, ProposerError, ProposerNotAvailable, RoundContext
from rewardsearch.propose.parse import RESERVED_NAMES
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.search.hacking import describe_shift
from rewardsearch.tasks.answers import FORMATS as ANSWER_FORMATS
from rewardsearch.tasks.answers import TAGS, AnswerFormat

REDACTED = "[REDACTED]"
_SECRET_PATTERNS = [
    re.compile(p, re.DOTALL)
    for p in (
        r"sk-[A-Za-z0-9_\-]{16,}",                       # OpenAI, Anthropic (sk-ant-...), DeepSeek
        r"gsk_[A-Za-z0-9]{20,}",                         # Groq
        r"hf_[A-Za-z0-9]{20,}",                          # Hugging Face
        r"gh[pousr]_[A-Za-z0-9]{20,}",                   # GitHub
        r"AKIA[0-9A-Z]{16}",                             # AWS access key id
        r"AIza[0-9A-Za-z_\-]{35}",                       # Google
        r"xox[abpr]-[A-Za-z0-9\-]{10,}",                 # Slack
        r"(?i)bearer\s+[A-Za-z0-9._\-]{16,}",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
    )
]
# `api_key = "..."`: only quoted values, so ordinary code such as `secret = text.split()` is left alone.
_ASSIGNED_SECRET = re.compile(r"""(?i)((?:api[_-]?key|secret|password|passwd)\s*[=:]\s*["'])([^"'\s]{8,})(["'])""")
_SECRET_ENV = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD)")
_MIN_SECRET_LEN = 8
_KEEP_FAILURES = 5  # newest rejection reasons kept until the late cuts


def env_secrets(extra: Iterable[str] = ()) -> list[str]:
    """Values of secret-looking environment variables (and `extra`), longest first, for `redact`."""
    values = {v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_SECRET_LEN}
    values |= {v for v in extra if v and len(v) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for value in secrets:
        text = text.replace(value, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _ASSIGNED_SECRET.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)


def base_rewards_source() -> str:
    from rewardsearch.rewards import base

    return inspect.getsource(base).strip()


# --- views of the records, as the templates see them ------------------------------------------------------------


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ci(ci: list[float] | tuple[float, float] | None) -> str:
    return "n/a" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def curve_lines(curves: dict[str, float]) -> list[str]:
    """The training summary a proposer can act on, from `curve_summary`'s run means (TRL's metric names)."""
    out = []
    comps = {k[len("rewards/"):-len("/mean")]: v for k, v in curves.items()
             if k.startswith("rewards/") and k.endswith("/mean")}
    if comps:
        out.append("mean reward " + ", ".join(f"{name} {v:.3f}" for name, v in comps.items()))
    for key, label, digits in (
        ("frac_reward_zero_std", "zero-variance groups", 2),
        ("completions/mean_length", "completion length", 1),
        ("completions/clipped_ratio", "cut at the length limit", 2),
        ("kl", "KL", 4),
    ):
        if key in curves:
            out.append(f"{label} {curves[key]:.{digits}f}")
    return out


@dataclass
class _Entry:
    view: dict[str, Any]
    round: int
    show_source: bool = True

    def render_view(self) -> dict[str, Any]:
        return {**self.view, "source": self.view["source"] if self.show_source else None}


@dataclass
class _Parts:
    """The trimmable content of one prompt; cuts mutate it, `omitted` says what was cut."""

    samples: list[dict[str, str]]
    top: list[_Entry]
    bottom: list[_Entry]
    failures: list[dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)

    def cut(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def omitted(self) -> list[str]:
        return [f"{what} ({n})" for what, n in self.counts.items()]


@dataclass
class Prompt:
    messages: list[dict[str, str]]
    chars: int
    omitted: list[str]


def example_source(style: str = "compact", name: str = "example.py") -> str:
    """The worked example the compact and code prompts show, or the item prompt's per-item one (`style="item"`);
    files, so that they are real code checked by the tests. `name`: another file of that template folder."""
    from importlib import resources

    folder = "item" if style == "item" else "compact"
    return resources.files("rewardsearch.propose").joinpath(f"templates/{folder}/{name}").read_text()


# The item prompt in the task's answer format, all of it derived from the format (`AnswerFormat`): the example
# reads the answer with the format's own `_solution(text)` (its `segment_source`), which the item wrapper supplies
# to every candidate that calls it without defining it (`item.helpers`), and the contract and ideas name the answer
# part in the format's words. So a task answered `#### N` is not shown rewards reading `<solution>` tags that none
# of its answers (nor the probes written in its format) contain, and a task plugin's own format is spoken as well
# as a built-in one. The helper's source is not shown: shown beside the example, the 0.5B coder copied both
# verbatim in 4 of its first 7 answers, and none of its 5 candidates passed the probes (docs/llm-local.md,
# 2026-12-03, evening).
def item_words(fmt: AnswerFormat) -> dict[str, str]:
    """The slots of the item prompt and `item/ideas.txt` that name where an answer's parts are."""
    return {"answer_part": fmt.answer_part, "in_answer": f"in {fmt.answer_part}", "reasoning": "the reasoning",
            "outside": f"text after {fmt.answer_part}"}


def item_example(fmt: AnswerFormat = TAGS) -> str:
    """The item prompt's example in the answer format `fmt` (`templates/item/example.py`): a score function that
    reads the answer part with the format's `_solution(text)` and wants each of the format's markers once."""
    return example_source("item").replace("{answer_part}", fmt.answer_part).replace("{markers}", repr(fmt.markers))


class PromptBuilder:
    """Renders the two messages of a request; see the module docstring. `shown_ids`: ids of the rewards the
    prompt shows as examples, which a proposal must not merely repeat."""

    def __init__(self, cfg: ProposerConfig, secrets: Iterable[str] = ()) -> None:
        from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined

        from rewardsearch.rewards.spec import reward_id

        self.cfg = cfg
        self.secrets = list(secrets)
        self.style = cfg.resolved_style()
        self.code_answers = self.style in ("code", "item")  # answered as ```python blocks, not JSON
        self.example = example_source(self.style).strip()
        # a copy of any format's example is a copy (the item style shows the one of the task's format)
        formats = list(ANSWER_FORMATS.values()) if self.style == "item" else [TAGS]
        shown = [c for c in (self.shown_candidate(f) for f in formats) if c is not None]
        self.shown_ids = {reward_id(c[0]) for c in shown}
        self._plugin_ids: dict[str, str | None] = {}   # a task plugin's format: its example's id (`is_example`)
        loaders: list[Any] = [PackageLoader("rewardsearch.propose", "templates")]
        if self.style in ("compact", "code", "item"):
            loaders.insert(0, PackageLoader("rewardsearch.propose", "templates/compact"))
        if self.style == "item":
            loaders.insert(0, PackageLoader("rewardsearch.propose", "templates/item"))
        if cfg.template_dir:
            if not Path(cfg.template_dir).is_dir():
                raise ProposerNotAvailable(
                    f"proposer.template_dir={cfg.template_dir!r} is not a directory (it should hold system.j2 "
                    "and/or user.j2)"
                )
            loaders.insert(0, FileSystemLoader(cfg.template_dir))
        self.env = Environment(
            loader=ChoiceLoader(loaders), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=True, autoescape=False,
        )

    def is_example(self, spec_id: str, fmt: AnswerFormat = TAGS) -> bool:
        """Whether `spec_id` is the source of a shown example: any built-in format's (`shown_ids`) or, for a task
        plugin's own format, the example in that format."""
        from rewardsearch.rewards.spec import reward_id

        if spec_id in self.shown_ids:
            return True
        if fmt.name not in self._plugin_ids:
            shown = self.shown_candidate(fmt) if fmt.name not in ANSWER_FORMATS else None
            self._plugin_ids[fmt.name] = reward_id(shown[0]) if shown else None
        return spec_id == self._plugin_ids[fmt.name]

    def shown_candidate(self, fmt: AnswerFormat = TAGS) -> tuple[str, str | None] | None:
        """(source, entrypoint) of the example as a candidate: what a verbatim copy of it becomes (for the item
        style, its wrapped module, in the answer format `fmt`); None for the full prompt, which shows no example."""
        from rewardsearch.propose.item import helpers, wrap_item
        from rewardsearch.propose.parse import find_entrypoint

        if self.style not in ("compact", "code", "item"):
            return None
        if self.style == "item":
            wrapped = wrap_item(item_example(fmt).strip() + "\n", avoid=RESERVED_NAMES, provided=helpers(fmt))
            if isinstance(wrapped, str):  # the shipped examples are tested to wrap; a broken edit says so here
                raise ProposerNotAvailable(f"the item prompt's example for {fmt.name!r}: {wrapped}")
            return wrapped.code, wrapped.entrypoint
        return self.example + "\n", find_entrypoint(self.example, None)[0]

    def _ideas(self, ctx: RoundContext, n: int, have: int) -> list[str]:
        """The item style's one idea per function asked for (`templates/item/ideas.txt`), rotating with the round,
        the refill and the candidates the round holds, so asks of a round differ; none for the other styles."""
        if self.style != "item":
            return []
        ideas = [x.strip() for x in example_source("item", "ideas.txt").splitlines() if x.strip()]
        for key, words in item_words(ctx.answer_format).items():
            ideas = [x.replace("{" + key + "}", words) for x in ideas]
        refill = int(ctx.refill.rsplit("_", 1)[-1]) if ctx.refill and ctx.refill[-1].isdigit() else 0
        start = 3 * ctx.round + 2 * refill + have
        return [ideas[(start + i) % len(ideas)] for i in range(n)]

    def _clean(self, text: str | None) -> str:
        return redact(text or "", self.secrets)

    def _entry(self, h: HistoryEntry) -> _Entry:
        view = {
            "id": h.spec.id, "name": self._clean(h.spec.name), "round": h.spec.round,
            "accuracy": _num(h.dev_accuracy), "ci95": _ci(h.dev_ci95), "n": h.dev_n if h.dev_n is not None else "n/a",
            "extraction": _num(h.dev_extraction_rate, 2), "flags": list(h.flags),
            "description": self._clean(h.spec.description), "curves": curve_lines(h.curves),
            "shift": describe_shift(h.shift),
            "source": self._clean(h.spec.source).rstrip(),
        }
        return _Entry(view, h.spec.round)

    def _parts(self, ctx: RoundContext) -> _Parts:
        samples = [{"question": p.question, "answer": p.answer} for p in ctx.samples[: self.cfg.samples]]
        if not ctx.feedback:
            return _Parts(samples, [], [], [])
        evaluated = [h for h in ctx.history if h.state == "evaluated" and h.dev_accuracy is not None]
        top = evaluated[: ctx.feedback_top]
        bottom = [h for h in evaluated[::-1] if h not in top][: ctx.feedback_bottom]
        failures = [
            {"name": self._clean(h.spec.name), "round": h.spec.round, "state": h.state,
             "reason": self._clean(h.reason or "no reason recorded")}
            for h in sorted(ctx.history, key=lambda h: h.spec.round)
            if h.state in ("rejected", "failed", "quarantined", "dropped")
        ]
        return _Parts(samples, [self._entry(h) for h in top], [self._entry(h) for h in bottom], failures)

    def _cuts(self, parts: _Parts) -> Iterable[Callable[[], bool]]:
        """Each cut removes one unit of feedback and returns True, or returns False when it has nothing left."""

        def drop_source(entries: list[_Entry], order: Callable[[list[_Entry]], list[_Entry]], what: str):
            def cut() -> bool:
                for e in order(entries):
                    if e.show_source:
                        e.show_source = False
                        parts.cut(what)
                        return True
                return False
            return cut

        def pop(items: list[Any], index: int, what: str, keep: int = 0):
            def cut() -> bool:
                if len(items) <= keep:
                    return False
                items.pop(index)
                parts.cut(what)
                return True
            return cut

        oldest_first = lambda es: sorted(es, key=lambda e: e.round)  # noqa: E731
        lowest_first = lambda es: list(reversed(es[1:]))  # noqa: E731
        yield drop_source(parts.bottom, oldest_first, "source of worst candidates")
        yield pop(parts.failures, 0, "older rejection reasons", keep=_KEEP_FAILURES)
        yield drop_source(parts.top, lowest_first, "source of best candidates")
        yield pop(parts.bottom, -1, "worst candidates")  # the list is worst first: drop the least bad
        yield pop(parts.failures, 0, "rejection reasons")
        yield pop(parts.samples, -1, "training samples")
        yield pop(parts.top, -1, "best candidates", keep=1)
        yield drop_source(parts.top, lambda es: es, "source of the leading candidate")

    def build(
        self, ctx: RoundContext, n: int, this_round: list[RewardSpec] | None = None, notes: list[str] | None = None
    ) -> Prompt:
        parts = self._parts(ctx)
        system = self.env.get_template("system.j2").render(
            allowed_modules=_allowed_modules(), score_bound=f"{ctx.score_bound:g}",
            base_rewards=base_rewards_source(), base_names=sorted(RESERVED_NAMES),
            example=item_example(ctx.answer_format).strip() if self.style == "item" else self.example,
            code_answers=self.code_answers, **item_words(ctx.answer_format),
        )
        base = ctx.baseline_dev if ctx.feedback else None
        baseline = None
        if base:
            baseline = {"accuracy": _num(base.get("accuracy")), "ci95": _ci(base.get("ci95")),
                        "n": base.get("n", "n/a"), "extraction": _num(base.get("extraction_rate"), 2),
                        "curves": curve_lines(base.get("curves") or {}), "flags": list(base.get("flags") or []),
                        "shift": describe_shift(base.get("shift"))}
        fixed = {
            "round": ctx.round, "n": n, "task_card": ctx.task_card, "feedback": ctx.feedback, "baseline": baseline,
            "code_answers": self.code_answers, "item_answers": self.style == "item",
            "ideas": self._ideas(ctx, n, len(this_round or [])),
            "this_round": [{"name": self._clean(s.name), "description": self._clean(s.description)}
                           for s in this_round or []],
            "notes": [self._clean(x) for x in notes or []],
        }

        def render() -> Prompt:
            user = self.env.get_template("user.j2").render(
                **fixed, samples=parts.samples, top=[e.render_view() for e in parts.top],
                bottom=[e.render_view() for e in parts.bottom], failures=parts.failures, omitted=parts.omitted(),
            )
            messages = [{"role": "system", "content": self._clean(system)},
                        {"role": "user", "content": self._clean(user)}]
            return Prompt(messages, sum(len(m["content"]) for m in messages), parts.omitted())

        prompt = render()
        for cut in self._cuts(parts):
            while prompt.chars > self.cfg.context_chars and cut():
                prompt = render()
        if prompt.chars > self.cfg.context_chars:
            raise ProposerError(
                f"proposer.context_chars={self.cfg.context_chars}: the prompt needs {prompt.chars} characters even "
                "with all feedback cut; raise it"
            )
        return prompt


def _allowed_modules() -> tuple[str, ...]:
    from rewardsearch.sandbox.static import ALLOWED_MODULES

    return ALLOWED_MODULES
