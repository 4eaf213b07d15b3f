"""The per-entity families: names, HELP texts and label names, in exposition order.

Each tuple below is the families one kind of entity (a switch, a switch's poller figures, a
school, a classroom) contributes lines to; an entity's cached text is one string per family.
"""

from __future__ import annotations

from edumon.exporters.metrics.text import Family, counter, gauge, info

_DEVICE = ("device", "school")
_PORT = ("device", "interface", "school", "classroom")
_TERMINAL = ("school", "classroom", "terminal")
_ROOM = ("school", "classroom")

# -- a switch and its ports -------------------------------------------------------------------

DEVICE_UP = gauge(
    "edumon_device_up",
    "Whether the switch answered its last SNMP poll (1) or not (0); "
    "absent until the first poll has finished.",
    *_DEVICE,
)
DEVICE_UPTIME = gauge(
    "edumon_device_uptime_seconds",
    "Switch uptime (sysUpTime, with its wraps every 497 days added back) at its last "
    "successful poll; absent while unreachable.",
    *_DEVICE,
)
DEVICE_REBOOTS = counter(
    "edumon_device_reboots",
    "Reboots detected: the boot time moved past the previous poll, by hrSystemUptime, "
    "snmpEngineBoots or sysUpTime (wraps at 2^32 ticks, frozen or jumping clocks "
    "excluded).",
    *_DEVICE,
)
DEVICE_LAST_POLL = gauge(
    "edumon_device_last_poll_timestamp_seconds",
    "When the switch was last polled (successfully or not), Unix seconds.",
    *_DEVICE,
)
DEVICE_LAST_OK = gauge(
    "edumon_device_last_success_timestamp_seconds",
    "When the switch last answered a poll, Unix seconds.",
    *_DEVICE,
)
DEVICE_INFO = info(
    "edumon_device",
    "Display names of each switch as it reports them (sysDescr is in the API).",
    *_DEVICE,
    "host",
    "sys_name",
)
DEVICE_STATE = gauge(
    "edumon_device_state",
    "Each switch as alerts see it, one series per switch at 1 with its current state: "
    "up; unreachable (this switch is the root cause); unknown (behind a failure: its "
    "school is cut off or the switch above it is down, so it raises nothing); pending "
    "(not polled yet).",
    "device",
    "school",
    "state",
)
IF_UP = gauge(
    "edumon_interface_up",
    "Whether the port is up (ifOperStatus up = 1, anything else 0); "
    "absent while its switch is unreachable (the port is unknown, not down).",
    *_PORT,
)
IF_ADMIN = gauge(
    "edumon_interface_admin_status",
    "IF-MIB ifAdminStatus: 1 up, 2 down, 3 testing; absent while its switch is unreachable.",
    *_PORT,
)
IF_SPEED = gauge(
    "edumon_interface_speed_bytes",
    "Negotiated link speed in bytes per second (ifHighSpeed, else ifSpeed); "
    "present only while the port is up and the speed was measured.",
    *_PORT,
)
IF_IN_BYTES = counter(
    "edumon_interface_in_bytes",
    "Octets received on the port (ifHCInOctets, else ifInOctets) as a 64-bit "
    "monotonic total edumon keeps from wrap-corrected deltas: 32-bit wraps are added "
    "back; it resets only at a reboot or counter discontinuity.",
    *_PORT,
)
IF_OUT_BYTES = counter(
    "edumon_interface_out_bytes",
    "Octets sent from the port (ifHCOutOctets, else ifOutOctets) as a 64-bit "
    "monotonic total edumon keeps from wrap-corrected deltas: 32-bit wraps are added "
    "back; it resets only at a reboot or counter discontinuity.",
    *_PORT,
)
IF_IN_ERRORS = counter(
    "edumon_interface_in_errors",
    "Inbound packets with errors (ifInErrors) as a 64-bit monotonic total, 32-bit "
    "wraps added back; resets only at a reboot or counter discontinuity.",
    *_PORT,
)
IF_OUT_ERRORS = counter(
    "edumon_interface_out_errors",
    "Outbound packets with errors (ifOutErrors) as a 64-bit monotonic total, 32-bit "
    "wraps added back; resets only at a reboot or counter discontinuity.",
    *_PORT,
)
IF_DOWNGRADES = counter(
    "edumon_interface_speed_downgrades",
    "Speed drops seen while the port stayed up (1000 to 100 Mbit/s: a bad cable); "
    "alert on increase(...[10m]) > 0.",
    *_PORT,
)
IF_LAST_CHANGE = gauge(
    "edumon_interface_last_change_timestamp_seconds",
    "When edumon last saw the port change status (or first saw it), Unix seconds.",
    *_PORT,
)
IF_INFO = info(
    "edumon_interface",
    "Display names of each exported port and what it serves: role uplink, classroom, "
    "link (another switch hangs off it) or none.",
    *_PORT,
    "role",
    "if_index",
    "alias",
)

