"""Django's PostgreSQL backend with a cheaper connection health check.

``CONN_HEALTH_CHECKS`` makes Django check a persistent connection before its first
query in each request. Django's check sends ``SELECT 1`` in autocommit mode: a
transaction PostgreSQL starts and commits, one more ``xact_commit`` per request
(the cost issue counted it as one commit in six per bet). An empty query makes the
same round trip, so a connection the server closed (a restart, an idle timeout) is
still found and replaced before the request uses it, but PostgreSQL answers it with
``EmptyQueryResponse`` without a transaction.
"""

import psycopg
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None:
            return False
        try:
            # A psycopg cursor directly, bypassing Django's utilities, as Django's.
            with self.connection.cursor() as cursor:
                cursor.execute("")
        except psycopg.Error:
            return False
        return True
