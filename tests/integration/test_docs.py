"""The docs stay true: every option the binaries know is documented in docs/CONFIG.md."""

import re

import pytest

from sgtest import REPO, run_bin


@pytest.mark.parametrize("name", ["stompgate", "stockd"])
def test_config_doc_lists_every_option(name):
    out = run_bin(name, "--help").stdout
    out = out.decode() if isinstance(out, bytes) else out
    keys = re.findall(r"^  ([a-z_]+) ", out, re.M)
    assert len(keys) >= 10, out
    doc = (REPO / "docs" / "CONFIG.md").read_text()
    section = doc.split(f"## {name}", 1)[1]
    missing = [k for k in keys if not re.search(rf"^  {k} ", section, re.M)]
    assert not missing, f"docs/CONFIG.md lacks {missing}"
