"""``security_audit`` actions: a static scan for dangerous calls and hard-coded secrets.

Python files are parsed with ``ast`` (never imported or run). Import aliases are
followed (``import subprocess as sp``, ``from os import system``). Rules:

=====================  ========  ======================================================
rule                   severity  what
=====================  ========  ======================================================
``python-eval``        high      a call of ``eval``
``python-exec``        high      a call of ``exec``
``shell-true``         high      any call with a literal true ``shell=`` keyword
                                 (``subprocess.run(cmd, shell=True)``, ``Popen``...)
``os-system``          high      ``os.system(...)`` (always runs a shell)
``os-popen``           high      ``os.popen(...)`` (always runs a shell)
``subprocess-shell``   high      ``subprocess.getoutput``/``getstatusoutput`` (shell)
``pickle-load``        medium    ``pickle``/``cPickle``/``_pickle``/``dill`` ``load``/``loads``
``yaml-unsafe-load``   medium    ``yaml.load``/``load_all`` without a ``SafeLoader``,
                                 ``CSafeLoader`` or ``BaseLoader``; ``yaml.unsafe_load*``
``aws-access-key-id``  high      ``AKIA``/``ASIA`` followed by 16 upper-case letters/digits
``private-key``        high      a ``-----BEGIN ... PRIVATE KEY-----`` line
``hardcoded-secret``   high      an assignment, keyword argument or mapping entry whose
                                 key names a secret and whose value is a plain quoted
                                 literal of 8+ characters without spaces
=====================  ========  ======================================================

One finding per rule and line. The three text rules run on every line of every scanned
file: ``*.py``, ``*.json``, ``*.yaml``, ``*.yml``, ``*.toml``, ``*.ini``, ``*.cfg``,
``*.env``, ``.env*``, ``*.txt``.

What counts as a hard-coded secret (heuristics: they catch the obvious cases, not all):

- the key's last word (split at ``_ . -`` and camelCase) is ``password``, ``passwd``,
  ``pwd``, ``secret``, ``token``, ``passphrase`` or ``apikey`` (or their plural), or its
  last two words are ``api_key``, ``access_key``, ``private_key``, ``secret_key`` or
  ``auth_key``: ``db_password``, ``apiKey``, ``GITHUB_TOKEN``, ``aws_secret_access_key``;
  not ``password_prompt`` or ``token_type``;
- the value is not a raw or f-string (``r"..."``, ``f"..."``: patterns and computed text),
  and not a placeholder: it starts with ``$``, ``{``, ``<`` or ``%``, uses at most two
  distinct characters (``********``) or looks like an environment variable name
  (``GITHUB_TOKEN``);
- in ``.env*``, ``.ini``, ``.cfg``, ``.yaml`` and ``.yml`` files the value may also be
  unquoted (``API_KEY=abcd1234efgh``, ``password: hunter2hunter2``).

Snippets are the stripped source line (at most 160 characters) with every secret value
on it masked: a secret becomes ``********``, an AWS key keeps its four-letter prefix, a
private key line keeps its ``BEGIN`` header.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
from pathlib import Path
from typing import Any

from engine.actions._common import DEFAULT_EXCLUDE, MAX_FILE_BYTES, discover, parse_python, positive_int

__all__ = ["MAX_FINDINGS", "SCANNED_FILES", "mask_line", "scan_codebase"]

MAX_FINDINGS = 1000
SNIPPET_CHARS = 160
SCANNED_FILES: tuple[str, ...] = (
    "*.py",
    "*.json",
    "*.yaml",
    "*.yml",
    "*.toml",
    "*.ini",
    "*.cfg",
    "*.env",
    ".env*",
    "*.txt",
)
_UNQUOTED_OK = ("*.env", ".env*", "*.ini", "*.cfg", "*.yaml", "*.yml")
SEVERITIES = ("high", "medium", "low")
MASK = "********"

_DASHES = "-" * 5  # spelled out so this file does not match its own pattern
_PRIVATE_KEY = re.compile(_DASHES + r"BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?" + _DASHES + "(.*)")
_AWS_KEY = re.compile(r"\b((?:AKIA|ASIA))([0-9A-Z]{16})\b")
_QUOTED = re.compile(
    r"(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)[\"']?"
    r"(?:\s*:\s*[A-Za-z_][\w.\[\], |]*?)?"  # a Python annotation: password: str = "..."
    r"\s*(?::=|=|:)\s*(?P<prefix>[rRbBuUfF]{0,2})(?P<q>[\"'])(?P<value>[^\s\"']{8,})(?P=q)"
)
_UNQUOTED = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)\s*(?:=|:)\s*(?P<value>[^\s\"'#;]{8,})\s*(?:[#;].*)?$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_WORDS = frozenset({"password", "passwd", "pwd", "secret", "token", "passphrase", "apikey"})
_SECRET_WORDS |= {w + "s" for w in _SECRET_WORDS}
_KEY_HINTS = ("pass", "pwd", "secret", "token", "key")  # every secret key contains one of these
_SECRET_PAIRS = ("api_key", "access_key", "private_key", "secret_key", "auth_key")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*_[A-Z0-9_]+")

_SHELL_HELPERS = {"os.system": "os-system", "os.popen": "os-popen"}
_SHELL_HELPERS |= dict.fromkeys(("subprocess.getoutput", "subprocess.getstatusoutput"), "subprocess-shell")
_PICKLE = {f"{m}.{f}" for m in ("pickle", "cPickle", "_pickle", "dill") for f in ("load", "loads")}
_SAFE_LOADERS = ("SafeLoader", "CSafeLoader", "BaseLoader")


def _secret_key(key: str) -> bool:
    words = [w for w in re.split(r"[_.\-]+", _CAMEL.sub("_", key).lower()) if w]
    if not words:
        return False
    return words[-1] in _SECRET_WORDS or "_".join(words[-2:]) in _SECRET_PAIRS


def _placeholder(value: str) -> bool:
    return value[0] in "${<%" or len(set(value)) <= 2 or bool(_ENV_NAME.fullmatch(value))


def _secrets(line: str, unquoted: bool) -> tuple[list[str], str]:
    """The secret rules matching ``line`` and the line with their values masked."""
    rules: list[str] = []

    def assignment(m: re.Match[str]) -> str:
        value = m.group("value")
        prefix = (m.groupdict().get("prefix") or "").lower()
        if "r" in prefix or "f" in prefix or not _secret_key(m.group("key")) or _placeholder(value):
            return m.group(0)
        rules.append("hardcoded-secret")
        start, end = m.start("value") - m.start(), m.end("value") - m.start()
        return m.group(0)[:start] + MASK + m.group(0)[end:]

    def aws(m: re.Match[str]) -> str:
        rules.append("aws-access-key-id")
        return m.group(1) + "*" * 16

    def private_key(m: re.Match[str]) -> str:
        rules.append("private-key")
        rest = m.group(2)
        return m.group(0)[: len(m.group(0)) - len(rest)] + (MASK if rest.strip() else rest)

    masked = line
    if "PRIVATE KEY" in masked:  # cheap filters first: most lines match none of the rules
        masked = _PRIVATE_KEY.sub(private_key, masked)
    if "AKIA" in masked or "ASIA" in masked:
        masked = _AWS_KEY.sub(aws, masked)
    lower = masked.lower()
    if any(hint in lower for hint in _KEY_HINTS):
        masked = _QUOTED.sub(assignment, masked)
        if unquoted:
            masked = _UNQUOTED.sub(assignment, masked)
    return rules, masked


def mask_line(line: str, unquoted: bool = False) -> str:
    """``line`` with every secret value the text rules find replaced."""
    return _secrets(line, unquoted)[1]


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _aliases(nodes: list[ast.AST]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _safe_yaml_loader(call: ast.Call, aliases: dict[str, str]) -> bool:
    loader: ast.expr | None = call.args[1] if len(call.args) > 1 else None
    for kw in call.keywords:
        if kw.arg == "Loader":
            loader = kw.value
    name = _dotted(loader, aliases) if loader is not None else None
    return name is not None and name.rsplit(".", 1)[-1] in _SAFE_LOADERS


def _call_rules(call: ast.Call, aliases: dict[str, str]) -> list[str]:
    rules: list[str] = []
    name = _dotted(call.func, aliases) or ""
    if name in ("eval", "builtins.eval"):
        rules.append("python-eval")
    elif name in ("exec", "builtins.exec"):
        rules.append("python-exec")
    elif name in _SHELL_HELPERS:
        rules.append(_SHELL_HELPERS[name])
    elif name in _PICKLE:
        rules.append("pickle-load")
    elif name in ("yaml.unsafe_load", "yaml.unsafe_load_all") or (
        name in ("yaml.load", "yaml.load_all") and not _safe_yaml_loader(call, aliases)
    ):
        rules.append("yaml-unsafe-load")
    for kw in call.keywords:
        if kw.arg == "shell" and isinstance(kw.value, ast.Constant) and kw.value.value:
            rules.append("shell-true")
    return rules


_SEVERITY = {
    "python-eval": "high",
    "python-exec": "high",
    "shell-true": "high",
    "os-system": "high",
    "os-popen": "high",
    "subprocess-shell": "high",
    "pickle-load": "medium",
    "yaml-unsafe-load": "medium",
    "aws-access-key-id": "high",
    "private-key": "high",
    "hardcoded-secret": "high",
}


def _scan_file(text: str, rel: str, tree: ast.Module | None, unquoted: bool) -> list[dict[str, Any]]:
    lines = _NEWLINE.split(text)  # only the line breaks ast counts (not str.splitlines's \f, \x1c...)
    hits: list[tuple[int, str]] = []
    if tree is not None:
        nodes = list(ast.walk(tree))
        aliases = _aliases([n for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)])
        for node in nodes:
            if isinstance(node, ast.Call):
                hits.extend((node.lineno, rule) for rule in _call_rules(node, aliases))
    for number, line in enumerate(lines, start=1):
        rules, _ = _secrets(line, unquoted)
        hits.extend((number, rule) for rule in rules)
    findings = []
    for number, rule in sorted(set(hits)):
        source = lines[number - 1] if number <= len(lines) else ""
        snippet = mask_line(source, unquoted).strip()
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[: SNIPPET_CHARS - 1] + "…"
        findings.append({"file": rel, "line": number, "rule": rule, "severity": _SEVERITY[rule], "snippet": snippet})
    return findings


def scan_codebase(path: str = ".", max_files: int = 5000) -> dict[str, Any]:
    """Scan the files under ``path`` for the rules in the module docstring.

    Parameters:
        path: a file or a directory (walked like ``analyze_code_quality``: default
            excludes such as ``.git``, ``.venv``, ``node_modules``, ``build``).
        max_files: at most this many files (``truncated`` is then true).

    Returns (file paths relative to ``path``)::

        {
          "path": str,                # resolved
          "files_scanned": int,
          "findings": [{"file": str, "line": int, "rule": str,
                        "severity": "high" | "medium" | "low", "snippet": str}, ...],
          "findings_total": int,      # findings holds the first 1000, by file and line
          "counts_by_severity": {"high": int, "medium": int, "low": int},  # of all findings
          "skipped": [{"file": str, "reason": str}, ...],   # binary, too large, unreadable
          "errors": [{"file": str, "error": str}, ...],     # .py files that did not parse
                                      # (their text rules still ran)
          "truncated": bool,
          "ok": bool,                 # no high and no medium finding
        }

    Raises FileNotFoundError when ``path`` does not exist.
    """
    found = discover(path, SCANNED_FILES, DEFAULT_EXCLUDE, positive_int(max_files, "max_files"))
    findings: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    errors: list[dict[str, str]] = []
    scanned = 0
    for file in found.files:
        rel = found.rel(file)
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                skipped.append({"file": rel, "reason": f"larger than {MAX_FILE_BYTES} bytes"})
                continue
            data = file.read_bytes()
        except OSError as e:
            skipped.append({"file": rel, "reason": f"{type(e).__name__}: {e}"})
            continue
        if b"\0" in data:
            skipped.append({"file": rel, "reason": "binary (contains NUL bytes)"})
            continue
        scanned += 1
        tree: ast.Module | None = None
        if file.suffix == ".py":
            try:
                tree = parse_python(data, rel)
            except (SyntaxError, ValueError, RecursionError) as e:
                errors.append({"file": rel, "error": f"{type(e).__name__}: {e}"})
        unquoted = any(fnmatch.fnmatchcase(file.name, p) for p in _UNQUOTED_OK)
        findings.extend(_scan_file(data.decode("utf-8", errors="replace"), rel, tree, unquoted))
    counts = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        counts[finding["severity"]] += 1
    return {
        "path": os.fspath(Path(path).resolve()),
        "files_scanned": scanned,
        "findings": findings[:MAX_FINDINGS],
        "findings_total": len(findings),
        "counts_by_severity": counts,
        "skipped": skipped,
        "errors": errors,
        "truncated": found.truncated,
        "ok": counts["high"] == 0 and counts["medium"] == 0,
    }
