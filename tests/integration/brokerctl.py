"""Broker-side helpers shared by the isolation, plugin-compatibility and bounds tests:
rabbitmqctl tables, throw-away users, cleanup of what a test declared.

All of them go through Broker.ctl (scripts/broker.sh ctl DIR ...) or amqpc.AmqpClient, so
they act on the node the `broker` fixture gives the test.
"""

import contextlib
import time
import uuid

from amqpc import AmqpClient, AmqpError
from sgtest import scaled


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def list_queues(broker, *columns):
    """{queue name: [column values as str]} from rabbitmqctl list_queues name COLUMNS."""
    out = broker.ctl("list_queues", "name", *columns, "--no-table-headers", "--quiet").stdout
    table = {}
    for line in out.splitlines():
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == len(columns) + 1:
            table[parts[0]] = [p.strip() for p in parts[1:]]
    return table


def queue_info(broker, name, *columns):
    """The columns of one queue as a dict, or None if the queue does not exist."""
    row = list_queues(broker, *columns).get(name)
    return None if row is None else dict(zip(columns, row))


def delete_queues(broker, *names):
    """Deletes queues (missing ones are fine); used in finally blocks."""
    with contextlib.suppress(OSError, AmqpError):
        with AmqpClient(broker) as a:
            for n in names:
                with contextlib.suppress(AmqpError):
                    a.queue_delete(n)


@contextlib.contextmanager
def broker_user(broker, configure=".*", write=".*", read=".*", vhost="/"):
    """A throw-away broker user with these permission regexes; yields (login, password)
    and deletes the user afterwards."""
    login, password = uniq("sgt-user"), uuid.uuid4().hex
    broker.ctl("add_user", login, password)
    try:
        broker.ctl("set_permissions", "-p", vhost, login, configure, write, read)
        yield login, password
    finally:
        broker.ctl("delete_user", login)


def wait_until(predicate, timeout, interval=0.1):
    """Like sgtest.wait_for, with the timeout scaled."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = predicate()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
