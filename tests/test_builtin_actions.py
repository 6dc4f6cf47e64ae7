"""The built-in actions (``engine.actions``) on small fixture trees written here, with
exact numbers, plus a sanity run on this repository's own ``engine/`` package."""

from __future__ import annotations

import ast
import inspect
import platform
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.errors import DuplicateIdError, UnknownActionError
from engine.actions import register_builtin_actions
from engine.actions.data_visualization import create_analysis_chart, create_bar_chart
from engine.actions.documentation import generate_docs
from engine.actions.environment_setup import check_environment
from engine.actions.security_audit import mask_line, scan_codebase
from engine.actions.shell import run
from engine.actions.static_analysis import analyze_code_quality, function_complexity
from engine.codec import json_problem
from engine.registry import ActionRegistry
from engine.task_orchestrator import TaskOrchestrator

REPO = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
# Secret-looking fixture values are assembled at run time, so scanning this file finds none.
PRIVATE_KEY_HEADER = "-" * 5 + "BEGIN RSA " + "PRIVATE KEY" + "-" * 5
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
PASSWORD = "hunter2" * 2
DB_PASSWORD = "s3cr3t-" + "Pa55word"
ENV_KEY = "abcd1234" + "efgh5678"
SECRET_KEY = "zz9-plu" + "ral-z-alpha"


def assert_json(result: Any) -> Any:
    """``result`` is plain JSON data: no NaN/infinity/bytes, and it survives a round trip."""
    assert json_problem(result) is None
    encoded = msgspec.json.encode(result)
    assert b"NaN" not in encoded and b"Infinity" not in encoded
    assert msgspec.json.decode(encoded) == result
    return result


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


# 19 lines: 5 blank (2, 4, 5, 12, 13), 1 comment (6), 13 code.
# documented: 1 + if + `and` + comprehension for + comprehension if = 5; undocumented: 1 + with + except = 3.
A_PY = '''"""Module a."""

import os  # a trailing comment: still a code line


# a comment line
def documented(x):
    """Doubles x."""
    if x > 0 and x < 10:
        return [i for i in range(x) if i % 2]
    return x * 2


def undocumented(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return os.sep
'''

# 15 lines: 3 blank (6, 9, 10), 1 comment (13), 11 code (the docstring's blank and "#" lines are
# inside the string). Thing.method: 1 + conditional expression = 2.
B_PY = '''class Thing:
    """A thing.

    # not a comment: inside the docstring
    """

    def method(self):
        return 1 if self else 2


MESSAGE = (
    "part one "
    # a comment between the parts of one string
    "part two"
)
'''


@pytest.fixture
def code_tree(tmp_path: Path) -> Path:
    return write(
        tmp_path / "project",
        {
            "a.py": A_PY,
            "pkg/b.py": B_PY,
            "broken.py": "def broken(:\n    pass\n",
            "notes.txt": "not python\n",
            ".venv/lib.py": "def hidden():\n    pass\n",
            "node_modules/dep.py": "def hidden():\n    pass\n",
            "pkg/__pycache__/b.py": "def hidden():\n    pass\n",
        },
    )


# -- static_analysis ---------------------------------------------------------------------


def test_analyze_code_quality_exact_numbers(code_tree: Path) -> None:
    result = assert_json(analyze_code_quality(str(code_tree)))
    assert result["path"] == str(code_tree.resolve())
    assert result["files"] == 2
    assert (result["lines"], result["code_lines"], result["blank_lines"], result["comment_lines"]) == (34, 24, 8, 2)
    assert (result["functions"], result["documented_functions"]) == (3, 1)
    assert (result["classes"], result["documented_classes"]) == (1, 1)
    assert result["docstring_ratio"] == 0.5
    assert result["average_complexity"] == round(10 / 3, 2)
    assert result["max_complexity"] == 5
    assert result["most_complex"] == [
        {"file": "a.py", "name": "documented", "line": 7, "complexity": 5},
        {"file": "a.py", "name": "undocumented", "line": 14, "complexity": 3},
        {"file": "pkg/b.py", "name": "Thing.method", "line": 7, "complexity": 2},
    ]
    assert [e["file"] for e in result["errors"]] == ["broken.py"]
    assert result["errors"][0]["error"].startswith("SyntaxError")
    assert result["truncated"] is False


