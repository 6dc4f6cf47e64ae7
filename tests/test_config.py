"""engine.config: precedence, the config file, path resolution, bad input, describe().

Every test passes an explicit ``env={...}`` and runs in its own current directory, so
the real environment and the repository's files never leak in.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from domain.errors import ValidationError
from engine.config import (
    CONFIG_KEYS,
    OrchestrationConfig,
    data_dir,
    default_store_url,
    load_config,
    resolve_max_workers,
)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, resolved current directory."""
    work = (tmp_path / "cwd").resolve()
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# -- defaults ------------------------------------------------------------------------


def test_defaults(cwd: Path) -> None:
    cfg = load_config(env={})
    base = cwd / ".orchestration"
    assert cfg.data_dir == base
    assert cfg.store_url == f"sqlite:///{base}/events.db"
    assert cfg.max_workers == 4
    assert cfg.workflows_dir == base / "workflows"
    assert cfg.projects_dir == base / "projects"
    assert cfg.templates_dir == base / "templates"
    assert cfg.resource_config is None
    assert cfg.performance_monitoring is True
    assert cfg.session_timeout is None
    assert cfg.cleanup_interval == 300
    assert cfg.allow_imports == ()
    assert cfg.enable_shell is False
    assert cfg.config_file is None
    assert {info["source"] for info in cfg.describe().values()} == {"default"}


