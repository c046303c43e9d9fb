"""RFC 6455 conformance suite for stompgate (see conftest.py)."""