def test_analyze_one_file_two_functions_one_documented(code_tree: Path) -> None:
    result = assert_json(analyze_code_quality(str(code_tree / "a.py")))
    assert (result["files"], result["functions"], result["documented_functions"], result["classes"]) == (1, 2, 1, 0)
    assert (result["lines"], result["code_lines"], result["blank_lines"], result["comment_lines"]) == (19, 13, 5, 1)
    assert {c["file"] for c in result["most_complex"]} == {"a.py"}


def test_analyze_include_exclude_and_max_files(code_tree: Path) -> None:
    only_b = analyze_code_quality(str(code_tree), exclude=["a.py", "broken.py", "__pycache__", ".venv", "node_*"])
    assert (only_b["files"], only_b["functions"], only_b["errors"]) == (1, 1, [])  # exclude replaces the defaults
    with_venv = analyze_code_quality(str(code_tree), exclude=[])
    assert with_venv["files"] == 5  # .venv, node_modules and __pycache__ are measured too
    capped = analyze_code_quality(str(code_tree), max_files=1)
    assert (capped["files"], capped["truncated"]) == (1, True)
    nothing = assert_json(analyze_code_quality(str(code_tree), include="*.pyx"))
    assert nothing["files"] == 0
    assert (nothing["average_complexity"], nothing["max_complexity"], nothing["docstring_ratio"]) == (None, None, None)


def test_analyze_missing_path_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        analyze_code_quality(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="max_files"):
        analyze_code_quality(str(tmp_path), max_files=0)
    with pytest.raises(ValueError, match="include"):
        analyze_code_quality(str(tmp_path), include=[1])  # type: ignore[list-item]


def test_a_compile_time_warning_is_not_a_parse_error(tmp_path: Path) -> None:
    # "\d" is an invalid escape sequence: Python warns while parsing, and pytest turns
    # warnings into errors here; the file must still be measured.
    write(tmp_path, {"re_user.py": 'PATTERN = "\\d+"\n'})
    result = analyze_code_quality(str(tmp_path))
    assert (result["files"], result["errors"]) == (1, [])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    return 1\n", 1),
        ("def f(x):\n    while x:\n        x -= 1\n    else:\n        pass\n", 2),
        ("def f(a, b, c):\n    return a and b or c\n", 3),
        ("def f(x):\n    match x:\n        case 1:\n            pass\n        case _:\n            pass\n", 3),
        ("def f(xs):\n    return {k: v for k in xs for v in k if v if k}\n", 5),
        ("def f(x):\n    g = lambda y: y if y else x\n    return g\n", 2),
        ("def f(x):\n    def inner():\n        if x:\n            pass\n    return inner\n", 1),
        ("async def f(x):\n    async with x:\n        async for i in x:\n            pass\n", 3),
    ],
)
def test_complexity_rule(source: str, expected: int) -> None:
    fn = ast.parse(source).body[0]
    assert isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
    assert function_complexity(fn) == expected


# -- security_audit ----------------------------------------------------------------------

APP_PY = """import os
import pickle
import subprocess
import yaml
from os import system as run_shell


def handler(model, x, c, blob, text):
    eval(x)
    subprocess.run(c, shell=True)
    subprocess.run(["ls"], shell=False)
    os.popen(c)
    run_shell(c)
    pickle.loads(blob)
    yaml.load(text)
    yaml.load(text, Loader=yaml.SafeLoader)
    model.eval()


password = "{PASSWORD}"
token_type = "bearer-token-type"
api_key = "${API_KEY_FROM_ENV}"
pattern_token = r"[a-z]+[0-9]+"
""".replace("{PASSWORD}", PASSWORD)


