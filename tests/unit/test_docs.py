"""Every configuration key and CLI command is documented (datasette's docs test)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from callhook import config

ROOT = Path(__file__).resolve().parents[2]


def _keys(model: type[BaseModel], prefix: str) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))
        sub = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is not None:
            out.extend(_keys(sub, f"{prefix}{name}."))
        else:
            out.append(prefix + name)
    return out


def test_every_config_key_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [k for k in _keys(config.Settings, "") if f"`{k.rsplit('.', 1)[-1]}`" not in doc]
    assert not missing, f"undocumented config keys: {missing}"


def test_every_cli_command_is_documented() -> None:
    from callhook.cli import main

    readme = (ROOT / "README.md").read_text() + (ROOT / "docs" / "cli.md").read_text()
    names = []
    for name, cmd in main.commands.items():
        sub = getattr(cmd, "commands", None)
        names.extend(f"{name} {s}" for s in sub) if sub else names.append(name)
    missing = [n for n in names if f"callhook {n}" not in readme]
    assert not missing, f"undocumented commands: {missing}"
