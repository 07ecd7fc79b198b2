"""Django's PostgreSQL backend, with a connection health check that sends
nothing to the server (see ``base.DatabaseWrapper.is_usable``)."""