SWITCH = (
    DEVICE_UP,
    DEVICE_REBOOTS,
    DEVICE_INFO,
    DEVICE_STATE,
    IF_UP,
    IF_ADMIN,
    IF_SPEED,
    IF_DOWNGRADES,
    IF_LAST_CHANGE,
    IF_INFO,
)
"""A switch's state: what changes when a port or the switch changes, not at every poll."""
SWITCH_COUNTERS = (
    DEVICE_UPTIME,
    DEVICE_LAST_POLL,
    DEVICE_LAST_OK,
    IF_IN_BYTES,
    IF_OUT_BYTES,
    IF_IN_ERRORS,
    IF_OUT_ERRORS,
)
"""What every poll of a switch moves."""

# -- a switch as its poller sees it -----------------------------------------------------------

SNMP_LAST_DURATION = gauge(
    "edumon_snmp_last_poll_duration_seconds",
    "How long the last poll of each switch took (successful or not).",
    "device",
)
SNMP_POLLS = counter(
    "edumon_snmp_polls", "Polls of each switch by result (ok, failed).", "device", "result"
)
SNMP_REQUESTS = counter(
    "edumon_snmp_requests",
    "SNMP request attempts sent to each switch (retries and v3 discovery included).",
    "device",
)
SNMP_TIMEOUTS = counter(
    "edumon_snmp_timeouts",
    "SNMP request attempts to each switch that got no reply in time.",
    "device",
)
SNMP_RETRIES = counter(
    "edumon_snmp_retries",
    "SNMP request attempts after the first for the same request.",
    "device",
)
SNMP_VARBINDS = counter(
    "edumon_snmp_varbinds",
    "Varbinds received from each switch (a walk's overshoot included).",
    "device",
)
SNMP_WALKS_ABORTED = counter(
    "edumon_snmp_walks_aborted",
    "Polls given up because a table walk returned more rows (max_walk_rows) or "
    "took more requests (max_walk_requests) than allowed: a looping or broken agent.",
    "device",
)
SNMP_LAST_VARBINDS = gauge(
    "edumon_snmp_last_poll_varbinds",
    "Values kept from the last successful poll of each switch.",
    "device",
)
SNMP_MAX_REPETITIONS = gauge(
    "edumon_snmp_max_repetitions",
    "GETBULK max-repetitions the next walk of each switch will use "
    "(lowered after tooBig replies and timeouts).",
    "device",
)

POLLED = (
    SNMP_LAST_DURATION,
    SNMP_POLLS,
    SNMP_REQUESTS,
    SNMP_TIMEOUTS,
    SNMP_RETRIES,
    SNMP_VARBINDS,
    SNMP_WALKS_ABORTED,
    SNMP_LAST_VARBINDS,
    SNMP_MAX_REPETITIONS,
)
STATE_POLLED = (SNMP_LAST_DURATION, SNMP_POLLS)
"""Without a poller in the process: what the state recorded from the observations."""

