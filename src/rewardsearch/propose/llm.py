"""`llm`: candidate rewards written by any OpenAI-compatible chat endpoint, through the official `openai` SDK.

Works with OpenAI, Groq, vLLM, Ollama, the llama.cpp server and a LiteLLM proxy: set `proposer.base_url`,
`proposer.model` and `proposer.api_key_env` (the name of the environment variable holding the key), or let the
run serve a local GGUF itself with `proposer.serve=llama.cpp` (`serve.py`).

One round: render the prompt (`prompt.py`), ask for `min(batch_size, still wanted)` candidates, parse the answer
(`parse.py`), drop what is already in the run or earlier in the batch (same normalized-source hash, i.e. the
same `RewardSpec.id`), and call again until the round has `n` candidates or `max_calls_per_round` calls were
made. Later calls of a round see what the round already holds and what was wrong with the previous answer; a
refill ask (`search.refills`: the loop replacing candidates rejected by the static check, the probes or
de-duplication) starts with the rejections' one-line reasons as notes (`RoundContext.notes`), kept on every call,
then with what parsing dropped from the previous ask's answers (`answer_notes`: a copy of the prompt's example, a
base reward's name, an item with no function, an answer with no candidates), read from the call records: an
answer dropped whole at parse time leaves no rejected candidate, and would otherwise refill with no note.
Behavioural duplicates (same scores on the probe pool, different code) are caught at check time, in the sandbox
(`search/dedup.py`): finding them means running the code.

Resilience. The SDK's own retries are off (`max_retries=0`) so that every attempt is visible: 429, 5xx,
timeouts and lost connections are retried up to `max_retries` times with exponential backoff and jitter
(`backoff_s` doubling, at most `backoff_max_s`), never sooner than the server's `Retry-After` / `retry-after-ms`;
a Retry-After beyond `backoff_max_s` ends the call at once rather than sleeping for an hour. An endpoint that
refuses the structured-output request is asked again one step down (JSON schema -> grammar, i.e. llama.cpp's
schema-constrained JSON object -> JSON object -> plain text) for the rest of the run, at once and without using
a retry: a refusal is HTTP 400/422 while `response_format` is set, or any other status but 429 whose error
names the feature (`refuses_format`; llama.cpp's Python server says 500). Any other 4xx, or retries used up, raise
`ProposerError` naming the endpoint, the status and the fix; the candidates the round already holds travel with
it and are kept. Each request has a deadline (`timeout_s`), so a hung endpoint is an error, never a hang. An
answer that is not valid UTF-8 is decoded with replacement characters and the fact is noted.

Budget. Requests, tokens and money (`price_*_per_mtok`) spent in the run are read from the store, so they
survive `resume`. A call is made only if it fits the remaining budget even when it uses all of `max_tokens`
(prompt tokens estimated at 4 characters each); when one would not, the proposer stops: `exhausted` says why and
the search ends cleanly after the round in hand.

Audit. Every attempt is one `proposer_calls` row: the request (model, messages, parameters; never headers),
the prompt's hash, the body as received, the answer, the candidates parsed and the items dropped with reasons,
tokens, latency, cost, error. These rows are also the cassette the `replay` proposer plays back.

Secrets. The key is read from the environment when the proposer is built and handed to the SDK; it is never
stored, logged or put in a message. Answers, bodies, errors and prompts pass through `prompt.redact`.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from rewardsearch.config import ProposerConfig
from rewardsearch.propose.base import MAX_NOTES, ProposerError, RoundContext, clip_note
from rewardsearch.propose.item import helpers
from rewardsearch.propose.parse import ParseResult, parse_answer
from rewardsearch.propose.prompt import Prompt, PromptBuilder, env_secrets, redact
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.store import Store
from rewardsearch.tasks.answers import TAGS, AnswerFormat

log = logging.getLogger(__name__)

CANDIDATES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "candidates": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "code": {"type": "string"},
                               "description": {"type": "string"}},
                "required": ["name", "code", "description"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["candidates"],
    "additionalProperties": False,
}
_RESPONSE_FORMATS: dict[str, dict[str, Any] | None] = {
    "schema": {"type": "json_schema",
               "json_schema": {"name": "reward_candidates", "strict": True, "schema": CANDIDATES_SCHEMA}},
    # llama-cpp-python's own form: it compiles the schema to a grammar, so even a 0.5B model answers valid JSON
    "grammar": {"type": "json_object", "schema": CANDIDATES_SCHEMA},
    "object": {"type": "json_object"},
    "off": None,
}
_DOWNGRADE = {"schema": "grammar", "grammar": "object", "object": "off"}
# Words with which servers refuse a structured-output request, whatever status they send it with (llama.cpp's
# Python server answers a json_schema response_format with HTTP 500 and a validation message naming the field).
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "grammar")
_CHARS_PER_TOKEN = 4
_DEFAULT_ANSWER_TOKENS = 4096  # assumed answer size for the budget when proposer.max_tokens is None
_RAW_LIMIT = 200_000  # characters of a body kept in the store
_EXAMPLE_COPY = "duplicate of the prompt's example"


@dataclass
class Answer:
    """What one successful request returned (or one replayed entry)."""

    content: str | None
    raw: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float = 0.0
    attempt: int = 0
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Fallback(Exception):
    """The endpoint rejected the structured-output request."""


class _Fatal(Exception):
    pass


def retry_after_s(headers: Any) -> float | None:
    """Seconds the server asks us to wait (`retry-after-ms`, `retry-after` seconds or HTTP date), or None."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def refuses_format(status: int, text: str) -> bool:
    """Whether an error answer to a request carrying `response_format` refuses that format.

    400/422 are request errors, so they count as a refusal as they always did; any other status (llama.cpp's 500)
    counts when the error names the structured-output feature. A rate limit (429) never does: its text may echo
    the request, and waiting is the cure there.
    """
    if status == 429:
        return False
    if status in (400, 422):
        return True
    low = text.lower()
    return any(w in low for w in _FORMAT_WORDS)