def test_config_is_frozen_and_equality_ignores_sources(cwd: Path) -> None:
    cfg = load_config(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_workers = 8  # type: ignore[misc]
    same = load_config(env={}, max_workers=4)
    assert same == cfg and hash(same) == hash(cfg)
    assert same.describe()["max_workers"]["source"] == "argument"


def test_default_store_url_matches_the_old_helper(cwd: Path) -> None:
    env = {"CODOMYRMEX_ORCHESTRATION_DIR": "some/where"}
    assert load_config(env=env).store_url == default_store_url(env=env)
    assert load_config(env={}).store_url == default_store_url(env={})


# -- precedence ----------------------------------------------------------------------

ENV_NAMES = {
    "max_workers": "CODOMYRMEX_MAX_WORKERS",
    "store_url": "CODOMYRMEX_STORE_URL",
    "resource_config": "CODOMYRMEX_RESOURCE_CONFIG",
    "data_dir": "CODOMYRMEX_ORCHESTRATION_DIR",
}


def _levels(key: str, cwd: Path, conf_dir: Path) -> tuple[Any, str, Any, list[Any]]:
    """(argument, env value, file value, expected value at each of the four levels)."""
    if key == "max_workers":
        return 16, "8", 2, [16, 8, 2, 4]
    if key == "store_url":
        default = f"sqlite:///{cwd}/.orchestration/events.db"
        return (
            "memory://arg",
            "memory://env",
            "memory://file",
            ["memory://arg", "memory://env", "memory://file", default],
        )
    if key == "resource_config":
        return "arg.json", "env.json", "file.json", [cwd / "arg.json", cwd / "env.json", conf_dir / "file.json", None]
    assert key == "data_dir"
    return "argdir", "envdir", "filedir", [cwd / "argdir", cwd / "envdir", conf_dir / "filedir", cwd / ".orchestration"]


@pytest.mark.parametrize("key", sorted(ENV_NAMES))
def test_argument_beats_env_beats_file_beats_default(key: str, cwd: Path) -> None:
    conf_dir = cwd.parent / "conf"
    arg, env_value, file_value, expected = _levels(key, cwd, conf_dir)
    conf = write_json(conf_dir / "c.json", {key: file_value})
    env = {ENV_NAMES[key]: env_value}
    levels = [
        (load_config(conf, env=env, **{key: arg}), "argument"),
        (load_config(conf, env=env), f"env:{ENV_NAMES[key]}"),
        (load_config(conf, env={}), f"file:{conf}"),
        (load_config(env={}), "default"),
    ]
    for (cfg, source), want in zip(levels, expected, strict=True):
        assert getattr(cfg, key) == want, source
        assert cfg.describe()[key]["source"] == source


# key -> (argument, file value, default)
WITHOUT_ENV: dict[str, tuple[Any, Any, Any]] = {
    "performance_monitoring": (True, False, True),
    "session_timeout": (10, 3600, None),
    "cleanup_interval": (5.5, 60, 300.0),
    "allow_imports": (("argpkg.",), ["filepkg.", "*"], ()),
    "enable_shell": (False, True, False),
}


@pytest.mark.parametrize("key", sorted(WITHOUT_ENV))
def test_argument_beats_file_beats_default(key: str, cwd: Path) -> None:
    arg, file_value, default = WITHOUT_ENV[key]
    conf = write_json(cwd / "c.json", {key: file_value})
    by_arg = load_config(conf, env={}, **{key: arg})
    by_file = load_config(conf, env={})
    by_default = load_config(env={})
    assert getattr(by_arg, key) == (tuple(arg) if isinstance(arg, tuple) else arg)
    assert getattr(by_file, key) == (tuple(file_value) if isinstance(file_value, list) else file_value)
    assert getattr(by_default, key) == default
    assert [c.describe()[key]["source"] for c in (by_arg, by_file, by_default)] == [
        "argument",
        f"file:{conf}",
        "default",
    ]


def test_none_argument_means_not_given(cwd: Path) -> None:
    conf = write_json(cwd / "c.json", {"max_workers": 3, "session_timeout": 60})
    cfg = load_config(conf, env={"CODOMYRMEX_MAX_WORKERS": "7"}, max_workers=None, session_timeout=None)
    assert cfg.max_workers == 7
    assert cfg.session_timeout == 60


def test_empty_env_var_counts_as_unset(cwd: Path) -> None:
    conf = write_json(cwd / "c.json", {"max_workers": 3})
    env = dict.fromkeys((*ENV_NAMES.values(), "CODOMYRMEX_CONFIG"), "")
    cfg = load_config(conf, env=env)
    assert cfg.max_workers == 3
    assert cfg.data_dir == cwd / ".orchestration"
    assert load_config(env=env).config_file is None


def test_env_max_workers_is_parsed_with_whitespace(cwd: Path) -> None:
    assert load_config(env={"CODOMYRMEX_MAX_WORKERS": " 12 "}).max_workers == 12


def test_file_data_dir_drives_derived_defaults(cwd: Path) -> None:
    conf_dir = cwd.parent / "conf"
    conf = write_json(conf_dir / "c.json", {"data_dir": "state", "templates_dir": "/opt/templates"})
    cfg = load_config(conf, env={})
    assert cfg.data_dir == conf_dir / "state"
    assert cfg.workflows_dir == conf_dir / "state" / "workflows"
    assert cfg.projects_dir == conf_dir / "state" / "projects"
    assert cfg.templates_dir == Path("/opt/templates")
    assert cfg.store_url == f"sqlite:///{conf_dir}/state/events.db"
    described = cfg.describe()
    assert described["data_dir"]["source"] == f"file:{conf}"
    assert described["workflows_dir"]["source"] == "default"


def test_argument_data_dir_beats_file_data_dir_for_derived_defaults(cwd: Path) -> None:
    conf = write_json(cwd / "c.json", {"data_dir": "from-file"})
    cfg = load_config(conf, env={}, data_dir="from-arg")
    assert cfg.workflows_dir == cwd / "from-arg" / "workflows"


def test_env_store_url_beats_derived_default_even_with_data_dir_argument(cwd: Path) -> None:
    cfg = load_config(env={"CODOMYRMEX_STORE_URL": "memory://"}, data_dir="x")
    assert cfg.store_url == "memory://"


# -- which config file ---------------------------------------------------------------


def test_config_file_argument_beats_env_beats_discovery(cwd: Path) -> None:
    by_arg = write_json(cwd / "arg.json", {"max_workers": 1})
    by_env = write_json(cwd / "env.json", {"max_workers": 2})
    write_json(cwd / ".orchestration" / "config.json", {"max_workers": 3})
    env = {"CODOMYRMEX_CONFIG": "env.json"}
    assert load_config(by_arg, env=env).max_workers == 1
    assert load_config(str(by_arg), env=env).config_file == by_arg
    cfg = load_config(env=env)
    assert (cfg.max_workers, cfg.config_file) == (2, by_env)
    assert cfg.describe()["config_file"]["source"] == "env:CODOMYRMEX_CONFIG"
    assert cfg.describe()["max_workers"]["source"] == f"file:{by_env}"
    cfg = load_config(env={})
    assert (cfg.max_workers, cfg.config_file) == (3, cwd / ".orchestration" / "config.json")
    assert cfg.describe()["config_file"] == {"value": str(cfg.config_file), "source": "default"}


def test_discovers_config_json_in_data_dir_from_env_or_argument(cwd: Path) -> None:
    data = cwd.parent / "data"
    write_json(data / "config.json", {"cleanup_interval": 42, "workflows_dir": "wf"})
    cfg = load_config(env={"CODOMYRMEX_ORCHESTRATION_DIR": str(data)})
    assert cfg.config_file == data / "config.json"
    assert cfg.cleanup_interval == 42
    assert cfg.workflows_dir == data / "wf"  # relative to the file's directory
    assert load_config(env={}, data_dir=data).cleanup_interval == 42


def test_no_discovery_when_config_json_is_absent_or_a_directory(cwd: Path) -> None:
    assert load_config(env={}).config_file is None
    (cwd / ".orchestration" / "config.json").mkdir(parents=True)
    assert load_config(env={}).config_file is None


def test_discovered_file_may_move_data_dir_without_second_discovery(cwd: Path) -> None:
    write_json(cwd / ".orchestration" / "config.json", {"data_dir": "../elsewhere"})
    write_json(cwd / "elsewhere" / "config.json", {"max_workers": 99})
    cfg = load_config(env={})
    assert cfg.data_dir == cwd / "elsewhere"
    assert cfg.max_workers == 4


def test_spec_example_file(cwd: Path) -> None:
    conf_dir = cwd / "proj"
    conf = write_json(
        conf_dir / "orchestration.json",
        {
            "max_workers": 4,
            "workflows_dir": "./workflows",
            "projects_dir": "./projects",
            "templates_dir": "./templates",
            "resource_config": "./resources.json",
            "performance_monitoring": True,
            "session_timeout": 3600,
            "cleanup_interval": 300,
        },
    )
    cfg = load_config(conf, env={})
    assert cfg.workflows_dir == conf_dir / "workflows"
    assert cfg.projects_dir == conf_dir / "projects"
    assert cfg.templates_dir == conf_dir / "templates"
    assert cfg.resource_config == conf_dir / "resources.json"
    assert cfg.session_timeout == 3600.0 and isinstance(cfg.session_timeout, float)
    assert cfg.data_dir == cwd / ".orchestration"  # not from the file


def test_file_with_utf8_bom_and_nulls_for_nullable_keys(cwd: Path) -> None:
    conf = cwd / "c.json"
    conf.write_bytes(b"\xef\xbb\xbf" + b'{"resource_config": null, "session_timeout": null}')
    cfg = load_config(conf, env={"CODOMYRMEX_RESOURCE_CONFIG": ""})
    assert cfg.resource_config is None and cfg.session_timeout is None
    assert cfg.describe()["session_timeout"] == {"value": "null", "source": f"file:{conf}"}


# -- path resolution ----------------------------------------------------------------


def test_relative_paths_from_file_resolve_against_its_directory(cwd: Path) -> None:
    conf_dir = cwd.parent / "etc" / "orch"
    conf = write_json(
        conf_dir / "c.json",
        {"data_dir": "../data", "projects_dir": "p", "resource_config": "sub/../res.json"},
    )
    cfg = load_config(conf, env={})
    assert cfg.data_dir == cwd.parent / "etc" / "data"
    assert cfg.projects_dir == conf_dir / "p"
    assert cfg.resource_config == conf_dir / "res.json"
    assert cfg.config_file == conf


def test_relative_paths_from_env_and_arguments_resolve_against_cwd(cwd: Path) -> None:
    conf = write_json(cwd.parent / "conf" / "c.json", {})
    env = {"CODOMYRMEX_ORCHESTRATION_DIR": "envdata", "CODOMYRMEX_RESOURCE_CONFIG": "r.json"}
    cfg = load_config(Path("../conf/c.json"), env=env, templates_dir="tpl")
    assert cfg.config_file == conf
    assert cfg.data_dir == cwd / "envdata"
    assert cfg.resource_config == cwd / "r.json"
    assert cfg.templates_dir == cwd / "tpl"
    assert cfg.workflows_dir == cwd / "envdata" / "workflows"
    assert all(p.is_absolute() for p in (cfg.data_dir, cfg.workflows_dir, cfg.projects_dir, cfg.templates_dir))


def test_home_is_expanded(cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = (cwd.parent / "home").resolve()
    monkeypatch.setenv("HOME", str(home))
    conf = write_json(cwd / "c.json", {"projects_dir": "~/projects"})
    cfg = load_config(conf, env={}, data_dir="~/orch")
    assert cfg.data_dir == home / "orch"
    assert cfg.projects_dir == home / "projects"


# -- bad input -----------------------------------------------------------------------


def _raises(match_all: list[str], **kwargs: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        load_config(**kwargs)
    message = str(info.value)
    for part in match_all:
        assert part in message, (part, message)
    assert isinstance(info.value, ValueError)
    return info.value


def test_malformed_json_names_file_and_position(cwd: Path) -> None:
    conf = cwd / "c.json"
    conf.write_text('{\n  "max_workers": 4,\n  "cleanup_interval": \n}\n', encoding="utf-8")
    err = _raises([str(conf), "line 4 column 1", "invalid JSON"], config_file=conf, env={})
    assert err.details["line"] == 4


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "line 1 column 1"),
        ('{"max_workers": 4, "max_workers": 5}', "duplicate key 'max_workers'"),
        ('{"cleanup_interval": NaN}', "NaN"),
        ('{"session_timeout": Infinity}', "Infinity"),
    ],
)
def test_invalid_json_variants(cwd: Path, text: str, needle: str) -> None:
    conf = cwd / "c.json"
    conf.write_text(text, encoding="utf-8")
    _raises([str(conf), needle], config_file=conf, env={})


