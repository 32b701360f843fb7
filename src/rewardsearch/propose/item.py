"""The `item` prompt style's answers: a per-item score function, wrapped into the batch reward the run checks.

Small local models (Qwen2.5-Coder 0.5B/1.5B) asked for a batch reward `f(prompts, completions, answer,
**kwargs)` get the batch wrong far more often than the scoring (docs/llm-local.md, 2026-12-02): they loop
`for completion in completions:` and compare with `str(answer)`, the whole list (the probes' index-dependence
rejection), call `float(answer)` on the list, or drop the `zip` and use an undefined `gold`. The `item` style
asks only for

    def <name>(text: str, gold: str) -> float:

(one completion's text and its own correct answer, both strings) and `wrap_item` writes the batch loop around
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

What `wrap_item` repairs, all visible in the stored source: top-level statements that only run at import
(`print(score(...))`, `assert ...`, an `if __name__ == "__main__":` block) are removed (blank lines keep the
numbering); modules of the sandbox's allowlist used as `re.findall(...)` but never imported or bound are
imported (`NameError: re` was a frequent 0.5B failure). Which function is the score function: the item's own
name, else the last top-level function callable as `f(text, gold)` that no other top-level function calls, else
the last one callable so. Code that does not parse is wrapped all the same (its first `def` named), so the
static check rejects it with the model's line, which a refill ask passes back.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from rewardsearch.sandbox.static import ALLOWED_MODULES

SIGNATURE = "def <name>(text: str, gold: str) -> float"
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


@dataclass
class Wrapped:
    code: str            # the complete candidate source: the model's code, added imports, the wrapper
    entrypoint: str      # the wrapper: the batch reward the run calls
    function: str        # the model's per-item score function
    doc: str             # first line of the score function's docstring ("" when it has none)


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


def _callable_with_two(d: ast.FunctionDef) -> bool:
    a = d.args
    pos = len(a.posonlyargs) + len(a.args)
    required_kw = [k for k, default in zip(a.kwonlyargs, a.kw_defaults, strict=True) if default is None]
    return not required_kw and pos - len(a.defaults) <= 2 and (pos >= 2 or a.vararg is not None)


def _called_names(node: ast.AST) -> set[str]:
    return {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _choose(defs: list[ast.FunctionDef], name: str | None) -> ast.FunctionDef | None:
    fits = [d for d in defs if _callable_with_two(d)]
    named = next((d for d in fits if d.name == name), None)
    if named:
        return named
    roots = [d for d in fits if not any(d.name in _called_names(o) for o in defs if o is not d)]
    return (roots or fits or [None])[-1]


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


def wrap_item(code: str, name: str | None = None, avoid: frozenset[str] = frozenset()) -> Wrapped | str:
    """The batch reward around the per-item score function in `code`, or why there is none. `name`: the item's
    own name for its function, if it gave one; `avoid`: names the wrapper must not take (the base rewards')."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        m = _FIRST_DEF.search(code)
        if not m:
            return "code does not parse and defines no function"
        fn = m.group(1)
        wrapper = _wrapper_name(fn, {fn, *avoid})
        body = code.rstrip("\n") + "\n\n\n"
        return Wrapped(body + _WRAPPER.format(wrapper=wrapper, fn=fn), wrapper, fn, "")
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    chosen = _choose(defs, name)
    if chosen is None:
        have = ", ".join(f"{d.name}({', '.join(sorted(_params(d)))})" for d in defs) or "no top-level function"
        return f"no score function `{SIGNATURE}` (the code defines {have})"
    lines = code.splitlines()
    for i, node in enumerate(tree.body):
        if _import_time_only(node, i):
            for k in range(node.lineno - 1, node.end_lineno or node.lineno):
                lines[k] = ""
    body = "\n".join(lines).rstrip("\n") + "\n"
    imports = _missing_imports(tree)
    if imports:
        body += "\n" + "".join(f"import {m}\n" for m in imports)
    wrapper = _wrapper_name(chosen.name, _bound_names(tree) | set(avoid))
    doc = (ast.get_docstring(chosen) or "").strip()
    return Wrapped(body + "\n\n" + _WRAPPER.format(wrapper=wrapper, fn=chosen.name), wrapper, chosen.name,
                   doc.splitlines()[0] if doc else "")
