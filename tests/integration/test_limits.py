"""Process limits: stompgate takes the whole descriptor hard limit, so a low soft limit
inherited from a shell does not cap connections far below max_connections."""

import resource

from sgtest import wait_for


def _soft_nofile(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return None


def test_raises_soft_nofile_to_hard(stompgate):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        gw = stompgate(max_connections=100000)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert _soft_nofile(gw.pid) == hard
    if hard != resource.RLIM_INFINITY and hard < 100064:
        assert wait_for(lambda: "descriptor limit" in gw.log(), 5)