# -- a school ---------------------------------------------------------------------------------

SCHOOL_INFO = info(
    "edumon_school",
    "Display names of each school and its uplink port.",
    "school",
    "school_name",
    "kind",
    "device",
    "interface",
)
CLASSROOM_INFO = info(
    "edumon_classroom",
    "Display names of each classroom and its switch port.",
    "school",
    "classroom",
    "classroom_name",
    "device",
    "interface",
)
CHECK_STATUS = gauge(
    "edumon_check_status",
    "Outcome of each compliance check: one series per school, check and classroom, "
    "at 1, whose verdict label (pass, fail, unknown) is the current verdict.",
    "school",
    "check",
    "classroom",
    "verdict",
)
CHECK_SPEED = gauge(
    "edumon_check_speed_bytes",
    "The link speed a speed check judged, in bytes per second "
    "(for a down classroom port, the speed it had when last up).",
    "school",
    "check",
    "classroom",
)
SCHOOL_COMPLIANCE = gauge(
    "edumon_school_compliance",
    "Each school's overall verdict, one series per school at 1 with its current verdict "
    "(fail beats unknown beats pass).",
    "school",
    "verdict",
)
SCHOOL_CLASSROOMS = gauge(
    "edumon_school_classrooms",
    "Classrooms of each school by the verdict of their link speed check "
    '(verdict="fail" counts the non-compliant classrooms).',
    "school",
    "verdict",
)
SCHOOL_CONNECTIVITY = gauge(
    "edumon_school_connectivity",
    "Each school's link to the district network: one series per school, always "
    "present, at 1 with its current state: ok, uplink_down (port down on a switch that "
    "answers), unreachable (its uplink switch does not answer: fibre cut, core switch "
    "dead), unknown (not polled yet, or its uplink is on a district switch that does "
    "not answer).",
    "school",
    "state",
)
SCHOOL_OUTAGE = gauge(
    "edumon_school_outage",
    "1 while the school is in an outage (cut off for longer than the grace; one outage "
    "from the first failure until its connectivity is ok again), else 0.",
    "school",
)
SCHOOL_OUTAGE_START = gauge(
    "edumon_school_outage_start_timestamp_seconds",
    "When the school's open outage began, Unix seconds; absent without one.",
    "school",
)

SCHOOL_NAMES = (SCHOOL_INFO, CLASSROOM_INFO)
COMPLIANCE = (CHECK_STATUS, CHECK_SPEED, SCHOOL_COMPLIANCE, SCHOOL_CLASSROOMS)
SCHOOL_LINK = (SCHOOL_CONNECTIVITY, SCHOOL_OUTAGE, SCHOOL_OUTAGE_START)

# -- a classroom and its terminal -------------------------------------------------------------

