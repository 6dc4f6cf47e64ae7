"""``static_analysis`` actions: code metrics of Python source, measured with ``ast``.

Cyclomatic complexity of one function (a McCabe-style count, documented here because
tools differ): start at 1 and add

- 1 for each ``if``/``elif`` statement and each conditional expression (``a if c else b``);
- 1 for each ``for``, ``async for`` and ``while`` loop (their ``else`` adds nothing);
- 1 for each ``except`` clause (``try``, ``else`` and ``finally`` add nothing);
- 1 for each ``with``/``async with`` statement (a context manager may swallow an
  exception, so control can leave the block early);
- ``n - 1`` for each boolean operation with ``n`` operands (``a and b or c`` adds 2);
- 1 for each ``for`` clause and 1 for each ``if`` clause of a comprehension;
- 1 for each ``case`` of a ``match``.

Lambdas count towards the function they appear in; a nested ``def`` or ``class`` is
measured on its own (its decorators, defaults and body are not part of the outer score).
Module-level code is not scored.

Line kinds: a *comment* line holds only a comment; a *blank* line holds only whitespace;
neither is inside a string literal (a blank or ``#`` line within a docstring is code).
Every other line is a *code* line. The result equals a count over ``tokenize``'s tokens;
only the multi-line string literals found by ``ast`` are tokenized, which is several
times faster.
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.actions._common import DEFAULT_EXCLUDE, MAX_FILE_BYTES, discover, parse_python, patterns, positive_int

__all__ = ["TOP_COMPLEX", "analyze_code_quality", "function_complexity", "line_counts", "scopes"]

TOP_COMPLEX = 10
_BRANCHES: tuple[type[ast.AST], ...] = (ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While)
_BRANCHES += (ast.ExceptHandler, ast.With, ast.AsyncWith, ast.match_case)
_NEWLINE = re.compile(r"\r\n|\r|\n")
_LAYOUT = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.OP})
_Scope = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def function_complexity(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The cyclomatic complexity of ``fn`` by the rule in the module docstring."""
    score = 1
    stack: list[ast.AST] = list(fn.body)
    while stack:
        node = stack.pop()
        if isinstance(node, _Scope):
            continue
        if isinstance(node, _BRANCHES):
            score += 1
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        stack.extend(ast.iter_child_nodes(node))
    return score


def _child_statements(node: ast.AST) -> list[ast.stmt]:
    """The statements directly inside ``node`` (``def`` and ``class`` are statements,
    so they are never inside an expression)."""
    out: list[ast.stmt] = []
    for field in ("body", "orelse", "finalbody"):
        value = getattr(node, field, None)
        if isinstance(value, list):
            out.extend(v for v in value if isinstance(v, ast.stmt))
    clauses: list[ast.ExceptHandler | ast.match_case] = [*getattr(node, "handlers", ()), *getattr(node, "cases", ())]
    for clause in clauses:
        out.extend(clause.body)
    return out


def scopes(tree: ast.AST) -> list[tuple[str, _Scope]]:
    """Every function and class in ``tree`` with its dotted qualified name
    (``Outer.method``, ``outer.inner``), in source order."""
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    found: list[tuple[str, _Scope]] = []
    while stack:
        node, prefix = stack.pop()
        for child in _child_statements(node):
            if isinstance(child, _Scope):
                name = prefix + child.name
                found.append((name, child))
                stack.append((child, name + "."))
            else:
                stack.append((child, prefix))
    found.sort(key=lambda item: (item[1].lineno, item[1].col_offset))
    return found


def _string_rows(tree: ast.Module, lines: list[str]) -> set[int]:
    """The rows after the first of every string token that spans rows.

    A multi-line string literal is one AST node, but so is an implicit concatenation
    whose parts may have comment and blank lines between them (``("a"  # c`` /
    ``"b")``), so the source of each multi-line literal node is tokenized."""
    inside: set[int] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, ast.Constant | ast.JoinedStr):
            stack.extend(ast.iter_child_nodes(node))
            continue
        first, last = node.lineno, node.end_lineno
        if last is None or node.end_col_offset is None or last == first:
            continue
        inside.add(last)  # the last row holds the end of a string token
        if last == first + 1:
            continue
        parts = [lines[first - 1].encode()[node.col_offset :].decode(errors="replace")]
        parts += lines[first : last - 1]
        parts.append(lines[last - 1].encode()[: node.end_col_offset].decode(errors="replace"))
        try:
            for tok in tokenize.generate_tokens(io.StringIO("(" + "\n".join(parts) + ")").readline):
                if tok.type not in _LAYOUT:
                    inside.update(range(first + tok.start[0], first + tok.end[0]))
        except (tokenize.TokenError, SyntaxError):
            inside.update(range(first + 1, last + 1))
    return inside


