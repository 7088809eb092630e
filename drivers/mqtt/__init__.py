"""MQTT input driver: machine topics on a broker mapped to samples, one batch per message.

See README.md in this folder for the configuration reference.
"""
from drivers.mqtt.config import MqttDeviceConfig, TlsConfig, TopicConfig
from drivers.mqtt.driver import MqttDriver, default_client_id
from drivers.mqtt.payload import FieldMapping

__all__ = ["MqttDriver", "MqttDeviceConfig", "TopicConfig", "TlsConfig", "FieldMapping",
           "default_client_id"]
