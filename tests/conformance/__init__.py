"""RFC 6455 conformance suite for stompgate: the ground of the Autobahn testsuite
groups 1-7 and 10, the opening handshake, server pings, shutdown and robustness.

    make && /usr/bin/python3 -m pytest -q tests/conformance

Self-contained: conftest.py starts its own daemons (echo_endpoint = true, no broker)
and makes its TLS certificates; wsraw.py is a raw client that can send any bytes and
checks every server frame against the RFC; util.py holds the shared assertions.

    test_framing.py        group 1 (lengths, chops) and 10 (1009, unmasked, bad lengths)
    test_control.py        group 2 (ping/pong) and 7 (close)
    test_rsv_opcodes.py    groups 3 and 4
    test_fragmentation.py  group 5
    test_utf8.py           group 6 (Kuhn stress test samples, fail-fast)
    test_handshake.py      opening handshake, subprotocols, origins, limits, timeouts
    test_server_ping.py    ping_interval_ms / pong_timeout_ms
    test_shutdown.py       SIGTERM -> 1001
    test_robustness.py     runs last: still echoing, RSS bounded
"""
