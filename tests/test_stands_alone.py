"""The repository stands alone: a clone with nothing beside it has every file its tests, benchmarks and
README use (the 65 sample branch files in samples/branch-files, the design in docs/DESIGN.md).

Two checks: no tracked file names a path outside the repository (the folder this project grew up in had a
`../shared` beside it, which a clone from the public home does not have), and the tests that read the
sample files pass in a copy of the repository placed where no `../shared` exists.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.realdata import real_figures
from tests.support import REAL_FILES, ROOT

# Paths that lead out of the repository: the old sibling folder and absolute paths of the machine it was
# built on. (This file names them to explain itself, so it is the one file not checked.)
OUTSIDE = re.compile(r"\.\./" + r"shared\b" + r"|[\"']shared[\"']\s*/\s*[\"']data" + r"|/work" + r"/")


def tracked_files() -> list[Path]:
    """What a clone holds (tracked files), plus new files not yet committed and not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]


def test_the_sample_files_are_in_the_repository_and_are_the_65_real_ones():
    assert REAL_FILES.is_relative_to(ROOT)
    figures = real_figures()
    assert (figures.transactions, figures.items, str(figures.revenue)) == (19_448, 53_712, "119138.75")
    assert len(figures.per_branch) == 10
    assert (ROOT / "samples" / "branch-files" / "README.md").is_file()
    assert (ROOT / "docs" / "DESIGN.md").is_file()


def test_no_tracked_file_names_a_path_outside_the_repository():
    offenders = []
    for path in tracked_files():
        if path.suffix == ".csv" or path.name == Path(__file__).name:
            continue
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(content.splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_sample_file_tests_pass_in_a_copy_with_nothing_beside_it(tmp_path):
    clone = tmp_path / "cafeflow"          # tmp_path holds nothing else: there is no ../shared here
    for path in tracked_files():
        target = clone / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    assert not (clone.parent / "shared").exists()
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)       # a clone is a repository: its
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)        # tracked files are the copied ones
    # The copy's own modules, not the editable install's: PYTHONPATH puts the copy first.
    env = dict(os.environ, PYTHONPATH=str(clone), PYTHONDONTWRITEBYTECODE="1")
    where = subprocess.run([sys.executable, "-c", "import services, tests.support as s; "
                            "print(services.__file__); print(s.REAL_FILES)"],
                           cwd=clone, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(line).is_relative_to(clone) for line in where), where
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_stands_alone.py::test_the_sample_files_are_in_the_repository_and_are_the_65_real_ones",
         "tests/test_stands_alone.py::test_no_tracked_file_names_a_path_outside_the_repository",
         "tests/tools/test_generate.py::test_menu_comes_from_the_real_files"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout
