"""Command-line tools the deploy tests run: found, skipped where they are missing, or, in CI
(which installs them), a failure."""

from __future__ import annotations

import os
import shutil

import pytest


def required_tool(name: str, package: str) -> str:
    """The tool's path; without it a skip that says how to install it, or a CI failure."""
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} not found (apt-get install -y --no-install-recommends {package})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must install it")
    pytest.skip(reason)
