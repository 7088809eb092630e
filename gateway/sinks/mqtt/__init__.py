"""The MQTT sink: signed envelopes to an upstream broker with QoS 1, acknowledged on PUBACK."""
from gateway.sinks.mqtt.link import MqttLink, Will
from gateway.sinks.mqtt.sink import MqttSink, envelope_bytes

__all__ = ["MqttLink", "MqttSink", "Will", "envelope_bytes"]
