"""Fixtures for the agents' tests; the helpers they hand out live in tests/agents/support.py."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.agents.support import AGENT_DIR, AgentProcess, PrivateBroker, Recorder

# The agent is a separate distribution; the tests import it from its source folder.
if str(AGENT_DIR) not in sys.path:
    sys.path.insert(0, str(AGENT_DIR))


@pytest.fixture
def district() -> str:
    """A district id no other test (or run) uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    """Recorders created by a test are closed (and their retained topics cleared) after it."""
    created: list[Recorder] = []
    yield created
    for recorder in reversed(created):
        recorder.close()


@pytest.fixture
def recorder(district: str, recorders: list[Recorder]) -> Recorder:
    """A subscriber to the test's district on the shared broker, subscribed before any agent."""
    created = Recorder(district)
    recorders.append(created)
    return created


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    """Agent processes started by a test are stopped after it."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


@pytest.fixture
def brokers() -> Iterator[list[PrivateBroker]]:
    """Private brokers started by a test are stopped after it."""
    started: list[PrivateBroker] = []
    yield started
    for broker in started:
        broker.stop()
