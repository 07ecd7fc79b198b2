"""Django's PostgreSQL backend with a health check that costs PostgreSQL nothing.

``CONN_HEALTH_CHECKS`` makes Django check a persistent connection before its first
query in each request. Django's check sends ``SELECT 1``: a transaction that
PostgreSQL starts and commits, one commit in four per bet (an empty query costs the
same: PostgreSQL counts it as a transaction too, measured 100 for 100).

What the check is for is a connection the server has closed: a restart, an idle
timeout, ``pg_terminate_backend``. The server says so before it closes the socket
(a FATAL error, then end of file), so an idle connection with something to read
has been closed or has a notice waiting. The check here looks at the socket
without a round trip: nothing to read, the connection is as good as a round trip
would have found it; something to read, libpq reads it and says whether the
connection is still up. A connection whose peer vanished without a word (a
network cut) is found by neither check until a query times out.
"""

import select

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed:
            return False
        pgconn = connection.pgconn
        if (
            pgconn.status != pq.ConnStatus.OK
            or pgconn.transaction_status != pq.TransactionStatus.IDLE
        ):
            return False
        try:
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
            if readable:
                pgconn.consume_input()  # the server's goodbye, or a notice
        except (OSError, psycopg.Error, ValueError):
            return False
        return pgconn.status == pq.ConnStatus.OK
