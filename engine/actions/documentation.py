"""``documentation`` actions: Markdown API documentation generated from Python source
with ``ast`` (nothing is imported or executed)."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.actions._common import (
    DEFAULT_EXCLUDE,
    MAX_FILE_BYTES,
    discover,
    parse_python,
    positive_int,
    write_text_atomic,
)

__all__ = ["MAX_UNDOCUMENTED", "generate_docs"]

MAX_UNDOCUMENTED = 500
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
_Def = ast.FunctionDef | ast.AsyncFunctionDef


def _fenced(text: str, lang: str = "") -> str:
    """``text`` in a code fence longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _signature(node: _Def | ast.ClassDef) -> str:
    lines = [f"@{ast.unparse(d)}" for d in node.decorator_list]
    if isinstance(node, ast.ClassDef):
        bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
        lines.append(f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}")
    else:
        prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
        lines.append(f"{prefix} {node.name}({ast.unparse(node.args)}){returns}")
    return "\n".join(lines)


def _docstring(node: ast.Module | _Def | ast.ClassDef) -> str | None:
    doc = ast.get_docstring(node)
    return doc if doc and doc.strip() else None


def module_name(rel: str, package: str) -> str:
    """The dotted module name of the file at ``rel``: ``sub/mod.py`` -> ``sub.mod``,
    ``sub/__init__.py`` -> ``sub``, prefixed with ``package.`` when the source directory is
    itself a package (``package`` is then its name, else ``""``). A root ``__init__.py``
    is the package itself."""
    parts = list(Path(rel).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    if package:
        parts.insert(0, package)
    return ".".join(parts) or Path(rel).stem


class _ModuleDoc:
    """The Markdown page of one module, with its counts."""

    def __init__(self, name: str, rel: str, tree: ast.Module) -> None:
        self.name = name
        self.classes = 0
        self.functions = 0
        self.undocumented: list[str] = []
        doc = _docstring(tree)
        self.summary = doc.strip().splitlines()[0] if doc else ""
        if doc is None:
            self.undocumented.append(name)
        self.lines = [
            f"# `{name}`",
            "",
            f"Source: `{rel}`",
            "",
            _fenced(doc, "text") if doc else "*No module docstring.*",
        ]
        self._members(tree.body, name, "", 2)

    def _members(self, body: Sequence[ast.stmt], module: str, prefix: str, level: int) -> None:
        for node in body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            qualname = prefix + node.name
            doc = _docstring(node)
            if isinstance(node, ast.ClassDef):
                self.classes += 1
                heading = f"class `{qualname}`"
            else:
                self.functions += 1
                heading = f"`{qualname}`"
            if doc is None:
                self.undocumented.append(f"{module}.{qualname}")
            self.lines += ["", f"{'#' * min(level, 6)} {heading}", "", _fenced(_signature(node), "python"), ""]
            self.lines.append(_fenced(doc, "text") if doc else "*Undocumented.*")
            if isinstance(node, ast.ClassDef):
                self._members(node.body, module, qualname + ".", level + 1)

    def markdown(self) -> str:
        return "\n".join(self.lines) + "\n"


def _file_name(module: str, used: set[str]) -> str:
    base = _UNSAFE_NAME.sub("_", module)
    name, n = f"{base}.md", 1
    while name in used:
        n += 1
        name = f"{base}-{n}.md"
    used.add(name)
    return name


def generate_docs(
    source_path: str = ".",
    output_path: str = "./docs_out",
    title: str | None = None,
    max_files: int = 5000,
) -> dict[str, Any]:
    """Write Markdown API docs for the Python files under ``source_path``.

    Files are found as ``static_analysis.analyze_code_quality`` finds them (``*.py``,
    default excludes). Per module: its docstring, then every class and function at module
    level and every method and nested class of a class (not functions nested in
    functions), each with its signature (decorators included) and docstring. Docstrings
    are shown verbatim in ``text`` code fences.

    Parameters:
        source_path: a Python file or a directory.
        output_path: the directory to write into (created). Files written earlier and not
            rewritten now are left alone.
        title: the heading of ``index.md``; default ``API documentation: <source dir name>``.
        max_files: at most this many source files (``truncated`` is then true).

    Writes ``index.md`` (always; with no Python files it says so) and one ``<module>.md``
    per parsed module (``pkg.sub.mod.md``; a clash gets ``-2``, ``-3``...). Module names
    are dotted paths relative to ``source_path``, prefixed with its name when it is a
    package itself (has an ``__init__.py``).

    Returns::

        {
          "output_path": str,             # resolved
          "files_written": [str, ...],    # names inside output_path, index.md first
          "modules": int, "classes": int, "functions": int,   # functions include methods
          "undocumented": [str, ...],     # dotted names without a docstring: modules,
                                          # classes, functions (first 500)
          "undocumented_total": int,
          "errors": [{"file": str, "error": str}, ...],      # not parsed, not documented
          "truncated": bool,
        }

    Raises FileNotFoundError when ``source_path`` does not exist.
    """
    if title is not None and not isinstance(title, str):
        raise ValueError(f"title must be a string, got {title!r}")
    if not isinstance(output_path, str | os.PathLike):
        raise ValueError(f"output_path must be a string, got {output_path!r}")
    found = discover(source_path, ("*.py",), DEFAULT_EXCLUDE, positive_int(max_files, "max_files"))
    source = Path(source_path).resolve()
    root_name = source.stem if source.is_file() else source.name
    if source.is_dir():
        package = source.name if (source / "__init__.py").is_file() else ""
    else:
        package = source.parent.name if source.name == "__init__.py" else ""
    out = Path(output_path).resolve()
    pages: list[tuple[str, _ModuleDoc]] = []
    errors: list[dict[str, str]] = []
    used = {"index.md"}
    for file in found.files:
        rel = found.rel(file)
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                errors.append({"file": rel, "error": f"larger than {MAX_FILE_BYTES} bytes; not parsed"})
                continue
            tree = parse_python(file.read_bytes(), rel)
            page = _ModuleDoc(module_name(rel, package), rel, tree)  # ast.unparse recurses
        except (OSError, SyntaxError, ValueError, RecursionError) as e:
            errors.append({"file": rel, "error": f"{type(e).__name__}: {e}"})
            continue
        pages.append((_file_name(page.name, used), page))
    classes = sum(p.classes for _, p in pages)
    functions = sum(p.functions for _, p in pages)
    heading = " ".join(title.split()) if title is not None else f"API documentation: {root_name}"
    index = [f"# {heading}", "", f"Generated from `{source}`."]
    if pages:
        index.append(f"{len(pages)} modules, {classes} classes, {functions} functions.")
        index.append("")
        for fname, page in pages:
            index.append(f"- [`{page.name}`]({fname})" + (f": {page.summary}" if page.summary else ""))
    elif not found.files:
        index += ["", f"No Python files were found under `{source}`."]
    else:
        index += ["", "No module could be documented."]
    if errors:
        index += ["", "Not documented (could not be parsed):", ""]
        index += [f"- `{e['file']}`: {e['error']}" for e in errors]
    written = ["index.md"]
    write_text_atomic(out / "index.md", "\n".join(index) + "\n")
    for fname, page in pages:
        write_text_atomic(out / fname, page.markdown())
        written.append(fname)
    undocumented = [name for _, page in pages for name in page.undocumented]
    return {
        "output_path": os.fspath(out),
        "files_written": written,
        "modules": len(pages),
        "classes": classes,
        "functions": functions,
        "undocumented": undocumented[:MAX_UNDOCUMENTED],
        "undocumented_total": len(undocumented),
        "errors": errors,
        "truncated": found.truncated,
    }
