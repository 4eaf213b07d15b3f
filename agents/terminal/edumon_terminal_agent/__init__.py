"""edumon terminal agent: reports a classroom terminal's liveness and link over MQTT."""

__version__ = "0.1.0"
