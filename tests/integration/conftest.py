"""pytest set-up for tests/integration: the fixtures (broker, stompgate, stockd) and the
hooks live in sgtest.py, documented there. Run with /usr/bin/python3 -m pytest."""

import pytest

pytest.register_assert_rewrite("sgtest")

from sgtest import *  # noqa: E402,F401,F403  (fixtures and hooks are found by name)
