"""YAML in the shape the BOSH CLI writes it: block style, keys in the order given, no document marker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dumps(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16)


def write(path: Path, data: Any) -> None:
    """Write atomically: an index half-written by an interrupted run would lose releases."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(dumps(data))
    partial.replace(path)


def read(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None
