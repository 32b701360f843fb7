"""Static (AST) check of candidate reward source, the first and cheapest sandbox layer.

`static_check(source, entrypoint)` parses the source (never runs it) and rejects, with the line and the rule:

- imports outside the stdlib allowlist (`ALLOWED_MODULES`), relative and star imports, and names imported from
  an allowed module that are private (`_x`), are modules outside the allowlist (`from typing import sys`), or
  are known eval/reflection gateways (`FORBIDDEN_ATTRS`: `operator.attrgetter`, `typing.get_type_hints`, ...);
- dunder names and attributes (`__class__`, `__globals__`, `__builtins__`, `__import__`, ...), except dunder
  method definitions inside a class body and calls of the ordinary protocol methods listed in
  `SAFE_DUNDER_ATTRS` (`super().__init__()`); string constants spelling a dunder (`"{0.__class__}".format(x)`)
  count as dunder use, and format fields reading a private or frame attribute (`"{0.gi_frame}"`) are
  rejected as `format-attr`;
- the builtins in `FORBIDDEN_NAMES` (`eval`, `exec`, `open`, `getattr`, ...), wherever the name appears;
- attributes starting with a frame/generator/code prefix (`f_`, `gi_`, `tb_`, `co_`, `cr_`, `ag_`);
- private attributes of imported modules (`random._os`) and attributes of imported modules that are modules
  outside the allowlist (`typing.sys`), resolved by importing the allowed stdlib module here and looking;
- syntax errors, sources over `MAX_SOURCE_CHARS`, and an entrypoint that is not a top-level `def` taking
  `prompts` and `completions` by keyword plus `**kwargs`.

Identifiers are compared after NFKC normalization, as Python itself does (`import ｏｓ` is `import os`).

What is NOT guaranteed: this is a filter for honest-but-careless code, not a Python-level security boundary.
Python has too many reflective paths (aliasing a module before taking its attributes, strings built at run
time and fed to eval-like stdlib helpers, format strings built at run time) for an AST check to close them
all. Containment comes from the worker (`worker.py`, `runner.py`): restricted builtins and a guarded import,
then the OS layer of `isolation.py` (namespaces, a private uid, Landlock, seccomp), resource limits and
deadlines. The adversarial tests run every hostile case with this check switched off, to prove that.
"""

from __future__ import annotations

import ast
import importlib
import re
import types
import unicodedata
from dataclasses import dataclass

ALLOWED_MODULES: tuple[str, ...] = (
    "__future__", "re", "math", "statistics", "string", "collections", "itertools", "functools", "operator",
    "fractions", "decimal", "unicodedata", "difflib", "json", "typing", "dataclasses", "enum", "bisect",
    "heapq",
)  # fmt: skip
_ALLOWED = frozenset(ALLOWED_MODULES)

FORBIDDEN_NAMES = frozenset({
    "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "vars", "globals",
    "locals", "breakpoint", "input", "memoryview", "help", "exit", "quit",
})  # fmt: skip

# Public attributes of allowed modules that turn strings into attribute access or evaluated code.
# The worker hides the same names from the modules it hands out (worker.HIDDEN_ATTRS must stay equal).
FORBIDDEN_ATTRS = frozenset({
    "attrgetter", "methodcaller",                # operator: attribute access by string
    "get_type_hints", "ForwardRef",              # typing: eval() of string annotations
    "singledispatch", "singledispatchmethod",    # functools: calls get_type_hints on annotations
    "Formatter", "get_field",                    # string: attribute access by format-string field
})  # fmt: skip

# Protocol methods a class may call on itself or its base (`super().__init__(...)`); none reach globals.
SAFE_DUNDER_ATTRS = frozenset({
    "__init__", "__post_init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
    "__ge__", "__hash__", "__len__", "__iter__", "__next__", "__contains__", "__getitem__", "__setitem__",
    "__call__", "__enter__", "__exit__", "__add__", "__sub__", "__mul__", "__truediv__", "__bool__",
    "__float__", "__int__",
})  # fmt: skip

# Private-looking but public API of namedtuples.
PUBLIC_UNDERSCORE_ATTRS = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})

FRAME_PREFIXES = ("gi_", "f_", "tb_", "co_", "cr_", "ag_")
MAX_SOURCE_CHARS = 200_000
_DUNDER_IN_TEXT = re.compile(r"__\w+__")
# A str.format field that reads a private or frame/generator/code attribute: "{0._x}", "{0.gi_frame}".
_FORMAT_ATTR = re.compile(r"\{[^{}]*?\.(_\w*|(?:gi|f|tb|co|cr|ag)_\w+)")


@dataclass
class StaticResult:
    """Outcome of `static_check`: `ok`, or the first violation's `reason` ("line N: ..."), `line` and `rule`.

    Rules: `syntax`, `size`, `import`, `dunder`, `forbidden-name`, `forbidden-attr`, `frame-attr`,
    `format-attr`, `private-attr`, `module-attr`, `entrypoint`.
    """

    ok: bool
    reason: str | None = None
    line: int | None = None
    rule: str | None = None


