"""The simulator's demo accounts: DEVELOPMENT-ONLY credentials.

Every simulator knows these accounts from the start, with no balance set. Their
secrets are published here on purpose (``seed_demo`` links the demo players to
them), so they must never be used against a real provider.
"""

DEMO_ACCOUNTS: list[dict[str, str]] = [
    {"user_id": "1001", "username": "demo1", "secret": "demo-secret-1001"},
    {"user_id": "1002", "username": "demo2", "secret": "demo-secret-1002"},
    {"user_id": "1003", "username": "demo3", "secret": "demo-secret-1003"},
]
