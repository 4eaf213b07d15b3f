"""The school agent: polls a school's switches with the collector's poller and reports over MQTT."""