def _norm(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not _is_dunder(name)


def _module_allowed(name: str) -> bool:
    """`json`, `collections.abc`: the root is allowlisted and no part is private."""
    parts = name.split(".")
    return parts[0] in _ALLOWED and not any(p.startswith("_") for p in parts[1:])


def _load(name: str) -> types.ModuleType | None:
    """Import an allowlisted stdlib module in this process to look at its attributes (never user code)."""
    if not _module_allowed(name):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _leaks_module(value: object) -> str | None:
    """The name of a module outside the allowlist, if `value` is one."""
    if isinstance(value, types.ModuleType) and not _module_allowed(value.__name__):
        return value.__name__
    return None


class _Checker:
    """Collects every violation as (line, col, rule, message); the earliest one is reported."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.violations: list[tuple[int, int, str, str]] = []
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):  # iterative, so deep nesting cannot overflow the C stack here
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        self.module_names: dict[str, str] = {}  # local name -> module it is bound to by an import
        self.docstrings: set[int] = set()

    # -- helpers ---------------------------------------------------------------------------------------------
    def flag(self, node: ast.AST, rule: str, message: str) -> None:
        line = getattr(node, "lineno", None)
        probe = node
        while line is None and probe in self.parent:  # alias/arg/keyword nodes may lack positions
            probe = self.parent[probe]
            line = getattr(probe, "lineno", None)
        self.violations.append((line or 1, getattr(node, "col_offset", 0) or 0, rule, message))

    def check_attr_name(self, node: ast.AST, attr: str) -> None:
        """Rules shared by `x.attr` and `case C(attr=...)` (match patterns read attributes too)."""
        if _is_dunder(attr) and attr not in SAFE_DUNDER_ATTRS:
            self.flag(node, "dunder", f"dunder attribute '{attr}' is not allowed")
        elif attr.startswith(FRAME_PREFIXES):
            self.flag(
                node, "frame-attr",
                f"attribute '{attr}' is not allowed (frame/generator/code internals: names starting with "
                f"{', '.join(FRAME_PREFIXES)}; rename it if it is your own)",
            )  # fmt: skip
        elif attr in FORBIDDEN_ATTRS:
            self.flag(
                node, "forbidden-attr", f"'{attr}' is not allowed (it reaches attributes or code by string)"
            )

    # -- passes ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.collect_docstrings()
        self.collect_imports()
        for node in ast.walk(self.tree):
            self.visit(node)

    def collect_docstrings(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                self.docstrings.add(id(node.value))  # bare string statements are never read by code

    def collect_imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = _norm(alias.name)
                    if alias.asname:
                        self.module_names[_norm(alias.asname)] = name
                    else:
                        root = name.split(".")[0]
                        self.module_names[root] = root
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                base = _load(_norm(node.module))
                for alias in node.names:
                    value = getattr(base, _norm(alias.name), None) if base else None
                    if isinstance(value, types.ModuleType):
                        self.module_names[_norm(alias.asname or alias.name)] = value.__name__

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            self.visit_import(node)
        elif isinstance(node, ast.ImportFrom):
            self.visit_import_from(node)
        elif isinstance(node, ast.Name):
            name = _norm(node.id)
            if _is_dunder(name):
                self.flag(node, "dunder", f"dunder name '{name}' is not allowed")
            elif name in FORBIDDEN_NAMES:
                self.flag(node, "forbidden-name", f"name '{name}' is not allowed")
        elif isinstance(node, ast.Attribute):
            self.check_attr_name(node, _norm(node.attr))
            self.check_module_attr(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = _norm(node.name)
            in_class = isinstance(self.parent.get(node), ast.ClassDef)
            if _is_dunder(name) and not (in_class and not isinstance(node, ast.ClassDef)):
                self.flag(
                    node, "dunder", f"dunder name '{name}' is only allowed for methods defined in a class"
                )
        elif isinstance(node, ast.arg):
            # shadowing a builtin with a parameter is harmless; using the name is caught as an ast.Name
            self.check_binding(node, node.arg, forbidden=False)
        elif isinstance(node, ast.keyword) and node.arg:
            self.check_binding(node, node.arg, forbidden=False)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                self.check_binding(node, name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self.check_binding(node, node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            self.check_binding(node, node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            self.check_binding(node, node.rest)
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:
                self.check_attr_name(node, _norm(attr))
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            if id(node) not in self.docstrings:
                text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
                match = _DUNDER_IN_TEXT.search(_norm(text))
                if match:
                    self.flag(node, "dunder", f"string naming a dunder ('{match.group()}') is not allowed")
                elif fmt := _FORMAT_ATTR.search(_norm(text)):
                    self.flag(
                        node, "format-attr",
                        f"format field reading attribute '{fmt.group(1)}' is not allowed (private or frame internals)",
                    )  # fmt: skip

    def check_binding(self, node: ast.AST, raw: str, forbidden: bool = True) -> None:
        name = _norm(raw)
        if _is_dunder(name):
            self.flag(node, "dunder", f"dunder name '{name}' is not allowed")
        elif forbidden and name in FORBIDDEN_NAMES:
            self.flag(node, "forbidden-name", f"name '{name}' is not allowed")

    def visit_import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = _norm(alias.name)
            if not _module_allowed(name):
                self.flag(
                    node,
                    "import",
                    f"import of '{name}' is not allowed (allowed: {', '.join(ALLOWED_MODULES)})",
                )
            if alias.asname:
                self.check_binding(alias, alias.asname)

    def visit_import_from(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.flag(node, "import", "relative imports are not allowed")
            return
        module = _norm(node.module or "")
        if not _module_allowed(module):
            self.flag(
                node, "import", f"import of '{module}' is not allowed (allowed: {', '.join(ALLOWED_MODULES)})"
            )
            return
        base = _load(module)
        for alias in node.names:
            name = _norm(alias.name)
            if name == "*":
                self.flag(
                    node, "import", f"'from {module} import *' is not allowed; import the names you use"
                )
                continue
            if _is_private(name):
                self.flag(node, "private-attr", f"private name '{name}' of module '{module}' is not allowed")
            elif name in FORBIDDEN_NAMES:
                self.flag(
                    node, "forbidden-name", f"name '{name}' is not allowed; use '{module}.{name}' instead"
                )
            elif name in FORBIDDEN_ATTRS:
                self.flag(
                    node,
                    "forbidden-attr",
                    f"'{name}' is not allowed (it reaches attributes or code by string)",
                )
            elif base is not None and (leak := _leaks_module(getattr(base, name, None))):
                self.flag(node, "module-attr", f"import of '{leak}' (as {module}.{name}) is not allowed")
            if alias.asname:
                self.check_binding(alias, alias.asname)

    def check_module_attr(self, node: ast.Attribute) -> None:
        """`mod.x.y` where `mod` is bound by an import: resolve on the real module, attribute by attribute."""
        chain: list[str] = []
        base: ast.AST = node
        while isinstance(base, ast.Attribute):
            chain.append(_norm(base.attr))
            base = base.value
        if not isinstance(base, ast.Name) or _norm(base.id) not in self.module_names:
            return
        if isinstance(self.parent.get(node), ast.Attribute):
            return  # the outermost attribute of the chain checks the whole chain once
        chain.reverse()
        obj: object = _load(self.module_names[_norm(base.id)])
        path = self.module_names[_norm(base.id)]
        for attr in chain:
            if not isinstance(obj, types.ModuleType):
                return
            if _is_private(attr) and attr not in PUBLIC_UNDERSCORE_ATTRS:
                self.flag(
                    node, "private-attr", f"private attribute '{path}.{attr}' of a module is not allowed"
                )
                return
            obj = getattr(obj, attr, None)
            path = f"{path}.{attr}"
            leak = _leaks_module(obj)
            if leak:
                self.flag(node, "module-attr", f"'{path}' is the module '{leak}', which is not allowed")
                return

    # -- entrypoint ------------------------------------------------------------------------------------------
    def check_entrypoint(self, entrypoint: str) -> None:
        name = _norm(entrypoint)
        found: ast.AST | None = None
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _norm(node.name) == name:
                found = node
        if found is None:
            message = f"no top-level 'def {name}(prompts, completions, **kwargs)' (it must be a plain def)"
            self.violations.append((1, 0, "entrypoint", message))
            return
        if isinstance(found, ast.AsyncFunctionDef):
            self.flag(found, "entrypoint", f"entrypoint '{name}' must be a plain 'def', not 'async def'")
            return
        assert isinstance(found, ast.FunctionDef)
        args = found.args
        by_keyword = {_norm(a.arg) for a in args.args + args.kwonlyargs}
        missing = [p for p in ("prompts", "completions") if p not in by_keyword]
        if missing:
            self.flag(
                found, "entrypoint",
                f"entrypoint '{name}' must take {' and '.join(missing)} as keyword-passable parameters "
                f"(signature: def {name}(prompts, completions, answer, **kwargs))",
            )  # fmt: skip
        elif args.kwarg is None:
            self.flag(
                found, "entrypoint",
                f"entrypoint '{name}' must accept **kwargs (the trainer passes dataset columns as keywords)",
            )  # fmt: skip


def static_check(source: str, entrypoint: str) -> StaticResult:
    """Check candidate reward `source` without running it; see the module docstring for the rules."""
    if len(source) > MAX_SOURCE_CHARS:
        return StaticResult(
            False, f"line 1: source is {len(source)} characters (limit {MAX_SOURCE_CHARS})", 1, "size"
        )
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        line = exc.lineno or 1
        return StaticResult(False, f"line {line}: syntax error: {exc.msg}", line, "syntax")
    except (RecursionError, MemoryError, ValueError) as exc:
        return StaticResult(False, f"line 1: source does not parse: {type(exc).__name__}", 1, "syntax")
    checker = _Checker(tree)
    checker.run()
    checker.check_entrypoint(entrypoint)
    if not checker.violations:
        return StaticResult(True)
    line, _col, rule, message = min(checker.violations, key=lambda v: (v[0], v[1]))
    return StaticResult(False, f"line {line}: {message}", line, rule)
