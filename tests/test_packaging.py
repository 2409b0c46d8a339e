"""What a station install is made of: the sdist carries deploy/, docs/ and LICENSE; the constraints pin
every runtime dependency with hashes, within pyproject's ranges."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parent.parent


def _pins() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) from deploy/constraints.txt."""
    text = (ROOT / "deploy" / "constraints.txt").read_text()
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z])", text.split("\n\n", 1)[-1] if text.startswith("#") else text):
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s;\\]+)", block.strip())
        if match:
            pins[match[1].lower().replace("_", "-")] = (match[2], block.count("--hash=sha256:"))
    return pins


def test_constraints_pin_every_dependency_with_hashes_within_the_floors():
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line.split("#")[0])
        version, hashes = pins[requirement.name.lower()]
        assert requirement.specifier.contains(version), (requirement, version)
        assert hashes >= 1, requirement.name
    assert all(hashes >= 1 for _, hashes in pins.values())


@pytest.mark.skipif(not os.environ.get("UV"), reason="builds the sdist with uv: runs in `make test-installs`")
def test_sdist_carries_deploy_docs_and_license(tmp_path: Path):
    subprocess.run(
        [os.environ["UV"], "build", "--sdist", "--out-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for expected in (
        "LICENSE",
        "deploy/beemon-uploader.service",
        "deploy/constraints.txt",
        "deploy/grafana-dashboard.json",
        "docs/raspberry-pi.rst",
        "docs/dependencies.rst",
    ):
        assert expected in names
    assert not any(name.startswith("docs/_build") for name in names)


def test_the_unit_is_a_notify_service_with_a_watchdog_and_a_narrow_view_of_the_disk():
    unit = (ROOT / "deploy" / "beemon-uploader.service").read_text()
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify" and int(settings["WatchdogSec"]) >= 30
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["IOSchedulingClass"] == "idle" and int(settings["Nice"]) > 0
    assert settings["ProtectSystem"] == "strict"
    production = tomllib.loads((ROOT / "settings" / "settings.toml").read_text())["production"]
    assert settings["ReadWritePaths"] == production["local_output_directory"]