def test_undecodable_file(cwd: Path) -> None:
    conf = cwd / "c.json"
    conf.write_bytes(b'{"store_url": "\xff"}')
    _raises([str(conf), "cannot read"], config_file=conf, env={})


@pytest.mark.parametrize("top", [[], [1, 2], "x", 3, None, True])
def test_top_level_must_be_object(cwd: Path, top: Any) -> None:
    conf = write_json(cwd / "c.json", top)
    _raises([str(conf), "top level must be a JSON object"], config_file=conf, env={})


def test_unknown_keys_listed_with_known_keys(cwd: Path) -> None:
    conf = write_json(cwd / "c.json", {"max_worker": 3, "config_file": "x", "max_workers": 3})
    err = _raises([str(conf), "'config_file'", "'max_worker'", "known keys:", *CONFIG_KEYS], config_file=conf, env={})
    assert err.details["unknown"] == ["config_file", "max_worker"]


BAD_FILE_VALUES: list[tuple[str, Any]] = [
    ("max_workers", "many"),
    ("max_workers", "4"),
    ("max_workers", 4.0),
    ("max_workers", True),
    ("max_workers", None),
    ("max_workers", 0),
    ("max_workers", -1),
    ("max_workers", 1025),
    ("performance_monitoring", "yes"),
    ("performance_monitoring", 1),
    ("enable_shell", "false"),
    ("enable_shell", None),
    ("session_timeout", 0),
    ("session_timeout", -5),
    ("session_timeout", "3600"),
    ("session_timeout", False),
    ("cleanup_interval", 0),
    ("cleanup_interval", -0.5),
    ("cleanup_interval", None),
    ("cleanup_interval", 1e400),
    ("allow_imports", "mypkg."),
    ("allow_imports", [""]),
    ("allow_imports", ["my pkg"]),
    ("allow_imports", [3]),
    ("allow_imports", {"mypkg.": True}),
    ("workflows_dir", 5),
    ("workflows_dir", ""),
    ("data_dir", None),
    ("data_dir", ["a"]),
    ("resource_config", False),
    ("store_url", "events.db"),
    ("store_url", 7),
]


