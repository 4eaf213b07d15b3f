"""A small district for the pure-domain tests, built through the real config parser."""

from __future__ import annotations

import pytest

from edumon.config import Config, parse_config

DISTRICT = """
[district]
code = "t"
name = "测试县"

[credentials.c]
version = "2c"
community = "c0mmunity-secret"

[[switches]]
id = "core"
host = "127.0.0.1"
credentials = "c"

[[switches]]
id = "acc"
host = "127.0.0.1"
credentials = "c"

[[schools]]
code = "S1"
name = "第一小学"
kind = "primary"
uplink = { switch = "core", port = "Gi0/1" }

[[schools.classrooms]]
id = "S1-101"
name = "一年级(1)班"
switch = "acc"
port = "Gi0/2"

[[schools.classrooms]]
id = "S1-102"
name = "一年级(2)班"
switch = "acc"
port = "Gi0/3"

[[schools.classrooms]]
id = "S1-103"
name = "一年级(3)班"
"""


@pytest.fixture
def district() -> Config:
    return parse_config(DISTRICT)
