"""The `item` prompt style's answers: a per-item score function, wrapped into the batch reward the run checks.

Small local models (Qwen2.5-Coder 0.5B/1.5B) asked for a batch reward `f(prompts, completions, answer,
**kwargs)` get the batch wrong far more often than the scoring (docs/llm-local.md, 2026-12-02): they loop
`for completion in completions:` and compare with `str(answer)`, the whole list (the probes' index-dependence
rejection), call `float(answer)` on the list, or drop the `zip` and use an undefined `gold`. The `item` style
asks only for

    def <name>(text: str, gold: str) -> float:

(one completion's text and its own correct answer, both strings) and `wrap_items` writes the batch loop around
it, the same for every candidate:

    def <name>_reward(prompts, completions, answer, **kwargs):
        scores = []
        for completion, gold in zip(completions, answer):
            text = completion[-1]["content"] if not isinstance(completion, str) else completion
            scores.append(float(<name>(str(text), str(gold))))
        return scores

The stored candidate is the whole module: the model's code first, line for line (so a static-check or traceback
line number is the model's own), then any imports it used without writing them, then the wrapper, which is the
entrypoint. Everything the run does with a candidate (static check, sandboxed probes, de-duplication, training,
export) sees this complete, self-contained source; nothing is relaxed, and the wrapper catches nothing: a score
function that raises, returns None or a non-number fails the probes as any candidate would.

A score function of the text alone, `def <name>(text: str) -> float` (small models write one for the ideas that
need no correct answer: length, repetition, format), is wrapped the same way but called as `<name>(str(text))`,
without `gold`. It cannot tell a right answer from a wrong one; the probes (their `golden_pair` and other flags)
and the pre-screen judge that, as for any candidate. This module is the one place that rule lives.

The task's answer-part helper `_solution(text)` (its answer format's `segment_source`, which the prompt's
example calls and the base rewards read the answer with: `helpers`) is supplied to code that calls it without
defining it, after the model's code (so line numbers stay the model's), as the complete source of that function.

What `wrap_items` repairs, all visible in the stored source: top-level statements that only run at import
(`print(score(...))`, `assert ...`, an `if __name__ == "__main__":` block) are removed (blank lines keep the
numbering); modules of the sandbox's allowlist used as `re.findall(...)` but never imported or bound are
imported (`NameError: re` was a frequent 0.5B failure). Which functions are score functions: the root functions
(top-level, callable as `f(text, gold)` or `f(text)`, used by no other statement of the module, and not
annotated to return a non-number such as `-> str`); one candidate is made of each, the main one first (the
item's own name, else the last root taking `gold`, else the last root), each keeping the module's imports,
helpers and constants, with the other roots blanked out. Code that does not parse is wrapped all the same (its
first `def` named), so the static check rejects it with the model's line, which a refill ask passes back.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from rewardsearch.sandbox.static import ALLOWED_MODULES
from rewardsearch.tasks.answers import AnswerFormat

SIGNATURE = "def <name>(text: str, gold: str) -> float"
SIGNATURE_TEXT_ONLY = "def <name>(text: str) -> float"
_FIRST_DEF = re.compile(r"^def\s+(\w+)\s*\(", re.MULTILINE)
_IMPORTABLE = frozenset(m for m in ALLOWED_MODULES if m != "__future__")
_WRAPPER = '''def {wrapper}(prompts, completions, answer, **kwargs):
    """Scores each completion with {fn}(text, gold), paired with its own correct answer."""
    scores = []
    for completion, gold in zip(completions, answer):
        text = completion[-1]["content"] if not isinstance(completion, str) else completion
        scores.append(float({fn}(str(text), str(gold))))
    return scores
'''
# a score function of the text alone: called without the correct answer, so it cannot tell right from wrong (the
# probes' flags and the pre-screen judge that, as for any candidate)
_WRAPPER_TEXT_ONLY = '''def {wrapper}(prompts, completions, answer, **kwargs):
    """Scores each completion with {fn}(text); it does not see the correct answer."""
    scores = []
    for completion in completions:
        text = completion[-1]["content"] if not isinstance(completion, str) else completion
        scores.append(float({fn}(str(text))))
    return scores
'''
# return annotations that say a function is no score function (a helper returning the text, a list, ...)
_NOT_A_SCORE = frozenset({"str", "bytes", "list", "dict", "tuple", "set", "List", "Dict", "Tuple", "Set", "None"})


@dataclass
class Wrapped:
    code: str            # the complete candidate source: the model's code, added imports, the wrapper
    entrypoint: str      # the wrapper: the batch reward the run calls
    function: str        # the model's per-item score function
    doc: str             # first line of the score function's docstring ("" when it has none)
    gold: bool = True    # called as function(text, gold); False: function(text), without the correct answer


def helpers(fmt: AnswerFormat) -> dict[str, str]:
    """The functions a score function may call without defining them: the answer format's `_solution(text)`."""
    return {"_solution": fmt.segment_source}