@pytest.mark.parametrize(("key", "value"), BAD_FILE_VALUES)
def test_bad_file_value_names_key_and_file(cwd: Path, key: str, value: Any) -> None:
    conf = cwd / "c.json"
    conf.write_text(json.dumps({key: value}).replace("Infinity", "1e400"), encoding="utf-8")
    err = _raises(
        [f"{key} from config file {conf}", repr(value) if value != 1e400 else "inf"], config_file=conf, env={}
    )
    assert err.details["key"] == key
    assert err.details["source"] == f"file:{conf}"


BAD_ARGUMENTS: list[tuple[str, Any]] = [
    ("max_workers", "8"),
    ("max_workers", 0),
    ("max_workers", 2000),
    ("max_workers", False),
    ("performance_monitoring", "yes"),
    ("enable_shell", 1),
    ("session_timeout", 0),
    ("session_timeout", float("inf")),
    ("session_timeout", float("nan")),
    ("cleanup_interval", -1),
    ("allow_imports", "pkg."),
    ("data_dir", b"bytes"),
    ("templates_dir", "  "),
    ("store_url", "nope"),
]


@pytest.mark.parametrize(("key", "value"), BAD_ARGUMENTS)
def test_bad_argument_names_key_and_argument(cwd: Path, key: str, value: Any) -> None:
    err = _raises([key, f"the '{key}' argument of load_config()"], env={}, **{key: value})
    assert err.details["source"] == "argument"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CODOMYRMEX_MAX_WORKERS", "many"),
        ("CODOMYRMEX_MAX_WORKERS", "0"),
        ("CODOMYRMEX_MAX_WORKERS", "4.5"),
        ("CODOMYRMEX_MAX_WORKERS", "100000"),
        ("CODOMYRMEX_STORE_URL", "just-a-path.db"),
        ("CODOMYRMEX_ORCHESTRATION_DIR", "   "),
    ],
)
def test_bad_env_value_names_variable(cwd: Path, name: str, value: str) -> None:
    err = _raises([f"environment variable {name}", repr(value)], env={name: value})
    assert err.details["source"] == f"env:{name}"


