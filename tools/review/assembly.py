"""Thin file I/O: read a synthesized cloud assembly, and produce a baseline one.

Layout CDK writes (checked with aws-cdk-lib 2.275): ``cdk.out/manifest.json`` lists the
artifacts; a stack artifact (``aws:cloudformation:stack``) names its ``templateFile`` and an
``additionalMetadataFile`` (``<stack>.metadata.json``, construct path -> metadata entries,
where cdk-nag 3 acknowledgements land as ``aws:cdk:acknowledged-rules``); every ``cdk.Stage``
(including CDK Pipelines stages) is a nested assembly ``assembly-<Stage path>/`` with its own
``manifest.json``, referenced from the parent by a ``cdk:cloud-assembly`` artifact. A failed
validation leaves ``validation-report.json`` at the top.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path


class ReviewInputError(Exception):
    """Input the review cannot work with; the message names the field and the value."""


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise ReviewInputError(f"cannot read {path}: {exc}") from exc


def _stack_artifacts(root: Path) -> dict[Path, dict]:
    """Template path -> {"name", "metadata"} from every manifest under root."""
    info: dict[Path, dict] = {}
    for manifest_path in sorted(root.rglob("manifest.json")):
        manifest = _read_json(manifest_path)
        for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            template_file = (artifact.get("properties") or {}).get("templateFile")
            if not template_file:
                continue
            metadata = dict(artifact.get("metadata") or {})
            extra = artifact.get("additionalMetadataFile")
            if extra and (manifest_path.parent / extra).is_file():
                for path, entries in _read_json(manifest_path.parent / extra).items():
                    metadata.setdefault(path, [])
                    metadata[path] = list(metadata[path]) + list(entries)
            info[(manifest_path.parent / template_file).resolve()] = {
                "name": artifact.get("displayName") or artifact_id,
                "metadata": metadata,
            }
    return info


def load_cloud_assembly(root: Path | str) -> tuple[list[dict], dict | None]:
    """Every ``**/*.template.json`` under root (nested stage assemblies included, Lambda
    asset folders skipped) as review stacks, plus the validation report when there is one."""
    root = Path(root)
    if not root.is_dir():
        raise ReviewInputError(f"--cdk-out: {str(root)!r} is not a directory (run `make synth` first)")
    info = _stack_artifacts(root)
    stacks = []
    for template_path in sorted(root.rglob("*.template.json")):
        relative = template_path.relative_to(root)
        if any(part.startswith("asset.") for part in relative.parts[:-1]):
            continue
        known = info.get(template_path.resolve(), {})
        stacks.append(
            {
                "name": known.get("name") or str(relative)[: -len(".template.json")],
                "file": str(relative),
                "template": _read_json(template_path),
                "metadata": known.get("metadata", {}),
            }
        )
    if not stacks:
        raise ReviewInputError(f"--cdk-out: no *.template.json under {str(root)!r}")
    report_path = root / "validation-report.json"
    report = _read_json(report_path) if report_path.is_file() else None
    return stacks, report


def _git(repo: Path, *args: str, binary: bool = False):
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise ReviewInputError(
            f"git {' '.join(args)} failed in {repo}: {result.stderr.decode(errors='replace').strip()}"
        )
    return result.stdout if binary else result.stdout.decode().strip()


def baseline_from_git(
    *, repo: Path, ref: str, command: str, out: str, cache_dir: Path, timeout_seconds: int = 1800
) -> Path:
    """Synthesize the tree of ``ref`` offline and return its cloud assembly directory.

    The tree of the commit is extracted (``git archive``, no network) into
    ``cache_dir/<commit>/``; the current checkout's ``.venv`` and ``node_modules`` are linked
    in (so the baseline is synthesized with today's pinned toolchain, not re-installed), then
    ``command`` runs there with a shell and must leave the assembly at ``out`` (relative to
    the extracted tree). The result is cached per commit and command: reviewing several
    stages against one ref synthesizes once.
    """
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") if ref else ""
    except ReviewInputError:
        commit = ""
    if not commit:
        raise ReviewInputError(f"--baseline: {ref!r} is neither a directory nor a git commit in {repo}")
    key = hashlib.sha256(f"{commit}\n{command}".encode()).hexdigest()[:16]
    tree = cache_dir / f"{commit[:12]}-{key}"
    done = tree / ".review-baseline-done"
    if not done.is_file():
        if tree.exists():
            shutil.rmtree(tree)
        tree.mkdir(parents=True)
        archive = _git(repo, "archive", "--format=tar", commit, binary=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        for shared in (".venv", "node_modules"):
            if (repo / shared).exists() and not (tree / shared).exists():
                os.symlink((repo / shared).resolve(), tree / shared)
        print(f"review: synthesizing baseline {ref} ({commit[:12]}) in {tree}: {command}", flush=True)
        result = subprocess.run(
            command, shell=True, cwd=tree, capture_output=True, text=True, timeout=timeout_seconds, check=False
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
            raise ReviewInputError(
                f"--baseline-cmd {command!r} failed for {ref} ({commit[:12]}), exit {result.returncode}:\n{tail}"
            )
        done.write_text(commit + "\n")
    assembly = tree / out
    if not assembly.is_dir():
        raise ReviewInputError(f"--baseline-out: {out!r} does not exist after running {command!r} at {ref}")
    return assembly