def _missing_helpers(tree: ast.Module, provided: dict[str, str]) -> list[str]:
    """Sources of the provided helpers the code uses but never binds."""
    bound, loaded = _bound_names(tree), _loaded_names(tree)
    return [source for name, source in sorted(provided.items()) if name in loaded and name not in bound]


def takes_completions(code: str) -> bool:
    """Whether the code already defines a batch reward (a top-level def with a `completions` parameter): the
    model answered with the batch contract, which is then taken as written."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any("completions" in _params(d) for d in tree.body if isinstance(d, ast.FunctionDef))


def _params(d: ast.FunctionDef) -> set[str]:
    a = d.args
    return {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)}


def _callable_with(d: ast.FunctionDef, k: int) -> bool:
    a = d.args
    pos = len(a.posonlyargs) + len(a.args)
    required_kw = [x for x, default in zip(a.kwonlyargs, a.kw_defaults, strict=True) if default is None]
    return not required_kw and pos - len(a.defaults) <= k and (pos >= k or a.vararg is not None)


def _arity(d: ast.FunctionDef) -> int | None:
    """2 when callable as f(text, gold), 1 when only as f(text), None when neither; a function whose return
    annotation is not a number (`-> str`, `-> list[str]`) is no score function (None)."""
    r = d.returns
    if isinstance(r, ast.Subscript):
        r = r.value
    if isinstance(r, ast.Constant) and r.value is None:  # `-> None`
        return None
    said = r.id if isinstance(r, ast.Name) else r.value if isinstance(r, ast.Constant) else None
    if said in _NOT_A_SCORE:  # `-> str`, `-> "list"`, `-> list[str]`
        return None
    return 2 if _callable_with(d, 2) else 1 if _callable_with(d, 1) else None


def _loaded_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _score_functions(tree: ast.Module, name: str | None) -> tuple[list[tuple[ast.FunctionDef, int]], set[str]]:
    """The score functions of a module, the main one first, and the names of its root functions.

    A root function is a top-level one that nothing else in the module uses (no other statement names it, the
    import-time-only ones aside). The main one: the item's own name, else the last root callable as
    `f(text, gold)`, else the last root callable as `f(text)`, else the last function callable so (roots whose
    name starts with `_` count only when there is no other). Then every other root callable so, in source order:
    an answer block defining several score functions gives one candidate each."""
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    fits = [(d, k) for d in defs if (k := _arity(d))]
    kept = [s for i, s in enumerate(tree.body) if not _import_time_only(s, i)]
    used = {id(d): set().union(*(_loaded_names(s) for s in kept if s is not d)) for d in defs}
    roots = [(d, k) for d, k in fits if d.name not in used[id(d)]]
    public = [(d, k) for d, k in roots if not d.name.startswith("_")]

    def last(options: list[tuple[ast.FunctionDef, int]]) -> tuple[ast.FunctionDef, int] | None:
        return next((o for o in reversed(options) if o[1] == 2), None) or (options[-1] if options else None)

    main = next((f for f in fits if f[0].name == name), None) or last(public or roots) or last(fits)
    if main is None:
        return [], set()
    return [main, *(f for f in public if f[0] is not main[0])], {d.name for d, _ in roots}


def _bound_names(tree: ast.Module) -> set[str]:
    bound: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            bound.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(n.name)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in n.names)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            bound.add(n.name)
    return bound


def _missing_imports(tree: ast.Module) -> list[str]:
    """Allowlisted modules the code uses as `mod.attr` without binding the name anywhere."""
    bound = _bound_names(tree)
    used = {n.value.id for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and isinstance(n.value.ctx, ast.Load)}
    return sorted(m for m in used & _IMPORTABLE if m not in bound)


def _import_time_only(node: ast.stmt, index: int) -> bool:
    """A top-level statement that does nothing for the reward: a call or expression (but the module docstring),
    an assert, or an `if __name__ == "__main__":` block."""
    if isinstance(node, ast.Expr):
        return not (index == 0 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str))
    if isinstance(node, ast.Assert):
        return True
    return isinstance(node, ast.If) and any(isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(node.test))


def _wrapper_name(fn: str, taken: set[str]) -> str:
    base = fn[: -len("_reward")] if fn.endswith("_reward") and len(fn) > len("_reward") else fn
    options = [f"{base}_reward", f"{fn}_batch", *(f"{fn}_batch_{k}" for k in range(2, 100))]
    return next(o for o in options if o not in taken)


def wrap_items(code: str, name: str | None = None, avoid: frozenset[str] = frozenset(),
               provided: dict[str, str] | None = None) -> list[Wrapped] | str:
    """One batch reward per score function in `code` (the main one first, `_score_functions`), or why there is
    none. `name`: the item's own name for its function, if it gave one; `avoid`: names the wrapper must not take
    (the base rewards'); `provided`: helpers supplied to code that calls them undefined (`helpers`). Each keeps
    the module's imports, helpers and constants; the other score functions made candidates of their own are
    blanked out of it (blank lines keep the model's line numbers)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        m = _FIRST_DEF.search(code)
        if not m:
            return "code does not parse and defines no function"
        fn = m.group(1)
        wrapper = _wrapper_name(fn, {fn, *avoid})
        body = code.rstrip("\n") + "\n\n\n"
        return [Wrapped(body + _WRAPPER.format(wrapper=wrapper, fn=fn), wrapper, fn, "")]
    scores, roots = _score_functions(tree, name)
    if not scores:
        have = ", ".join(_signature(d) for d in tree.body if isinstance(d, ast.FunctionDef)) or "no top-level function"
        return f"no score function `{SIGNATURE}` or `{SIGNATURE_TEXT_ONLY}` (the code defines {have})"
    lines = code.splitlines()
    for i, node in enumerate(tree.body):
        if _import_time_only(node, i):
            _blank(lines, node)
    imports = _missing_imports(tree)
    added = ("\n" + "".join(f"import {m}\n" for m in imports)) if imports else ""
    added += "".join("\n\n" + source.rstrip() + "\n" for source in _missing_helpers(tree, provided or {}))
    taken = _bound_names(tree) | set(avoid)
    out = []
    for d, arity in scores:
        own = list(lines)
        for other, _ in scores:
            if other is not d and other.name in roots:
                _blank(own, other)
        body = "\n".join(own).rstrip("\n") + "\n" + added
        wrapper = _wrapper_name(d.name, taken)
        template = _WRAPPER if arity == 2 else _WRAPPER_TEXT_ONLY
        doc = (ast.get_docstring(d) or "").strip()
        out.append(Wrapped(body + "\n\n" + template.format(wrapper=wrapper, fn=d.name), wrapper, d.name,
                           doc.splitlines()[0] if doc else "", gold=arity == 2))
    return out


def wrap_item(code: str, name: str | None = None, avoid: frozenset[str] = frozenset(),
              provided: dict[str, str] | None = None) -> Wrapped | str:
    """The batch reward around the main score function in `code` (`wrap_items`' first), or why there is none."""
    wrapped = wrap_items(code, name, avoid, provided)
    return wrapped if isinstance(wrapped, str) else wrapped[0]


def _signature(d: ast.FunctionDef) -> str:
    """`name(arguments) -> annotation`, for a drop reason."""
    a = d.args
    args = [x.arg for x in (*a.posonlyargs, *a.args)] + ([f"*{a.vararg.arg}"] if a.vararg else []) + [
        x.arg for x in a.kwonlyargs]
    return f"{d.name}({', '.join(args)})" + (f" -> {ast.unparse(d.returns)}" if d.returns else "")


def _blank(lines: list[str], node: ast.stmt) -> None:
    """Empties the lines of a top-level statement (with its decorators), keeping the others' numbers."""
    first = min([node.lineno, *(x.lineno for x in getattr(node, "decorator_list", []))])
    for k in range(first - 1, node.end_lineno or node.lineno):
        lines[k] = ""
