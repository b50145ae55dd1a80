"""The admin web console: server-rendered pages that talk to admin_worker over MQTT."""
