"""Per-switch polling and export options, and inter-switch links, from the configuration."""

from __future__ import annotations

import pytest

from edumon.config import (
    DEFAULT_MAX_WALK_REQUESTS,
    DEFAULT_MAX_WALK_ROWS,
    inventory_of,
    parse_config,
)
from edumon.domain.inventory import SwitchLink
from edumon.errors import ConfigError
from tests.domain.conftest import DISTRICT

ACCESS = '[[switches]]\nid = "acc"\n'
CORE = '[[switches]]\nid = "core"\n'


def district(*, polling: str = "", acc: str = "", core: str = "") -> str:
    text = DISTRICT.replace(ACCESS, ACCESS + acc).replace(CORE, CORE + core)
    return text + (f"\n[polling]\n{polling}\n" if polling else "")


@pytest.mark.parametrize(
    ("polling", "acc", "expected"),
    [
        pytest.param(
            "", "", (DEFAULT_MAX_WALK_ROWS, DEFAULT_MAX_WALK_REQUESTS, False), id="default"
        ),
        pytest.param(
            "max_walk_rows = 200\nmax_walk_requests = 30\nexport_all_ports = true",
            "",
            (200, 30, True),
            id="global",
        ),
        pytest.param(
            "max_walk_rows = 200\nexport_all_ports = true",
            "max_walk_rows = 9000\nmax_walk_requests = 1000\nexport_all_ports = false\n",
            (9000, 1000, False),
            id="per-switch-wins",
        ),
    ],
)
def test_walk_caps_and_export_all_ports(
    polling: str, acc: str, expected: tuple[int, int, bool]
) -> None:
    sw = parse_config(district(polling=polling, acc=acc)).switches["acc"]
    assert (sw.max_walk_rows, sw.max_walk_requests, sw.export_all_ports) == expected


def test_upstream_is_data_in_the_config_and_the_inventory() -> None:
    config = parse_config(district(acc='upstream = { switch = "core", port = "Gi0/24" }\n'))
    up = config.switches["acc"].upstream
    assert up is not None
    assert (up.switch, up.port) == ("core", "Gi0/24")
    assert config.switches["core"].upstream is None
    inventory = inventory_of(config)
    assert inventory.upstream == {"acc": SwitchLink("acc", "core", "Gi0/24")}
    assert inventory.monitored("core", "Gi0/24")
    assert inventory.owner("core", "Gi0/24") is None  # a link serves no classroom itself
    assert inventory.monitored("acc", "Gi0/2")  # a classroom port
    assert not inventory.monitored("acc", "Gi0/9")


@pytest.mark.parametrize(
    ("acc", "core", "message"),
    [
        pytest.param(
            'upstream = { switch = "nowhere", port = "Gi0/1" }\n',
            "",
            "switches[1].upstream.switch: no switch with id nowhere",
            id="unknown-switch",
        ),
        pytest.param(
            'upstream = { switch = "acc", port = "Gi0/1" }\n',
            "",
            "switches[1].upstream.switch: a switch cannot hang off itself",
            id="itself",
        ),
        pytest.param(
            'upstream = { switch = "core", port = "Gi0/24" }\n',
            'upstream = { switch = "acc", port = "Gi0/48" }\n',
            "switches hang off each other (acc → core → acc)",
            id="loop",
        ),
        pytest.param('upstream = { switch = "core" }\n', "", "upstream.port", id="port-missing"),
        pytest.param("max_walk_rows = 0\n", "", "max_walk_rows", id="zero-rows"),
    ],
)
def test_bad_switch_options_name_the_key(acc: str, core: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(district(acc=acc, core=core))
    assert message in str(caught.value)
