"""The one MQTT client wrapper every worker and gate uses."""

from messaging.client import Handler, IncomingMessage, MqttClient, NotConnected, Will

__all__ = ["Handler", "IncomingMessage", "MqttClient", "NotConnected", "Will"]