def test_missing_config_file_argument(cwd: Path) -> None:
    err = _raises([str(cwd / "nope.json"), "does not exist", "'config_file' argument"], config_file="nope.json", env={})
    assert not isinstance(err, OSError)


def test_missing_config_file_from_env(cwd: Path) -> None:
    _raises(
        [str(cwd / "gone.json"), "does not exist", "environment variable CODOMYRMEX_CONFIG"],
        env={"CODOMYRMEX_CONFIG": "gone.json"},
    )


def test_config_file_that_is_a_directory(cwd: Path) -> None:
    _raises([str(cwd), "is not a file"], config_file=cwd, env={})


def test_config_file_of_wrong_type(cwd: Path) -> None:
    _raises(["config_file", "non-empty path"], config_file=42, env={})


def test_unknown_override(cwd: Path) -> None:
    _raises(["'max_worker'", "known:", "max_workers"], env={}, max_worker=3)


def test_direct_construction_is_validated_and_normalized(cwd: Path) -> None:
    base = {
        "data_dir": "d",
        "store_url": "memory://",
        "max_workers": 2,
        "workflows_dir": "w",
        "projects_dir": "p",
        "templates_dir": "t",
    }
    cfg = OrchestrationConfig(**base)  # type: ignore[arg-type]
    assert cfg.data_dir == cwd / "d" and cfg.cleanup_interval == 300.0
    assert cfg.describe()["data_dir"]["source"] == "argument"
    with pytest.raises(ValidationError, match="OrchestrationConfig"):
        OrchestrationConfig(**{**base, "max_workers": 0})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="cleanup_interval"):
        dataclasses.replace(cfg, cleanup_interval=0)


