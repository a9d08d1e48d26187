""".ci/run stops when apt cannot install a real component the tests need, instead of letting them skip."""

from __future__ import annotations

import os
import shutil
import subprocess

from helpers import ROOT


def test_ci_run_exits_non_zero_when_the_apt_install_fails(tmp_path):
    # a PATH with none of the components and an apt-get that fails; `make test` is never reached
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho \"E: Unable to locate package $*\" >&2\nexit 100\n")
    (bin_dir / "apt-get").chmod(0o755)
    for tool in ("id", "env", "sudo", "make"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bin_dir / tool)
    (bin_dir / "make").unlink(missing_ok=True)  # were it reached, the test would say so instead of recursing
    (bin_dir / "make").write_text("#!/bin/sh\necho make reached >&2\nexit 0\n")
    (bin_dir / "make").chmod(0o755)
    bash = shutil.which("bash")
    proc = subprocess.run([bash, str(ROOT / ".ci" / "run")], env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "make reached" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("ci: could not install chromium chromium-driver tini ")
    assert proc.stderr.splitlines()[-1].endswith(" with apt; the tests that need them cannot run")
