"""Server shutdown (SIGTERM) with connections open: RFC 6455 7.4.1 code 1001
("going away, such as a server going down"), then TCP closed, and a clean exit."""

from .conftest import scale
from .util import OP_TEXT, echo_roundtrip


def test_sigterm_closes_websockets_with_1001(start_daemon, certs):
    d = start_daemon("shutdown", workers=2, tls_cert=certs["rsa"][0], tls_key=certs["rsa"][1])
    conns = [d.ws(tls=tls) for tls in (False, True, False, True)]
    idle_http = d.raw()  # connected, no request yet
    try:
        for c in conns:
            echo_roundtrip(c, OP_TEXT, b"before shutdown")
        d.sigterm()
        for c in conns:
            cl = c.expect_close(timeout=scale(5))
            assert cl.code == 1001, cl
            assert not cl.before, cl.before
            assert c.wait_eof(timeout=scale(5)) is not None
        assert idle_http.wait_eof(timeout=scale(5)) is not None
        rc = d.proc.wait(timeout=scale(10))
        assert rc == 0, f"exit status {rc} after SIGTERM"
    finally:
        for c in conns + [idle_http]:
            c.close()
