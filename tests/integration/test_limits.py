"""Limits. Process limits: stompgate takes the whole descriptor hard limit, so a low soft
limit inherited from a shell does not cap connections far below max_connections. Size
limits: no stricter than RabbitMQ's web_stomp once CONNECTED (16 MiB bodies), but only a
CONNECT's worth (max_connect_frame, 64 KiB) before."""

import resource

import pytest

from sgtest import wait_for
from stompc import Closed, StompClient, connected_client


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


def _big_connect(broker, pad_bytes):
    """A CONNECT padded to over pad_bytes with x-pad headers (each under the 8 KiB line
    bound), so that only the frame bound can refuse it."""
    pads = "".join(f"x-pad{i}:{'p' * 8000}\n" for i in range(pad_bytes // 8000 + 1))
    return (f"CONNECT\naccept-version:1.2\nlogin:{broker.user}\npasscode:{broker.password}\n"
            f"{pads}\n\x00")


def test_100k_before_connect_refused(stompgate, broker):
    gw = stompgate()
    data = _big_connect(broker, 100 * 1024)
    assert len(data) > 100 * 1024
    # one 100 KiB WebSocket message before CONNECTED: the frame decoder refuses it (1009)
    c = StompClient(gw.ws_url)
    c.send_raw(data)
    with pytest.raises(Closed) as e:
        c.recv_msg()
    assert e.value.code == 1009
    # the same CONNECT in 8 KiB messages: the STOMP session refuses it at 64 KiB
    c = StompClient(gw.ws_url)
    for i in range(0, len(data), 8192):
        c.send_raw(data[i:i + 8192])
    f, code = c.expect_error_and_close()
    assert f["message"] == "frame too big"
    assert code == 1009
    # a CONNECT within the bound still works
    c = StompClient(gw.ws_url)
    c.send_raw(_big_connect(broker, 40 * 1024))
    assert c.expect("CONNECTED")["version"] == "1.2"


def test_2mib_send_after_connect_delivered(stompgate, broker):
    """Once CONNECTED the full limits apply: a 2 MiB SEND (64 KiB is the bound before) to a
    /topic with a subscriber is delivered whole."""
    gw = stompgate()
    sub = connected_client(gw, broker)
    sub.send_frame("SUBSCRIBE", {"id": "0", "destination": "/topic/big.body", "receipt": "s"})
    assert sub.expect("RECEIPT")["receipt-id"] == "s"
    pub = connected_client(gw, broker)
    body = (b"0123456789abcdef" * (2 * 1024 * 1024 // 16))
    pub.send_frame("SEND", {"destination": "/topic/big.body", "receipt": "p"}, body,
                   content_length=True)
    assert pub.expect("RECEIPT", timeout=20)["receipt-id"] == "p"
    m = sub.expect("MESSAGE", timeout=20)
    assert m["destination"] == "/topic/big.body"
    assert len(m.body) == len(body)
    assert m.body == body
