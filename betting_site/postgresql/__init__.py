"""Django's PostgreSQL backend, with a health check that PostgreSQL does not commit
(see ``base.DatabaseWrapper.is_usable``)."""