@pytest.fixture
def audit_tree(tmp_path: Path) -> Path:
    return write(
        tmp_path / "audit",
        {
            "app.py": APP_PY,
            "config.json": '{\n  "db": {"password": "' + DB_PASSWORD + '"},\n  "aws": "' + AWS_KEY + '"\n}\n',
            ".env": f"DEBUG=true\nAPI_KEY={ENV_KEY}\n",
            "keys/key.txt": PRIVATE_KEY_HEADER + "\nMIIEowIBAAKCAQEA\n",
            "blob.json": b'{"a": "\x00"}',
            "node_modules/dep.py": "eval('1')\n",
        },
    )


def test_scan_codebase_findings_and_masking(audit_tree: Path) -> None:
    result = assert_json(scan_codebase(str(audit_tree)))
    found = [(f["file"], f["line"], f["rule"], f["severity"], f["snippet"]) for f in result["findings"]]
    assert found == [
        (".env", 2, "hardcoded-secret", "high", "API_KEY=********"),
        ("app.py", 9, "python-eval", "high", "eval(x)"),
        ("app.py", 10, "shell-true", "high", "subprocess.run(c, shell=True)"),
        ("app.py", 12, "os-popen", "high", "os.popen(c)"),
        ("app.py", 13, "os-system", "high", "run_shell(c)"),
        ("app.py", 14, "pickle-load", "medium", "pickle.loads(blob)"),
        ("app.py", 15, "yaml-unsafe-load", "medium", "yaml.load(text)"),
        ("app.py", 20, "hardcoded-secret", "high", 'password = "********"'),
        ("config.json", 2, "hardcoded-secret", "high", '"db": {"password": "********"},'),
        ("config.json", 3, "aws-access-key-id", "high", '"aws": "AKIA****************"'),
        ("keys/key.txt", 1, "private-key", "high", PRIVATE_KEY_HEADER),
    ]
    assert result["counts_by_severity"] == {"high": 9, "medium": 2, "low": 0}
    assert result["findings_total"] == 11
    assert result["files_scanned"] == 4
    assert result["skipped"] == [{"file": "blob.json", "reason": "binary (contains NUL bytes)"}]
    assert (result["errors"], result["truncated"], result["ok"]) == ([], False, False)
    encoded = msgspec.json.encode(result)
    for secret in (PASSWORD, DB_PASSWORD, ENV_KEY, AWS_KEY, "MIIEow"):
        assert secret.encode() not in encoded


