"""Turning an LLM's answer into candidate rewards: robust JSON extraction, then validation item by item.

The model is asked for `{"candidates": [{"name": ..., "code": ..., "description": ...}, ...]}`. Answers arrive
in every shape, so `parse_answer` tries, in order, stopping at the first that yields items:

1. the whole answer as JSON (an array, or an object holding one, or a single item);
2. each ```json (or unlabelled) fenced block;
3. JSON embedded in prose: the first `[` or `{` from which a JSON value decodes;
4. salvage: every complete `{"name"|"code"|...: ...}` object, for answers cut off at the token limit or broken
   by one malformed item;
5. ```python blocks that define a function (the model ignored the format but wrote code).

Before each JSON attempt fails for good, one repair is tried: backslashes that are not JSON escapes (`\\d` in a
regex written without doubling) are doubled, the commonest way LLM-written code breaks JSON.

Every item becomes a `Candidate` or a `Dropped` with its reason; one bad item never costs the good ones. Nothing
here runs candidate code: `ast.parse` only reads it to find the function to call.

`parse_answer(text, item=True)` (the `item` prompt style): an item's code is a per-item score function
`f(text, gold) -> float` or `f(text) -> float`, and the candidate is `item.wrap_items`' complete module around
it (the model's code, imports it used without writing them, the batch wrapper as entrypoint); an item defining
several score functions that nothing else uses gives one candidate of each, every item's main one first, so
that when fewer are wanted than the answer holds each item keeps the one it gave before. Code that already
defines a batch reward (a function taking `completions`) is taken as written.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any

from rewardsearch.propose.item import takes_completions, wrap_items

# Base rewards are trained beside every candidate and TRL logs metrics per function name
# (`rewards/{name}/mean`): a candidate with one of these names would make the curves ambiguous.
RESERVED_NAMES = frozenset({"exact_format_reward", "approx_format_reward", "answer_reward"})
_LIST_KEYS = ("candidates", "rewards", "reward_functions", "functions", "items", "results")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_ITEM_START = re.compile(r'\{\s*"(?:name|code|source|description)"\s*:')
_BAD_ESCAPE = re.compile(r'(?<!\\)((?:\\\\)*)\\(?!["\\/bfnrtu])')
_MAX_EMBED_TRIES = 200
MAX_DESCRIPTION = 500


@dataclass
class Candidate:
    name: str
    code: str
    description: str
    entrypoint: str
    index: int = 0                  # position in the answer's list of items


@dataclass
class Dropped:
    index: int | None
    name: str | None
    reason: str


@dataclass
class ParseResult:
    candidates: list[Candidate] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    how: str = "nothing"            # json | fenced json | embedded json | salvaged objects | python blocks | nothing
    error: str | None = None        # why nothing (or not everything) could be read

    def dropped_dicts(self) -> list[dict[str, Any]]:
        return [asdict(d) for d in self.dropped]


# --- finding the JSON ---------------------------------------------------------------------------------------------


def _loads(text: str) -> tuple[Any, str | None]:
    """(value, None) or (None, error); `strict=False` lets raw newlines and tabs inside strings through."""
    try:
        return json.loads(text, strict=False), None
    except json.JSONDecodeError as exc:
        first = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    try:
        return json.loads(_BAD_ESCAPE.sub(r"\1\\\\", text), strict=False), None
    except json.JSONDecodeError:
        return None, first


def _items(value: Any) -> list[Any] | None:
    """The list of items a decoded value holds, if it holds one."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if "code" in value or "source" in value:
            return [value]
        for key in _LIST_KEYS:
            if isinstance(value.get(key), list):
                return value[key]
        for v in value.values():
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                return v
    return None


def _embedded(text: str) -> list[Any] | None:
    decoder = json.JSONDecoder(strict=False)
    tries = 0
    for m in re.finditer(r"[\[{]", text):
        tries += 1
        if tries > _MAX_EMBED_TRIES:
            break
        for candidate in (text, _BAD_ESCAPE.sub(r"\1\\\\", text)):
            try:
                value, _end = decoder.raw_decode(candidate, m.start())
            except json.JSONDecodeError:
                continue
            items = _items(value)
            # a lone item is left to `_salvage`, which also finds its complete siblings in a cut-off array
            if items and any(isinstance(x, dict) for x in items) and items != [value]:
                return items
            break  # decoded, but not a list of candidates (a "[1]" citation in prose): keep looking
    return None


def _salvage(text: str) -> list[Any]:
    decoder = json.JSONDecoder(strict=False)
    out: list[Any] = []
    end = 0
    for m in _ITEM_START.finditer(text):
        if m.start() < end:
            continue  # inside an object already decoded
        for candidate in (text, _BAD_ESCAPE.sub(r"\1\\\\", text)):
            try:
                value, stop = decoder.raw_decode(candidate, m.start())
            except json.JSONDecodeError:
                continue
            if candidate is text:
                end = stop
            out.append(value)
            break
    return out


def _python_blocks(text: str) -> list[dict[str, Any]]:
    return [
        {"code": body, "description": ""}
        for lang, body in _FENCE.findall(text)
        if lang.lower() in ("python", "py", "python3") and re.search(r"^def \w+\(", body, re.MULTILINE)
    ]


