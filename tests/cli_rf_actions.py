"""Actions for the CLI resume/fork tests (imported with --import tests.cli_rf_actions):
``cli_rf.step`` appends its name to $CLI_RF_DIR/effects and fails while
$CLI_RF_DIR/broken-<name> exists."""

from __future__ import annotations

import os
from pathlib import Path

from engine.registry import register_action


def step(name: str) -> str:
    base = Path(os.environ["CLI_RF_DIR"])
    with open(base / "effects", "a", encoding="utf-8") as f:
        f.write(name + "\n")
    if (base / f"broken-{name}").exists():
        raise RuntimeError(f"{name} is broken")
    return name.upper()


register_action("cli_rf", "step", step)
