"""Shared fixtures: each real service the tests use has its own module under tests/fixtures."""

# Each fixture module registers here (one line each).
pytest_plugins: list[str] = [
    "tests.fixtures.databases",
    "tests.fixtures.runtime",
    "tests.fixtures.simswitch",
    "tests.fixtures.snmpd",
    "tests.fixtures.mqtt",
]
