"""wss only: no plain listener, TLS 1.2 minimum, STOMP over wss against the real broker."""

import socket
import ssl

import pytest
import websocket

from sgtest import free_port, make_cert, scaled, wait_for


@pytest.fixture
def cert(tmp_path):
    return make_cert(tmp_path)


def _accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ssl.TLSVersion.TLSv1_1, on purpose
def test_wss_only(stompgate, broker, cert):
    crt, key = cert
    port = free_port()
    gw = stompgate(listen="", tls_listen=f"127.0.0.1:{port}", tls_cert=str(crt),
                   tls_key=str(key), wait=False)
    assert wait_for(lambda: _accepts(port), scaled(10)), gw.log()
    assert "listening on wss://" in gw.log() and "listening on ws://" not in gw.log()

    # TLS 1.1 is refused by the server (the client side is allowed to offer it: security
    # level 0), TLS 1.2 works
    def handshake(version):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as tls:
                return tls.version()
    with pytest.raises(ssl.SSLError) as e:
        handshake(ssl.TLSVersion.TLSv1_1)
    assert "PROTOCOL_VERSION" in str(e.value) or "unsupported protocol" in str(e.value), e.value
    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"

    ws = websocket.create_connection(f"wss://127.0.0.1:{port}/ws", subprotocols=["v12.stomp"],
                                     sslopt={"ca_certs": str(crt)}, timeout=scaled(5))
    assert ws.getsubprotocol() == "v12.stomp"
    ws.send(f"CONNECT\naccept-version:1.2\nlogin:{broker.user}\npasscode:{broker.password}\n"
            "heart-beat:0,0\n\n\x00")
    assert ws.recv().startswith("CONNECTED\nversion:1.2\n")
    ws.send("SUBSCRIBE\nid:s\ndestination:/topic/tls.only\nreceipt:r\n\n\x00")
    assert ws.recv().startswith("RECEIPT\nreceipt-id:r\n")
    ws.send("SEND\ndestination:/topic/tls.only\n\nover wss\x00")
    msg = ws.recv()
    assert msg.startswith("MESSAGE\n") and msg.endswith("\n\nover wss\x00")
    ws.close()
