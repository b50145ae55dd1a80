"""Brokers: the embedded amqtt broker for one machine; Mosquitto config and process for sites."""