def line_counts(source: bytes, tree: ast.Module) -> dict[str, int]:
    """``{"lines", "code_lines", "blank_lines", "comment_lines"}`` of a parsed source.

    A comment line's first non-blank character is ``#``, a blank line holds only
    whitespace; neither may be inside a string literal. (This gives what ``tokenize``
    gives, several times faster.)"""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    lines = _NEWLINE.split(source.decode(encoding))
    if lines and lines[-1] == "":
        lines.pop()  # the text ends with a line break
    inside = _string_rows(tree, lines)
    blank = comment = 0
    for row, line in enumerate(lines, start=1):
        if row in inside:
            continue
        text = line.strip()
        if not text:
            blank += 1
        elif text.startswith("#"):
            comment += 1
    return {
        "lines": len(lines),
        "code_lines": len(lines) - blank - comment,
        "blank_lines": blank,
        "comment_lines": comment,
    }


def _documented(node: ast.Module | _Scope) -> bool:
    doc = ast.get_docstring(node)
    return bool(doc and doc.strip())


def analyze_code_quality(
    path: str = ".",
    include: Sequence[str] = ("*.py",),
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    max_files: int = 5000,
) -> dict[str, Any]:
    """Measure the Python files under ``path`` with ``ast`` and ``tokenize``.

    Parameters:
        path: a Python file or a directory (walked recursively).
        include: glob patterns for file names to measure (default ``["*.py"]``).
        exclude: glob patterns for directory and file names to skip (default: ``.git``,
            ``.venv``, ``venv``, ``__pycache__``, ``node_modules``, ``build``, ``dist``,
            tool caches, ``*.egg-info``). A string is one pattern.
        max_files: stop after this many files (``truncated`` is then true).

    Returns (file paths relative to ``path``, ``/``-separated; a file ``path`` gives its
    bare name)::

        {
          "path": str,                      # the resolved path measured
          "files": int,                     # files parsed and measured
          "lines": int, "code_lines": int, "blank_lines": int, "comment_lines": int,
          "functions": int,                 # def + async def, methods and nested ones included
          "classes": int,
          "documented_functions": int,      # with a non-empty docstring
          "documented_classes": int,
          "docstring_ratio": float | None,  # documented (functions + classes) / (functions + classes), 4 places
          "average_complexity": float | None,  # per function, 2 places; None without functions
          "max_complexity": int | None,
          "most_complex": [{"file": str, "name": str, "line": int, "complexity": int}, ...],  # top 10
          "errors": [{"file": str, "error": str}, ...],  # unreadable/unparsable/too large: not measured
          "truncated": bool,
        }

    ``most_complex`` is sorted by complexity (highest first), then file and line.
    Raises FileNotFoundError when ``path`` does not exist.
    """
    found = discover(
        path, patterns(include, "include"), patterns(exclude, "exclude"), positive_int(max_files, "max_files")
    )
    totals = dict.fromkeys(("lines", "code_lines", "blank_lines", "comment_lines"), 0)
    counts = dict.fromkeys(("functions", "classes", "documented_functions", "documented_classes"), 0)
    complexities: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    files = 0
    for file in found.files:
        rel = found.rel(file)
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                errors.append({"file": rel, "error": f"larger than {MAX_FILE_BYTES} bytes; not parsed"})
                continue
            source = file.read_bytes()
            tree = parse_python(source, rel)
            lines = line_counts(source, tree)
        except (OSError, SyntaxError, ValueError, RecursionError, tokenize.TokenError) as e:
            errors.append({"file": rel, "error": f"{type(e).__name__}: {e}"})
            continue
        files += 1
        for key, value in lines.items():
            totals[key] += value
        for name, node in scopes(tree):
            kind = "classes" if isinstance(node, ast.ClassDef) else "functions"
            counts[kind] += 1
            if _documented(node):
                counts[f"documented_{kind}"] += 1
            if not isinstance(node, ast.ClassDef):
                complexities.append(
                    {"file": rel, "name": name, "line": node.lineno, "complexity": function_complexity(node)}
                )
    scored = counts["functions"] + counts["classes"]
    documented = counts["documented_functions"] + counts["documented_classes"]
    values = [c["complexity"] for c in complexities]
    complexities.sort(key=lambda c: (-c["complexity"], c["file"], c["line"]))
    return {
        "path": os.fspath(Path(path).resolve()),
        "files": files,
        **totals,
        **counts,
        "docstring_ratio": round(documented / scored, 4) if scored else None,
        "average_complexity": round(sum(values) / len(values), 2) if values else None,
        "max_complexity": max(values) if values else None,
        "most_complex": complexities[:TOP_COMPLEX],
        "errors": errors,
        "truncated": found.truncated,
    }
