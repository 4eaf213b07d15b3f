"""The error hierarchy: messages a school network administrator can act on."""


class EdumonError(Exception):
    """Base of every error edumon raises on purpose."""


class ConfigError(EdumonError):
    """The configuration file is missing, malformed or inconsistent."""


class SnmpError(EdumonError):
    """An SNMP exchange with a device failed."""


class SnmpTimeout(SnmpError):
    """A device did not answer within the timeout after all retries."""


class SnmpProtocolError(SnmpError):
    """A device answered with something that is not a usable SNMP reply."""


class SnmpAuthError(SnmpError):
    """An SNMPv3 reply failed authentication, or the device rejected our credentials."""


class StoreError(EdumonError):
    """The database could not be reached or rejected a write."""
