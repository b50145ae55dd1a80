"""Notifications through one interface: FCM push, Slack, email, SMS, and the local events channel."""
