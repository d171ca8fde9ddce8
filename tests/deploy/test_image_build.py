"""The Dockerfile's build stage, replayed on this machine (no Docker engine here): its COPY, WORKDIR and RUN
steps run in a scratch folder standing in for the image's filesystem, with only the files .dockerignore
lets into the build context. The virtualenv that comes out (what the final stage copies) must install
from the hashed lock, pass `pip check`, and run `cafeflow migrate` and import every service on its own,
outside the repository."""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, TEST_DATABASE_URL

pytestmark = pytest.mark.e2e


def _build_stage() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stage = re.search(r"^FROM \S+ AS build\n(.*?)^FROM ", text, re.MULTILINE | re.DOTALL).group(1)
    return [(m.group(1), m.group(2).strip()) for m in re.finditer(r"^([A-Z]+)\s+(.*)$", stage, re.MULTILINE)]


def _allowed_by_dockerignore(relative: str) -> bool:
    allowed = False
    for pattern in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern + "/") or \
                (pattern.startswith("**/") and fnmatch.fnmatch(Path(relative).name, pattern[3:])):
            allowed = negate
    return allowed


def test_build_stage_produces_a_working_virtualenv(tmp_path, engine):
    image_root = tmp_path / "image"
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "python").symlink_to(sys.executable)   # the base image's `python` (3.11)

    def here(path: str) -> Path:
        return image_root / path.lstrip("/")

    workdir = here("/")
    env = {"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    for instruction, argument in _build_stage():
        if instruction == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", argument):
                if key != "PIP_NO_CACHE_DIR":   # the host's pip cache spares downloads; the image keeps none
                    env[key] = value
        elif instruction == "WORKDIR":
            workdir = here(argument)
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, target = argument.split()
            for source in sources:
                assert _allowed_by_dockerignore(source), f".dockerignore keeps {source} out of the build context"
                origin = ROOT / source
                destination = workdir / target if not target.startswith("/") else here(target)
                if origin.is_dir():
                    shutil.copytree(origin, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy(origin, destination)
        elif instruction == "RUN":
            command = argument.replace("/opt/cafeflow", str(here("/opt/cafeflow")))
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=workdir, env=env,
                                    capture_output=True, check=False, text=True, timeout=900)
            assert result.returncode == 0, f"RUN {argument}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        elif instruction not in ("ARG", "LABEL"):
            raise AssertionError(f"the replay does not know {instruction}; extend it")

    venv_bin = here("/opt/cafeflow/bin")
    outside = tmp_path / "app"   # like the final stage's WORKDIR: nothing of the repository in reach
    outside.mkdir()
    run_env = {"PATH": f"{venv_bin}:/usr/bin:/bin", "HOME": str(outside), "LANG": "C.UTF-8",
               "CAFEFLOW_ENV": "test", "DATABASE_URL": TEST_DATABASE_URL,
               "CAFEFLOW_SECRET_KEY": "image-check-secret-key-0123456789abcdef",
               "CAFEFLOW_ADMIN_TOKEN": "image-check-admin-token-0123456789abcdef"}

    def run(*argv: str) -> str:
        result = subprocess.run(list(argv), cwd=outside, env=run_env, capture_output=True, check=False, text=True,
                                timeout=300)
        assert result.returncode == 0, f"{argv}\n{result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    run(str(venv_bin / "pip"), "check")
    location = run(str(venv_bin / "python"), "-c", "import services, os; print(os.path.dirname(services.__file__))")
    assert str(here("/opt/cafeflow")) in location, f"services imported from the repository, not the image: {location}"
    from services.cli import WEB_SERVICES

    modules = [target.partition(":")[0] for target, _port in WEB_SERVICES.values()]
    run(str(venv_bin / "python"), "-c", "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]",
        *modules, "services.transform.tasks", "services.common.probes", "flower", "gunicorn")
    assert "all schemas at head" in run(str(venv_bin / "cafeflow"), "migrate")
    assert "flower" in run(str(venv_bin / "cafeflow"), "--help")
    assert not list(here("/opt/cafeflow").rglob("*.egg-link")), "an editable install would point outside the image"
    assert os.access(venv_bin / "cafeflow", os.X_OK)
