"""The code stays clean: `ruff check .` (lint and import order, line length 119; settings in pyproject.toml), and
no test module imports another: shared helpers live in tests/support."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.repo import REPO


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is not installed; install requirements-dev.lock"
    result = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


# `from tests.test_x import y`, `import tests.test_x`, `from tests import test_x`, `from .test_x import y`, ...: in
# code or in a script that a test writes for a subprocess
TEST_MODULE_IMPORT = re.compile(
    r"^\s*(from\s+(tests)?\.*test_\w+\s+import|import\s+(tests\.)?test_|from\s+(tests|\.)\s+import\s+(.*\W)?test_)",
    re.MULTILINE,
)


def test_no_test_module_imports_another():
    offenders = {
        path.name: match.group(0).strip()
        for path in sorted((REPO / "tests").glob("test_*.py"))
        for match in TEST_MODULE_IMPORT.finditer(path.read_text())
    }
    assert not offenders, f"move what these import into tests/support: {offenders}"