# -- describe() ----------------------------------------------------------------------


def test_describe_reports_every_field_with_its_source(cwd: Path) -> None:
    conf = write_json(
        cwd / "c.json",
        {"cleanup_interval": 30, "allow_imports": ["a.", "b."], "enable_shell": True, "max_workers": 2},
    )
    cfg = load_config(
        conf,
        env={"CODOMYRMEX_MAX_WORKERS": "6", "CODOMYRMEX_STORE_URL": "memory://"},
        session_timeout=90,
    )
    d = cfg.describe()
    assert list(d) == [f.name for f in dataclasses.fields(cfg) if not f.name.startswith("_")]
    assert d["session_timeout"] == {"value": "90.0", "source": "argument"}
    assert d["max_workers"] == {"value": "6", "source": "env:CODOMYRMEX_MAX_WORKERS"}
    assert d["store_url"] == {"value": "memory://", "source": "env:CODOMYRMEX_STORE_URL"}
    assert d["cleanup_interval"] == {"value": "30.0", "source": f"file:{conf}"}
    assert d["allow_imports"] == {"value": '["a.", "b."]', "source": f"file:{conf}"}
    assert d["enable_shell"] == {"value": "true", "source": f"file:{conf}"}
    assert d["data_dir"] == {"value": str(cwd / ".orchestration"), "source": "default"}
    assert d["resource_config"] == {"value": "null", "source": "default"}
    assert d["config_file"] == {"value": str(conf), "source": "argument"}
    assert "_sources" not in repr(cfg)


# -- the older helpers ---------------------------------------------------------------


def test_data_dir_helper() -> None:
    assert data_dir(env={}) == Path(".orchestration")
    assert data_dir(env={"CODOMYRMEX_ORCHESTRATION_DIR": "/x"}) == Path("/x")
    assert data_dir("/explicit", env={"CODOMYRMEX_ORCHESTRATION_DIR": "/x"}) == Path("/explicit")


def test_default_store_url_helper(cwd: Path) -> None:
    assert default_store_url(env={}) == f"sqlite:///{cwd}/.orchestration/events.db"
    assert default_store_url(env={"CODOMYRMEX_STORE_URL": "memory://"}) == "memory://"
    assert default_store_url("d", env={"CODOMYRMEX_STORE_URL": "memory://"}) == f"sqlite:///{cwd}/d/events.db"


def test_resolve_max_workers_helper() -> None:
    assert resolve_max_workers(env={}) == 4
    assert resolve_max_workers(file_value=3, env={}) == 3
    assert resolve_max_workers(file_value=3, env={"CODOMYRMEX_MAX_WORKERS": "5"}) == 5
    assert resolve_max_workers(7, 3, env={"CODOMYRMEX_MAX_WORKERS": "5"}) == 7
    assert resolve_max_workers("9", env={}) == 9
    for bad in (0, 1025, True, "x", 2.5):
        with pytest.raises(ValidationError, match="max_workers"):
            resolve_max_workers(bad, env={})
    with pytest.raises(ValidationError, match="CODOMYRMEX_MAX_WORKERS"):
        resolve_max_workers(env={"CODOMYRMEX_MAX_WORKERS": "zero"})
