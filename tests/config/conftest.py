"""Config-tier helpers: the real promtool and amtool, required rather than skipped."""

from __future__ import annotations

import pytest

from lab.loopback import LoopbackError, require_binary


def required_tool(name: str) -> str:
    """Path of a checking tool; a missing one fails the test with the package to install.

    Never a skip: .ci/run installs these packages, so their absence is a broken setup.
    """
    try:
        return require_binary(name)
    except LoopbackError as error:
        pytest.fail(f"{error} (.ci/run installs it)")