TERMINAL_UP = gauge(
    "edumon_terminal_up",
    "Whether the classroom terminal is online (1) or not (0: offline, or never heard "
    "from since the collector started).",
    *_TERMINAL,
)
TERMINAL_LAST_SEEN = gauge(
    "edumon_terminal_last_seen_timestamp_seconds",
    "When the terminal's last birth or heartbeat arrived, Unix seconds.",
    *_TERMINAL,
)
TERMINAL_LAST_CHANGE = gauge(
    "edumon_terminal_last_change_timestamp_seconds",
    "When the terminal went online or offline, Unix seconds (for a heartbeat "
    "timeout, its last sign of life); absent if never heard from.",
    *_TERMINAL,
)
TERMINAL_UPTIME = gauge(
    "edumon_terminal_uptime_seconds",
    "The terminal's uptime in its last heartbeat; absent while it is not online.",
    *_TERMINAL,
)
TERMINAL_SPEED = gauge(
    "edumon_terminal_link_speed_bytes",
    "The terminal's NIC link speed in its last heartbeat, bytes per second; absent "
    "while it is not online or its NIC reports no speed (Wi-Fi).",
    *_TERMINAL,
)
TERMINAL_OFFLINE_REASON = gauge(
    "edumon_terminal_offline_reason",
    "Why the terminal is not online: one series at 1 while it is not online, whose "
    "reason is will (Last Will: connection lost, agent killed), shutdown, timeout "
    "(heartbeats stopped) or never_seen; absent while it is online.",
    *_TERMINAL,
    "reason",
)
TERMINAL_INFO = info(
    "edumon_terminal",
    "What the terminal's last heartbeat said about itself (its IP and MAC address, "
    "which change, are in the API).",
    *_TERMINAL,
    "agent_version",
    "nic",
    "duplex",
)
CLASSROOM_EXPECTED = gauge(
    "edumon_classroom_expected_online",
    "Whether a lesson is scheduled in the classroom now (1) or not (0), from the "
    "school calendar (校历), the working calendar (调休 included) and the timetable.",
    *_ROOM,
)
CLASSROOM_IN_LESSON = gauge(
    "edumon_classroom_offline_in_lesson",
    "Whether the classroom's terminal is offline while a lesson is scheduled (1) or "
    "not (0); absent while the school's uplink is down (the classroom is unknown).",
    *_ROOM,
)
CLASSROOM_OUTAGE = gauge(
    "edumon_classroom_outage",
    "1 while the classroom is in an outage: its terminal offline for the grace period of "
    "a scheduled lesson, then until it is back or the school day ends — across breaks "
    "and lunch, so one outage is one alert. 0 otherwise and while the classroom is "
    "unknown (its school or switch failed). When it began: GET /api/v1/outages, or in "
    "full detail edumon_terminal_last_change_timestamp_seconds.",
    *_ROOM,
)

CLASSROOM = (
    TERMINAL_UP,
    TERMINAL_LAST_CHANGE,
    TERMINAL_SPEED,
    TERMINAL_OFFLINE_REASON,
    TERMINAL_INFO,
    CLASSROOM_EXPECTED,
    CLASSROOM_IN_LESSON,
    CLASSROOM_OUTAGE,
)
"""A classroom's state: what changes when its terminal comes or goes, or the lesson does."""
HEARTBEAT = (TERMINAL_LAST_SEEN, TERMINAL_UPTIME)
"""What every heartbeat of a terminal moves."""

# -- the series budget ------------------------------------------------------------------------

DIAGNOSTICS = frozenset(
    {
        *POLLED,
        DEVICE_UPTIME,
        DEVICE_LAST_POLL,
        DEVICE_LAST_OK,
        IF_ADMIN,
        IF_IN_ERRORS,
        IF_OUT_ERRORS,
        IF_LAST_CHANGE,
        TERMINAL_LAST_SEEN,
        TERMINAL_LAST_CHANGE,
        TERMINAL_UPTIME,
        TERMINAL_SPEED,
        TERMINAL_INFO,
        CLASSROOM_EXPECTED,
        CLASSROOM_IN_LESSON,
    }
)
"""Per-entity figures left out with ``[metrics] detail = "essential"``: no shipped rule reads
them, and the API shows each of them per switch, port or terminal. What stays is what the rules
(deploy/prometheus/rules/), the alerting docs and a NOC overview read: each switch's state,
reboots and names; each exported port's status, speed, speed drops, traffic and names; every
school and check family; each classroom's terminal status, offline reason and outage. The
process's own families (the district-wide poll-duration histogram and totals) always stay."""

DETAILS = ("full", "essential")


def shown(kind: tuple[Family, ...], detail: str) -> tuple[Family, ...]:
    """The families of ``kind`` that /metrics exports at ``detail`` (full or essential)."""
    if detail == "full":
        return kind
    if detail != "essential":
        raise ValueError(f"unknown metrics detail {detail!r}; choose one of {', '.join(DETAILS)}")
    return tuple(family for family in kind if family not in DIAGNOSTICS)
