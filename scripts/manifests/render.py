"""One manifest per variant, rendered from manifests/ into build/manifests/.

A variant is the base manifest plus ops-files in order, then the defaults vars
file. Secrets (the `variables:` section's and the operator's inputs such as
the CF client secret) are left as ((placeholders)) for the director's config
server (CredHub) to fill at deploy time, so the output holds no secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.manifests.errors import ManifestError
from scripts.manifests.opsfile import apply_ops, load_ops
from scripts.manifests.variables import interpolate

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
BASE = "postgres-service.yml"
DEFAULTS = "vars/defaults.yml"


@dataclass(frozen=True)
class Variant:
    name: str
    ops_files: tuple[str, ...]


# A variant renders only when its ops-files exist (`make manifests` reports one that is skipped).
VARIANTS = (
    Variant("shared", ()),
    Variant("ha", ("operations/ha.yml",)),
)


class _Dumper(yaml.SafeDumper):
    # One variable's value used in several places (((azs)) in every group) is one Python object;
    # an operator reads the manifest, so each place gets the value written out, not an alias.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dumps(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16)


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ManifestError(f"{path}: {err}") from None


def load_vars(path: Path) -> dict[str, Any]:
    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a vars file is a map of variable name to value")
    return data


def interpolate_files(
    base: Path,
    ops_files: Sequence[Path] = (),
    vars_files: Sequence[Path] = (),
    extra_vars: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> Any:
    """What `bosh interpolate base -o ... -l ... -v ...` prints: ops first, then variables.

    Later vars files and then `extra_vars` win over earlier ones, as with the CLI's flags.
    """
    doc = load_yaml(base)
    for ops_file in ops_files:
        doc = apply_ops(doc, load_ops(ops_file), ops_file.name)
    values: dict[str, Any] = {}
    for vars_file in vars_files:
        values.update(load_vars(vars_file))
    values.update(extra_vars or {})
    return interpolate(doc, values, strict=strict)


def render_variant(variant: Variant, manifests: Path = MANIFESTS) -> Any:
    return interpolate_files(
        manifests / BASE,
        [manifests / ops for ops in variant.ops_files],
        [manifests / DEFAULTS],
    )


def available(manifests: Path = MANIFESTS) -> tuple[list[Variant], list[Variant]]:
    """Variants whose ops-files all exist, and those still waiting for one."""
    ready = [v for v in VARIANTS if all((manifests / ops).is_file() for ops in v.ops_files)]
    waiting = [v for v in VARIANTS if v not in ready]
    return ready, waiting


def render_all(out_dir: Path, manifests: Path = MANIFESTS) -> list[str]:
    """Write <variant>.yml for every available variant; returns lines to print."""
    ready, waiting = available(manifests)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: list[str] = []
    for variant in ready:
        target = out_dir / f"{variant.name}.yml"
        sources = " + ".join(f"manifests/{f}" for f in (BASE, *variant.ops_files, DEFAULTS))
        header = (
            f"# The {variant.name} variant of postgres-service, rendered by `make manifests` from\n"
            f"# {sources}.\n"
            "# ((placeholders)) left here are secrets and inputs the director resolves (CredHub, -v, -l).\n"
        )
        partial = target.with_name(target.name + ".partial")
        partial.write_text(header + dumps(render_variant(variant, manifests)))
        partial.replace(target)
        report.append(f"wrote {_shown(target)}")
    for variant in waiting:
        # A stale file from an earlier build would look current; better none at all.
        (out_dir / f"{variant.name}.yml").unlink(missing_ok=True)
        missing = [o for o in variant.ops_files if not (manifests / o).is_file()]
        report.append(
            f"skipped {variant.name}.yml: manifests/{', manifests/'.join(missing)} does not exist yet"
        )
    return report


def _shown(path: Path) -> str:
    """Paths in the repository as relative ones, so output names no machine path."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
