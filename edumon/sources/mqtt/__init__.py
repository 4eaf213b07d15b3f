"""MQTT source: the terminal ingest (and, in ``broker``, the embedded broker of the single box)."""

from edumon.sources.mqtt.ingest import IngestStats, MqttIngest, MqttSettings, MqttTls, Sink

__all__ = ["IngestStats", "MqttIngest", "MqttSettings", "MqttTls", "Sink"]
