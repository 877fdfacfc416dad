"""Render the release's job templates from Python through the Ruby helper, as the BOSH director would.

The helper (``render_template.rb``) evaluates the real ERB with a template
context like the director's (``p`` with spec defaults, ``if_p``, ``spec``,
``link``, ``if_link``); this module only builds its input and reads its output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
JOBS_DIR = REPO / "jobs"
HELPER = Path(__file__).resolve().with_name("render_template.rb")


class RenderError(Exception):
    """The helper refused to render; the message is what it printed (the director's complaint)."""


def ruby() -> str | None:
    return shutil.which("ruby")


def job_names() -> list[str]:
    return sorted(p.name for p in JOBS_DIR.iterdir() if (p / "spec").is_file())


def job_spec(job: str) -> dict[str, Any]:
    return yaml.safe_load((JOBS_DIR / job / "spec").read_text())


@dataclass
class Link:
    """A consumed link. With `from_job`, `properties` are the provider's manifest properties and
    the helper derives what the link carries from the provider's spec, as the director does."""

    addresses: list[str]
    properties: dict[str, Any] = field(default_factory=dict)
    from_job: str | None = None
    group_address: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "properties": self.properties,
            "instances": [
                {"address": addr, "index": i, "az": f"z{i + 1}"} for i, addr in enumerate(self.addresses)
            ],
        }
        if self.from_job:
            doc["from_job"] = self.from_job
        if self.group_address:
            doc["address"] = self.group_address
        return doc


def _run(
    job: str,
    template: str,
    properties: dict[str, Any],
    spec: dict[str, Any],
    links: dict[str, Link],
    jobs_dir: Path,
) -> str:
    exe = ruby()
    if exe is None:
        raise RuntimeError("ruby is not installed")
    context = {
        "properties": properties,
        "spec": spec,
        "links": {name: link.to_json() for name, link in links.items()},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="render-context-") as fh:
        json.dump(context, fh)
        fh.flush()
        proc = subprocess.run(
            # --disable-gems: the helper needs only the standard library, and RubyGems
            # start-up would cost more than the rendering.
            [exe, "--disable-gems", str(HELPER), str(jobs_dir / job), template, fh.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip() or f"render_template.rb exited with {proc.returncode}")
    return proc.stdout


def render(
    job: str,
    template: str,
    properties: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    links: dict[str, Link] | None = None,
    jobs_dir: Path = JOBS_DIR,
) -> str:
    """One template (a key of the spec's ``templates``, or ``monit`` for the job's monit file), rendered."""
    return _run(job, template, properties or {}, spec or {}, links or {}, jobs_dir)


def render_job(
    job: str,
    properties: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    links: dict[str, Link] | None = None,
    jobs_dir: Path = JOBS_DIR,
) -> dict[str, str]:
    """Every template of the job and its monit file, as a deploy renders them: destination path -> text.

    The monit file's destination is ``monit``, where BOSH puts it in the job's directory.
    """
    out = _run(job, "--all", properties or {}, spec or {}, links or {}, jobs_dir)
    rendered: dict[str, str] = json.loads(out)
    return rendered


def write_job(rendered: dict[str, str], job_dir: Path, replace_root: tuple[str, str] | None = None) -> None:
    """Lay rendered templates out as BOSH does under /var/vcap/jobs/<job>, scripts in bin/ executable.

    `replace_root` swaps a path prefix in every file (``("/var/vcap", tmp)``), so
    the job runs against a /var/vcap-like tree in a temporary directory.
    """
    for dest, text in rendered.items():
        path = job_dir / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        if replace_root:
            text = text.replace(*replace_root)
        path.write_text(text)
        path.chmod(0o755 if dest.startswith("bin/") else 0o644)