def test_scan_clean_tree_is_ok(tmp_path: Path) -> None:
    write(tmp_path, {"ok.py": "import subprocess\n\nsubprocess.run(['ls'], check=True)\n", "broken.py": "eval(\n"})
    result = assert_json(scan_codebase(str(tmp_path)))
    assert (result["findings"], result["ok"], result["files_scanned"]) == ([], True, 2)
    assert [e["file"] for e in result["errors"]] == ["broken.py"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_codebase(str(tmp_path / "missing"))


def test_mask_line_masks_every_secret_on_the_line() -> None:
    line = f'connect(password="{PASSWORD}", secret_key="{SECRET_KEY}", key_id="{AWS_KEY}")'
    assert mask_line(line) == 'connect(password="********", secret_key="********", key_id="AKIA****************")'
    assert mask_line(PRIVATE_KEY_HEADER + "\\nMIIEowIBAAKCAQEA") == PRIVATE_KEY_HEADER + "********"
    assert mask_line('password_prompt = "Enter-your-password"') == 'password_prompt = "Enter-your-password"'


# -- data_visualization ------------------------------------------------------------------


def svg_rects(path: str) -> list[ET.Element]:
    root = ET.parse(path).getroot()  # raises unless well-formed
    assert root.tag == f"{SVG}svg"
    return list(root.iter(f"{SVG}rect"))


def test_bar_chart_writes_a_well_formed_svg(tmp_path: Path) -> None:
    result = assert_json(create_bar_chart({"A": 10, "B": 20, "C": 15}, "Sample Data", base_dir=str(tmp_path)))
    path = Path(result["path"])
    assert path.parent == (tmp_path / "charts").resolve() and path.name.startswith("sample-data-")
    assert (result["bars"], result["title"], result["max_value"]) == (3, "Sample Data", 20)
    assert result["bytes"] == path.stat().st_size
    rects = svg_rects(result["path"])
    assert len(rects) == 3
    heights = [float(r.attrib["height"]) for r in rects]
    assert heights[1] == max(heights) and heights[0] == pytest.approx(heights[1] / 2)
    assert [r.findtext(f"{SVG}title") for r in rects] == ["A: 10", "B: 20", "C: 15"]
    again = create_bar_chart({"A": 10, "B": 20, "C": 15}, "Sample Data", base_dir=str(tmp_path))
    assert again["path"] == result["path"]  # same chart, same name


def test_bar_chart_pairs_escaping_negative_values_and_output_path(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "chart.svg"
    data = [["<b>&\"'", 1.5], ["x\x01y", -2], ["<b>&\"'", 3]]
    result = assert_json(create_bar_chart(data, title="T <&>", output_path=str(target)))
    assert (result["path"], result["bars"], result["max_value"]) == (str(target.resolve()), 3, 3)
    rects = svg_rects(result["path"])
    assert len(rects) == 3
    assert rects[0].findtext(f"{SVG}title") == "<b>&\"': 1.5"
    assert rects[1].findtext(f"{SVG}title") == "x\ufffdy: -2"
    texts = [t.text for t in ET.parse(target).getroot().iter(f"{SVG}text")]
    assert "T <&>" in texts
    into_dir = create_bar_chart({"a": 1}, output_path=str(tmp_path / "deep"))
    assert Path(into_dir["path"]).parent == (tmp_path / "deep").resolve()
    assert Path(into_dir["path"]).name.startswith("chart-")


def test_bar_chart_default_directory_is_the_cwd_orchestration_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = create_bar_chart({"a": 1})
    assert Path(result["path"]).parent == (tmp_path / ".orchestration" / "charts").resolve()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"A": 1, "B": "two"}, "label 'B'"),
        ({"A": True}, "label 'A'"),
        ({"A": float("nan")}, "label 'A'"),
        ([["A", None]], "label 'A'"),
        ({}, "empty"),
        ([["A"]], r"data\[0\]"),
        ("A=1", "dict"),
    ],
)
def test_bar_chart_refuses_bad_data(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_bar_chart(data, base_dir=str(tmp_path))


def test_analysis_chart_charts_numeric_top_level_values(code_tree: Path, tmp_path: Path) -> None:
    analysis = analyze_code_quality(str(code_tree))
    result = assert_json(create_analysis_chart(analysis, output_path=str(tmp_path / "analysis.svg")))
    assert result["labels"] == [
        "files",
        "lines",
        "code_lines",
        "blank_lines",
        "comment_lines",
        "functions",
        "classes",
        "documented_functions",
        "documented_classes",
        "docstring_ratio",
        "average_complexity",
        "max_complexity",
    ]
    assert result["skipped"] == ["path", "most_complex", "errors", "truncated"]
    assert (result["bars"], result["max_value"], result["title"]) == (12, 34, "Code analysis")
    assert len(svg_rects(result["path"])) == 12
    with pytest.raises(ValueError, match="no numeric top-level values"):
        create_analysis_chart({"a": "x", "b": True, "c": [1]}, base_dir=str(tmp_path))
    with pytest.raises(ValueError, match="must be a dict"):
        create_analysis_chart([1, 2], base_dir=str(tmp_path))  # type: ignore[arg-type]


# -- documentation -----------------------------------------------------------------------

MOD_PY = '''"""Geometry helpers.

More words.
"""


def area(width: float, height: float = 1.0) -> float:
    """The area of a rectangle.

    Example: ```area(2)``` is 2.0.
    """
    return width * height


async def helper(*args, **kwargs):
    return args


@dataclass
class Widget(Base, metaclass=Meta):
    """A widget."""

    def run(self) -> None:
        pass
'''


def test_generate_docs_writes_markdown_and_counts(tmp_path: Path) -> None:
    src = write(
        tmp_path / "src",
        {"pkg/__init__.py": '"""The package."""\n', "pkg/mod.py": MOD_PY, "bad.py": "class (:\n"},
    )
    out = tmp_path / "out"
    result = assert_json(generate_docs(str(src), str(out)))
    assert result["output_path"] == str(out.resolve())
    assert result["files_written"] == ["index.md", "pkg.md", "pkg.mod.md"]
    assert (result["modules"], result["classes"], result["functions"]) == (2, 1, 3)
    assert result["undocumented"] == ["pkg.mod.helper", "pkg.mod.Widget.run"]
    assert result["undocumented_total"] == 2
    assert [e["file"] for e in result["errors"]] == ["bad.py"]
    page = (out / "pkg.mod.md").read_text()
    assert page.startswith("# `pkg.mod`\n")
    assert "def area(width: float, height: float=1.0) -> float" in page
    assert "async def helper(*args, **kwargs)" in page
    assert "@dataclass\nclass Widget(Base, metaclass=Meta)" in page
    assert "````text\nThe area of a rectangle." in page  # the fence outgrows the docstring's ```
    index = (out / "index.md").read_text()
    assert index.startswith(f"# API documentation: src\n\nGenerated from `{src.resolve()}`.\n2 modules, 1 classes")
    assert "- [`pkg.mod`](pkg.mod.md): Geometry helpers." in index
    assert "`bad.py`" in index


def test_generate_docs_on_markdown_only_output_writes_an_empty_index(tmp_path: Path) -> None:
    """The upstream sample workflow documents ./output, written by its previous step."""
    write(tmp_path / "src", {"m.py": "def f():\n    pass\n"})
    first = generate_docs(str(tmp_path / "src"), str(tmp_path / "output"))
    assert first["modules"] == 1
    second = assert_json(generate_docs(str(tmp_path / "output"), str(tmp_path / "final"), title="Final report"))
    assert second["files_written"] == ["index.md"]
    assert (second["modules"], second["classes"], second["functions"], second["undocumented"]) == (0, 0, 0, [])
    index = (tmp_path / "final" / "index.md").read_text()
    assert index.startswith("# Final report\n")
    assert "No Python files were found" in index
    with pytest.raises(FileNotFoundError, match="does not exist"):
        generate_docs(str(tmp_path / "missing"), str(tmp_path / "x"))


def test_generate_docs_names_modules_of_a_package_source(tmp_path: Path) -> None:
    src = write(tmp_path / "mypkg", {"__init__.py": "", "core.py": '"""Core."""\n'})
    result = generate_docs(str(src), str(tmp_path / "out"))
    assert result["files_written"] == ["index.md", "mypkg.md", "mypkg.core.md"]
    assert result["undocumented"] == ["mypkg"]


# -- environment_setup -------------------------------------------------------------------


def test_check_environment_reports_the_real_machine() -> None:
    result = assert_json(check_environment())
    assert result["python"]["version"] == platform.python_version()
    assert result["python"]["executable"] == sys.executable
    assert result["cpu"]["logical"] >= 1
    assert result["memory"]["total"] >= result["memory"]["available"] > 0
    assert result["disk"]["total"] >= result["disk"]["free"] > 0
    names = [c["name"] for c in result["checks"]]
    assert names == [
        "python>=3.11",
        "import eventsourcing",
        "import transitions",
        "import msgspec",
        "import psutil",
        "cwd writable",
    ]
    assert result["checks"][3]["detail"] == msgspec.__version__
    assert result["ok"] is all(c["ok"] for c in result["checks"])


def test_check_environment_reports_a_missing_package() -> None:
    result = assert_json(check_environment(packages=["no_such_module_for_codomyrmex"]))
    failed = result["checks"][1]
    assert (failed["name"], failed["ok"]) == ("import no_such_module_for_codomyrmex", False)
    assert failed["detail"].startswith("ModuleNotFoundError")
    assert result["ok"] is False


# -- shell -------------------------------------------------------------------------------


def test_shell_run_captures_output_and_returns_a_failure(tmp_path: Path) -> None:
    code = "import os, sys; print(os.getcwd()); print(os.environ['CODOMYRMEX_X'], file=sys.stderr); sys.exit(3)"
    result = assert_json(run([sys.executable, "-c", code], cwd=str(tmp_path), env={"CODOMYRMEX_X": "42"}))
    assert (result["returncode"], result["ok"]) == (3, False)
    assert (result["stdout"], result["stderr"]) == (f"{tmp_path}\n", "42\n")
    assert result["duration"] > 0
    ok = run([sys.executable, "-c", "print('a; echo b')"])
    assert (ok["ok"], ok["stdout"]) == (True, "a; echo b\n")  # no shell: ';' is just text


@pytest.mark.parametrize("argv", ["echo hi", [], ["echo", 1], None])
def test_shell_run_refuses_anything_but_an_argv_list(argv: Any) -> None:
    with pytest.raises(ValueError, match="argv"):
        run(argv)


def test_shell_run_timeout_raises() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run([sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.3)


# -- registration ------------------------------------------------------------------------

BUILTINS = [
    ("environment_setup", "check_environment"),
    ("static_analysis", "analyze_code_quality"),
    ("data_visualization", "create_bar_chart"),
    ("data_visualization", "create_analysis_chart"),
    ("documentation", "generate_docs"),
    ("security_audit", "scan_codebase"),
]


def test_register_builtin_actions_without_shell(tmp_path: Path) -> None:
    registry = ActionRegistry()
    assert register_builtin_actions(registry, base_dir=str(tmp_path)) == BUILTINS
    assert all(pair in registry for pair in BUILTINS)
    assert ("shell", "run") not in registry
    with pytest.raises(UnknownActionError):
        registry.resolve("shell", "run")
    with pytest.raises(UnknownActionError, match="ai_code_editing"):
        registry.resolve("ai_code_editing", "generate_code_insights")
    assert "ai_code_editing" not in registry.names()
    # the same arguments again are harmless; another base_dir is a conflict
    assert register_builtin_actions(registry, base_dir=str(tmp_path)) == BUILTINS
    with pytest.raises(DuplicateIdError):
        register_builtin_actions(registry, base_dir=str(tmp_path / "other"))


def test_register_builtin_actions_with_shell_and_bound_base_dir(tmp_path: Path) -> None:
    registry = ActionRegistry()
    assert register_builtin_actions(registry, enable_shell=True, base_dir=str(tmp_path)) == [
        *BUILTINS,
        ("shell", "run"),
    ]
    assert registry.resolve("shell", "run").fn is run
    chart = registry.resolve("data_visualization", "create_bar_chart").fn
    assert "base_dir" not in inspect.signature(chart).parameters
    result = chart(data={"x": 1}, title="Bound")
    assert Path(result["path"]).parent == (tmp_path / "charts").resolve()


def test_builtin_actions_run_in_the_orchestrator(code_tree: Path, tmp_path: Path) -> None:
    registry = ActionRegistry()
    register_builtin_actions(registry, base_dir=str(tmp_path / "data"))
    orchestrator = TaskOrchestrator(max_workers=2, store="memory://", registry=registry)
    try:
        analyze = orchestrator.create_task(
            "analyze", "static_analysis", "analyze_code_quality", parameters={"path": str(code_tree)}
        )
        scan = orchestrator.create_task("scan", "security_audit", "scan_codebase", parameters={"path": str(code_tree)})
        insights = orchestrator.create_task("insights", "ai_code_editing", "generate_code_insights", max_retries=0)
        orchestrator.start_execution()
        assert orchestrator.wait_for_completion(timeout=30)
        analyzed = orchestrator.get_task_result(analyze.id)
        assert analyzed is not None and analyzed.success and analyzed.data["functions"] == 3
        scanned = orchestrator.get_task_result(scan.id)
        assert scanned is not None and scanned.success and scanned.data["ok"] is True
        failed = orchestrator.get_task_result(insights.id)
        assert failed is not None and not failed.success and failed.error_type == "UnknownActionError"
    finally:
        orchestrator.close()


# -- this repository ---------------------------------------------------------------------


def test_this_repository_engine_package() -> None:
    analysis = assert_json(analyze_code_quality(str(REPO / "engine")))
    assert analysis["files"] > 5
    assert analysis["errors"] == []
    assert analysis["functions"] > 20
    scan = assert_json(scan_codebase(str(REPO / "engine")))
    assert scan["files_scanned"] > 5
    assert scan["errors"] == []
    assert [f for f in scan["findings"] if f["file"].startswith("actions/")] == []