def _content_text(message: dict[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, list):  # content parts, as some servers send them
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else None


class LLMProposer:
    """See the module docstring. `calls` keeps this process's call records (the store keeps all of them)."""

    name = "llm"
    uses_store = True

    def __init__(self, cfg: ProposerConfig, store: Store | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self._key = os.environ.get(cfg.api_key_env) or None
        self._secrets = env_secrets([self._key] if self._key else [])
        self.prompts = PromptBuilder(cfg, self._secrets)
        self.json_mode = cfg.resolved_json_mode()
        self.calls: list[dict[str, Any]] = []
        self._stop: str | None = None
        self._client: Any = None
        self._jitter = random.Random()  # jitter only: it never touches what is proposed

    def shown_examples(self, fmt: AnswerFormat = TAGS) -> list[RewardSpec]:
        """The worked example of the compact, code and item prompts as a candidate (for the item style: wrapped,
        as a copy of it would be, in the task's answer format `fmt`); none for the full prompt."""
        shown = self.prompts.shown_candidate(fmt)
        if shown is None:
            return []
        source, entry = shown
        return [RewardSpec(name="prompt_example", source=source, entrypoint=entry, origin="prompt")]

    # -- budget --------------------------------------------------------------------------------------------

    def _spend(self) -> dict[str, float]:
        if self.store is not None:
            return self.store.proposer_spend(self.name)
        return {
            "calls": len(self.calls),
            "tokens": sum(c.get("prompt_tokens", 0) + c.get("completion_tokens", 0) for c in self.calls),
            "cost_usd": sum(c.get("cost_usd", 0.0) for c in self.calls),
        }

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        c = self.cfg
        return (prompt_tokens * c.price_input_per_mtok + completion_tokens * c.price_output_per_mtok) / 1e6

    def _over_budget(self, prompt_chars: int | None = None) -> str | None:
        """Why no further request may be made, or None.

        Without `prompt_chars`: whether a budget is spent. With it: also whether the next request, with a prompt
        that long and an answer of up to `max_tokens`, could overrun one.
        """
        c, s = self.cfg, self._spend()
        if c.budget_calls is not None and s["calls"] >= c.budget_calls:
            return f"budget spent: {s['calls']} requests made, proposer.budget_calls={c.budget_calls}"
        if c.budget_tokens is not None and s["tokens"] >= c.budget_tokens:
            return f"budget spent: {s['tokens']} tokens used, proposer.budget_tokens={c.budget_tokens}"
        if c.budget_usd is not None and s["cost_usd"] >= c.budget_usd:
            return f"budget spent: ${s['cost_usd']:.4f} used, proposer.budget_usd={c.budget_usd:g}"
        if prompt_chars is None:
            return None
        nxt_in, nxt_out = prompt_chars // _CHARS_PER_TOKEN, c.max_tokens or _DEFAULT_ANSWER_TOKENS
        if c.budget_tokens is not None and s["tokens"] + nxt_in + nxt_out > c.budget_tokens:
            return (f"budget nearly spent: {s['tokens']} tokens used and the next request may use up to "
                    f"{nxt_in + nxt_out}; proposer.budget_tokens={c.budget_tokens}")
        nxt = self._cost(nxt_in, nxt_out)
        if c.budget_usd is not None and s["cost_usd"] + nxt > c.budget_usd:
            return (f"budget nearly spent: ${s['cost_usd']:.4f} used and the next request may cost up to "
                    f"${nxt:.4f}; proposer.budget_usd={c.budget_usd:g}")
        return None

    @property
    def exhausted(self) -> str | None:
        """Why this proposer can give no more candidates in this run, or None."""
        return self._stop or self._over_budget()

    # -- records -------------------------------------------------------------------------------------------

    def _record(self, **rec: Any) -> None:
        rec = {"proposer": self.name, **rec}
        for key in ("raw", "content", "error"):
            if isinstance(rec.get(key), str):
                rec[key] = redact(rec[key], self._secrets)[:_RAW_LIMIT]
        self.calls.append(rec)
        if self.store is not None:
            self.store.add_proposer_call(rec)

    # -- one round -----------------------------------------------------------------------------------------

    def propose(self, ctx: RoundContext, n: int) -> list[RewardSpec]:
        out: list[RewardSpec] = []
        taken = set(ctx.existing_ids)
        # a refill ask's notes: the rejections of this round (the loop's), then what parsing dropped from the
        # previous ask's answers (a copy of the example, a base reward's name, an answer with no candidates)
        carried = [*ctx.notes, *self._previous_ask_notes(ctx)] if ctx.refill else list(ctx.notes)
        notes: list[str] = list(carried)  # then also what parsing found in this ask's previous answer
        for call in range(self.cfg.max_calls_per_round):
            if len(out) >= n or self.exhausted:
                break
            k = min(self.cfg.batch_size, n - len(out))
            prompt = self.prompts.build(ctx, k, this_round=out, notes=notes)
            why = self._over_budget(prompt.chars)
            if why:
                self._stop = why
                log.warning("proposer %s stops: %s", self.name, why)
                break
            request = self._request(prompt)
            try:
                answer = self._complete(ctx.round, call, prompt, request)
            except ProposerError as exc:
                raise ProposerError(str(exc), partial=out) from None
            if answer is None:
                break
            if answer.meta.get("tokens_estimated") and not answer.prompt_tokens:
                answer.prompt_tokens = prompt.chars // _CHARS_PER_TOKEN
            item_style = self.prompts.style == "item"
            parsed = parse_answer(answer.content, item=item_style,
                                  provided=helpers(ctx.answer_format) if item_style else None)
            specs, dropped = self._accept(parsed, ctx, taken, n - len(out), answer)
            found = answer_notes(parsed, dropped, code_answers=self.prompts.code_answers)
            self._record(
                round=ctx.round, call=call, attempt=answer.attempt, status="ok", request=request,
                prompt_sha=_sha(prompt.messages), raw=answer.raw, content=answer.content,
                parsed=[{"id": s.id, "name": s.name, "entrypoint": s.entrypoint} for s in specs], dropped=dropped,
                prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                latency_s=answer.latency_s, cost_usd=self._cost(answer.prompt_tokens, answer.completion_tokens),
                meta={**answer.meta, "parse": parsed.how, "parse_error": parsed.error, "notes": answer.notes,
                      "omitted": prompt.omitted, "prompt_chars": prompt.chars, "refill": ctx.refill,
                      "answer_notes": found},
            )
            out.extend(specs)
            notes = [*carried, *found]
        return out

    def _previous_ask_notes(self, ctx: RoundContext) -> list[str]:
        """`answer_notes` of the previous ask of this round (the first proposal or the previous refill), read from
        the call records, so a refill whose earlier answer was dropped whole at parse time still says why."""
        calls = self.store.proposer_calls(round=ctx.round, status="ok") if self.store is not None else [
            c for c in self.calls if c.get("round") == ctx.round and c.get("status") == "ok"]
        calls = [c for c in calls if (c.get("meta") or {}).get("refill") != ctx.refill]
        if not calls:
            return []
        mark = (calls[-1].get("meta") or {}).get("refill")
        found: list[str] = []
        for c in calls:
            meta = c.get("meta") or {}
            if meta.get("refill") == mark:
                found.extend(x for x in meta.get("answer_notes") or [] if x not in found)
        return found[-MAX_NOTES:]

    def _accept(
        self, parsed: ParseResult, ctx: RoundContext, taken: set[str], room: int, answer: Answer
    ) -> tuple[list[RewardSpec], list[dict[str, Any]]]:
        specs: list[RewardSpec] = []
        dropped = parsed.dropped_dicts()
        for c in parsed.candidates:
            spec = RewardSpec(
                name=c.name, source=c.code, description=c.description, origin=self.name, round=ctx.round,
                entrypoint=c.entrypoint, meta={"model": self.cfg.model, **answer.meta.get("spec_meta", {})},
            )
            if self.prompts.is_example(spec.id, ctx.answer_format):
                why = f"{_EXAMPLE_COPY} {spec.id} (same normalized source)"
                dropped.append({"index": c.index, "name": c.name, "reason": why})
                continue
            if spec.id in taken:
                why = f"duplicate of {spec.id} (same normalized source)"
                dropped.append({"index": c.index, "name": c.name, "reason": why})
                continue
            if len(specs) >= room:
                why = f"beyond the {room} candidates still wanted this round"
                dropped.append({"index": c.index, "name": c.name, "reason": why})
                continue
            taken.add(spec.id)
            specs.append(spec)
        return specs, dropped

    # -- one request, with retries -------------------------------------------------------------------------

    def _request(self, prompt: Prompt) -> dict[str, Any]:
        """The request as sent and stored: no headers, no key."""
        req: dict[str, Any] = {"model": self.cfg.model, "messages": prompt.messages,
                               "temperature": self.cfg.temperature}
        if self.cfg.max_tokens is not None:
            req["max_tokens"] = self.cfg.max_tokens
        fmt = _RESPONSE_FORMATS[self.json_mode]
        if fmt is not None:
            req["response_format"] = fmt
        if self.cfg.extra_body:
            req["extra_body"] = dict(self.cfg.extra_body)
        return req

    def _delay(self, retry: int, retry_after: float | None) -> float | None:
        backoff = min(self.cfg.backoff_max_s, self.cfg.backoff_s * 2 ** (retry - 1))
        backoff *= 0.5 + 0.5 * self._jitter.random()  # equal jitter: spread clients, keep the floor
        if retry_after is None:
            return backoff
        if retry_after > self.cfg.backoff_max_s:
            return None
        return max(retry_after, backoff)

    def _complete(self, rnd: int, call: int, prompt: Prompt, request: dict[str, Any]) -> Answer | None:
        """One call: attempts until an answer, a fatal error (`ProposerError`) or the budget (None)."""
        retries = 0
        attempt = 0
        while True:
            why = self._over_budget(prompt.chars)
            if why:
                self._stop = why
                log.warning("proposer %s stops: %s", self.name, why)
                return None
            base = {"round": rnd, "call": call, "attempt": attempt, "request": request,
                    "prompt_sha": _sha(prompt.messages)}
            t0 = time.monotonic()
            try:
                answer = self._send(request)
            except _Fallback as exc:
                old = self.json_mode
                self.json_mode = _DOWNGRADE[old]
                self._record(**base, status="fallback", error=str(exc), latency_s=time.monotonic() - t0,
                             meta={"json_mode": old, "next_json_mode": self.json_mode})
                log.warning("%s rejected response_format (%s); asking again with proposer.json_mode=%s",
                            self.cfg.base_url, exc, self.json_mode)
                request = self._request(prompt)
                attempt += 1
                continue
            except _Retryable as exc:
                latency = time.monotonic() - t0
                retries += 1
                delay = self._delay(retries, exc.retry_after) if retries <= self.cfg.max_retries else None
                if delay is None:
                    self._record(**base, status="error", error=str(exc), latency_s=latency,
                                 meta={"retry_after": exc.retry_after})
                    if retries > self.cfg.max_retries:
                        why = f"gave up after {retries} attempts (proposer.max_retries={self.cfg.max_retries})"
                    else:
                        why = (f"it asks to wait {exc.retry_after:.0f}s (Retry-After), more than "
                               f"proposer.backoff_max_s={self.cfg.backoff_max_s:g}")
                    raise ProposerError(self._say(f"{exc}; {why}")) from None
                self._record(**base, status="retry", error=str(exc), latency_s=latency,
                             meta={"wait_s": round(delay, 3), "retry_after": exc.retry_after})
                log.warning("proposer call %d.%d to %s: %s; retry %d/%d in %.1fs", rnd, call, self.cfg.base_url,
                            redact(str(exc), self._secrets), retries, self.cfg.max_retries, delay)
                time.sleep(delay)
                attempt += 1
                continue
            except _Fatal as exc:
                self._record(**base, status="error", error=str(exc), latency_s=time.monotonic() - t0)
                raise ProposerError(self._say(str(exc))) from None
            answer.latency_s = time.monotonic() - t0
            answer.attempt = attempt
            answer.meta["json_mode"] = self.json_mode
            return answer

    def _say(self, what: str) -> str:
        return redact(f"proposer endpoint {self.cfg.base_url} (model {self.cfg.model}): {what}", self._secrets)

    def _ensure_client(self) -> Any:
        if self._client is None:
            from openai import OpenAI

            if self._key is None:
                log.warning("%s is not set: calling %s without an API key (fine for local servers)",
                            self.cfg.api_key_env, self.cfg.base_url)
            self._client = OpenAI(base_url=self.cfg.base_url, api_key=self._key or "no-key", max_retries=0,
                                  timeout=self.cfg.timeout_s)
        return self._client

    def _send(self, request: dict[str, Any]) -> Answer:
        import openai

        client = self._ensure_client()
        params = dict(request)
        extra = params.pop("extra_body", None)
        try:
            raw = client.chat.completions.with_raw_response.create(
                **params, extra_body=extra, timeout=self.cfg.timeout_s
            )
            body = raw.http_response.content
        except openai.APITimeoutError:
            raise _Retryable(f"no answer within proposer.timeout_s={self.cfg.timeout_s:g}s") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection failed: {exc.__cause__ or exc}") from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            full = exc.response.text if exc.response is not None else ""
            text = " ".join(full.split())[:300]
            msg = f"HTTP {status}: {text or exc.message}"
            if "response_format" in request and refuses_format(status, full or str(exc.message)):
                raise _Fallback(msg) from None  # before the retry rule: asking again unchanged cannot help
            if status in (408, 409, 429) or status >= 500:
                headers = exc.response.headers if exc.response is not None else None
                raise _Retryable(msg, retry_after_s(headers)) from None
            hint = {401: f"check the key in ${self.cfg.api_key_env}", 403: f"check the key in ${self.cfg.api_key_env}",
                    404: "check proposer.base_url (usually ends in /v1) and proposer.model"}.get(status, "")
            raise _Fatal(msg + (f"; {hint}" if hint else "")) from None
        return self._answer(body)

    def _answer(self, body: bytes) -> Answer:
        notes: list[str] = []
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = body.decode("utf-8", errors="replace")
            notes.append(f"the answer was not valid UTF-8 (first bad byte at {exc.start}); bad bytes replaced")
        try:
            data = json.loads(text)
            message = data["choices"][0]["message"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise _Retryable(f"HTTP 200 with a body that is not a chat completion: {' '.join(text.split())[:200]!r}")\
                from None
        content = _content_text(message)
        if content is not None:
            content = redact(content, self._secrets)
        if data["choices"][0].get("finish_reason") == "length":
            notes.append("the answer was cut at proposer.max_tokens")
        usage = data.get("usage") or {}
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        meta: dict[str, Any] = {}
        if not isinstance(pt, int) or not isinstance(ct, int):
            pt = pt if isinstance(pt, int) else 0
            ct = ct if isinstance(ct, int) else len(content or "") // _CHARS_PER_TOKEN
            meta["tokens_estimated"] = True
        return Answer(content=content, raw=text, prompt_tokens=pt, completion_tokens=ct, notes=notes, meta=meta)


def answer_notes(parsed: ParseResult, dropped: list[dict[str, Any]], code_answers: bool) -> list[str]:
    """What the next ask is told about one answer, before any check ran: why items were dropped at parse time
    (no function, a base reward's name, a copy of the prompt's example) and why nothing could be read. Not told:
    a duplicate of a candidate the run holds (the model cannot know it) and items beyond those wanted. A code
    answer read as ```python blocks is what the code styles ask for, not a problem."""
    out: list[str] = []
    if parsed.error and not (code_answers and parsed.how == "python blocks"):
        out.append(parsed.error)
    for d in dropped:
        reason = d["reason"]
        if reason.startswith(_EXAMPLE_COPY):
            out.append(f"item {d['index']} was a copy of the prompt's example (the same code); write a new "
                       "reward, not the example")
        elif not reason.startswith(("duplicate", "beyond")):
            out.append(reason)
    return [clip_note(r) for r in out]


def _sha(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
