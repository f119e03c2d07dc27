"""The container recipes, checked without a container engine: lint, agreement of the two recipes, and
the lock files against the environment the tests run in."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTAINERS = REPO / "containers"
DOCKERFILE = (CONTAINERS / "Dockerfile").read_text()
DEFINITION = (CONTAINERS / "unihead.def").read_text()


def tool(name: str, extra: str = "test") -> str:
    path = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(path).exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[{extra}]')")
    return path


def pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==") for line in lines if line)


def test_the_dockerfile_lints_clean():
    proc = subprocess.run([tool("hadolint"), str(CONTAINERS / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_shell_scripts_lint_clean():
    scripts = [*CONTAINERS.glob("*.sh"), *(REPO / "workflow" / "scripts").glob("*.sh"), REPO / ".ci" / "run"]
    proc = subprocess.run([tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_github_workflows_lint_clean():
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    proc = subprocess.run([tool("actionlint", "actions"), f"-shellcheck={tool('shellcheck')}", *map(str, workflows)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_named_everywhere_is_the_one_ci_publishes_for_this_version():
    """CI pushes ghcr.io/<owner>/<repository>:<pyproject version>; the config default, paper.yaml and the README
    name that image (assuming the repository is github.com/unihead/unihead), and the labels carry the version."""
    import yaml

    from unihead.config import WorkflowConfig

    package_version = version("unihead")
    image = f"docker://ghcr.io/unihead/unihead:{package_version}"
    assert WorkflowConfig().container == image
    paper = yaml.safe_load((REPO / "workflow" / "config" / "paper.yaml").read_text())
    assert paper["workflow"]["container"] == image
    assert f"`{image}`" in (REPO / "README.md").read_text()
    publish = (REPO / ".github" / "workflows" / "image.yml").read_text()
    assert 'ref=ghcr.io/${GITHUB_REPOSITORY,,}:$version' in publish and '"v$version"' in publish
    assert re.findall(r"^ARG VERSION=(\S+)$", DOCKERFILE, re.M) == [package_version]
    assert re.findall(r"^\s+org.opencontainers.image.version (\S+)$", DEFINITION, re.M) == [package_version]


def dockerfile_instructions(keyword: str) -> list[str]:
    """The arguments of every ``keyword`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line[len(keyword) + 1:] for line in joined.splitlines() if line.startswith(f"{keyword} ")]


def test_both_recipes_build_on_the_same_base_with_the_same_files_scripts_and_environment():
    (docker_base,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE, re.M)
    (apptainer_base,) = re.findall(r"^From: (\S+)$", DEFINITION, re.M)
    assert docker_base == apptainer_base

    copied = " ".join(dockerfile_instructions("COPY"))
    files_section = DEFINITION.split("%files")[1].split("%post")[0]
    recipe_files = {f"containers/{p.name}" for p in CONTAINERS.iterdir()
                    if p.suffix in (".sh", ".py", ".txt") and p.name != "test-image.sh"}
    assert set(re.findall(r"containers/[\w.-]+", copied)) == recipe_files
    assert set(re.findall(r"^\s+(containers/[\w.-]+)", files_section, re.M)) == recipe_files
    assert "code /opt/unihead/code" in copied and re.search(r"^\s+code /opt/unihead/code$", files_section, re.M)
    for call in ("install-system.sh --with-tex", "install-python.sh /tmp/containers"):
        assert call in DOCKERFILE and call in DEFINITION

    docker_env = dict(item.split("=", 1) for item in " ".join(dockerfile_instructions("ENV")).split())
    apptainer_env = {key: value.strip('"') for key, value in re.findall(r"^\s+export (\w+)=(.+)$", DEFINITION, re.M)}
    # Apptainer shares the host's /tmp between users: matplotlib's cache gets one folder per user there.
    assert apptainer_env.pop("MPLCONFIGDIR") == docker_env.pop("MPLCONFIGDIR") + "-$(id -u)"
    assert docker_env == {**apptainer_env, "PATH": "/opt/venv/bin:${PATH}"}
    assert apptainer_env["HF_HUB_OFFLINE"] == "1"


def test_the_test_environment_has_the_locked_versions():
    """CI installs with containers/requirements.txt as constraints: the tests run what the image runs."""
    locked = {**pins(CONTAINERS / "requirements.txt"), **pins(CONTAINERS / "torch.txt")}
    assert {"torch", "torchvision", "timm", "pycocotools", "numpy"} <= set(locked)
    installed = {}
    for name in locked:
        try:
            installed[name] = version(name).split("+")[0]
        except PackageNotFoundError:
            continue
    assert installed == {name: locked[name] for name in installed}
    assert {"torch", "torchvision", "timm", "numpy", "pandas"} <= set(installed)


def test_the_paper_config_loads_the_weights_baked_into_the_image():
    import yaml

    paper = yaml.safe_load((REPO / "workflow" / "config" / "paper.yaml").read_text())
    weights = paper["model"]["weights_file"]
    fetch = (CONTAINERS / "fetch_weights.py").read_text()
    (url,) = re.findall(r'^URL = "(\S+)"$', fetch, re.M)
    (prefix,) = re.findall(r'^HASH_PREFIX = "(\w+)"$', fetch, re.M)
    assert weights == f"/opt/unihead/weights/{url.rsplit('/', 1)[-1]}" and prefix in weights