def _find_items(text: str) -> tuple[list[Any] | None, str, str | None]:
    value, error = _loads(text)
    if error is None:
        items = _items(value)
        if items is not None:
            return items, "json", None
        error = f"the JSON answer is a {type(value).__name__} holding no list of candidates"
    for lang, body in _FENCE.findall(text):
        if lang.lower() in ("", "json", "jsonc", "javascript"):
            value, err = _loads(body.strip())
            if err is None and _items(value) is not None:
                return _items(value), "fenced json", None
    items = _embedded(text)
    if items:
        return items, "embedded json", None
    salvaged = _salvage(text)
    if salvaged:
        return salvaged, "salvaged objects", f"the answer is not valid JSON ({error}); complete objects salvaged"
    blocks = _python_blocks(text)
    if blocks:
        return blocks, "python blocks", "no JSON in the answer; ```python blocks taken as candidates"
    return None, "nothing", f"no candidates found: the answer is not JSON ({error}) and holds no JSON or code blocks"


# --- validating one item -------------------------------------------------------------------------------------------


def _strip_fence(code: str) -> str:
    m = re.fullmatch(r"\s*```[A-Za-z0-9_+-]*[^\n]*\n(.*?)```\s*", code, re.DOTALL)
    return textwrap.dedent(m.group(1) if m else code).strip("\n") + "\n"


def slug(name: str) -> str:
    return re.sub(r"\W+", "_", name.strip()).strip("_").lower()[:60]


def find_entrypoint(code: str, name: str | None) -> tuple[str | None, str | None]:
    """(function to call, None) or (None, why not). Code that does not parse keeps its name: the static check
    rejects it later with the line, which is feedback the proposer can use."""
    entry, why, _ = _entrypoint(code, name)
    return entry, why


def _entrypoint(code: str, name: str | None) -> tuple[str | None, str | None, str]:
    """`find_entrypoint`, plus the first line of the chosen function's docstring ("" when it has none)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return (name, None, "") if name else (None, "code does not parse and the item has no name", "")
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    by_name = {d.name: d for d in defs}
    takes = [d for d in defs if "completions" in {a.arg for a in (*d.args.posonlyargs, *d.args.args,
                                                                   *d.args.kwonlyargs)}]
    chosen = by_name.get(name or "") or (takes[-1] if takes else defs[-1] if defs else None)
    if chosen is None:
        return None, "code defines no top-level function", ""
    doc = (ast.get_docstring(chosen) or "").strip()
    return chosen.name, None, doc.splitlines()[0] if doc else ""


def _reserved_reason(label: str, entry: str) -> str:
    return (f"{label}: function name {entry!r} is a base reward's (trained beside every candidate); choose another "
            "name")


def validate_item(index: int, item: Any, item_style: bool = False,
                  provided: dict[str, str] | None = None) -> list[Candidate] | Dropped:
    """The candidates of one item (one, but in the item style one per score function it defines, the main one
    first), or why there is none. `provided`: the item style's helpers (`item.helpers`)."""
    if not isinstance(item, dict):
        return Dropped(index, None, f"item {index} is a {type(item).__name__}, not an object with name and code")
    raw_name = item.get("name")
    name = slug(raw_name) if isinstance(raw_name, str) and slug(raw_name) else None
    code = item.get("code", item.get("source"))
    label = f"item {index}" + (f" ({name})" if name else "")
    if not isinstance(code, str) or not code.strip():
        return Dropped(index, name, f"{label} has no 'code' string")
    code = _strip_fence(code)
    description = item.get("description")
    description = description.strip() if isinstance(description, str) else ""
    found: list[tuple[str, str, str, str | None]] = []  # (code, entrypoint, docstring line, name)
    if item_style and not takes_completions(code):
        wrapped = wrap_items(code, name, avoid=RESERVED_NAMES, provided=provided)
        if isinstance(wrapped, str):
            return Dropped(index, name, f"{label}: {wrapped}")
        reserved = next((w.function for w in wrapped if w.function in RESERVED_NAMES), None)
        if reserved:
            return Dropped(index, name, _reserved_reason(label, reserved))
        # the candidate is the wrapper: its name is the function the run calls and TRL logs; the item's own
        # description belongs to its main function only
        found = [(w.code, w.entrypoint, w.doc, w.entrypoint) for w in wrapped]
        descriptions = [description] + [""] * (len(found) - 1)
    else:
        entry, why, doc = _entrypoint(code, name)
        if entry is None:
            return Dropped(index, name, f"{label}: {why}")
        found = [(code, entry, doc, name)]
        descriptions = [description]
    out: list[Candidate] = []
    for (source, entry, doc, own), desc in zip(found, descriptions, strict=True):
        if entry in RESERVED_NAMES:
            return Dropped(index, name, _reserved_reason(label, entry))
        # a code-only answer (```python blocks) says what it rewards in the called function's docstring
        text = (desc or doc)[:MAX_DESCRIPTION]
        if own and own[0].isdigit():
            own = f"r_{own}"
        out.append(Candidate(name=own or entry, code=source, description=text, entrypoint=entry, index=index))
    return out


def parse_answer(text: str | None, item: bool = False, provided: dict[str, str] | None = None) -> ParseResult:
    """Candidates and dropped items of one answer; see the module docstring (`item`: the item prompt style;
    `provided`: its helpers, `item.helpers`)."""
    if text is None or not text.strip():
        return ParseResult(how="nothing", error="empty answer")
    items, how, error = _find_items(text.strip())
    result = ParseResult(how=how, error=error)
    extra: list[Candidate] = []
    for i, value in enumerate(items or []):
        out = validate_item(i, value, item_style=item, provided=provided)
        if isinstance(out, Dropped):
            result.dropped.append(out)
        else:
            result.candidates.append(out[0])
            extra.extend(out[1:])
    # an item's further score functions come after every item's main one: when fewer candidates are wanted than
    # the answer holds, each item's main function (the one an item gave before) is kept first
    result.candidates.extend(extra)
    return result
