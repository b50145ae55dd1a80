"""Build the configured channels and the Notifier from NotifySettings."""

from __future__ import annotations

from config.settings import NotifySettings
from messaging import MqttClient
from notifier.base import Channel, NotifyConfigError
from notifier.dispatch import Notifier
from notifier.email import EmailChannel
from notifier.fcm import FcmChannel
from notifier.local import LocalChannel
from notifier.slack import SlackChannel
from notifier.sms import SmsChannel


def build_channels(settings: NotifySettings, mqtt: MqttClient | None) -> tuple[list[Channel], list[Channel]]:
    """(person channels, room channels) for `settings.channels`; NotifyConfigError if one cannot start.

    The local channel publishes through `mqtt`, a client the caller runs.
    """
    people: list[Channel] = []
    rooms: list[Channel] = []
    attempts, backoff = settings.attempts, settings.retry_backoff_s
    for name in dict.fromkeys(settings.channels):  # each once, in the configured order
        if name == "local":
            if mqtt is None:
                raise NotifyConfigError("the local notify channel needs an MQTT client")
            people.append(LocalChannel(mqtt))
        elif name == "fcm":
            assert settings.fcm_service_account_file is not None  # NotifySettings checks it
            people.append(FcmChannel(settings.fcm_service_account_file, settings.fcm_project_id, settings.timeout_s))
        elif name == "email":
            assert settings.smtp_from is not None
            people.append(EmailChannel(
                settings.smtp_host, settings.smtp_port, settings.smtp_from, starttls=settings.smtp_starttls,
                implicit_tls=settings.smtp_ssl, username=settings.smtp_username, password=settings.smtp_password,
                ca_file=settings.smtp_ca_file, timeout_s=settings.timeout_s, attempts=attempts, backoff_s=backoff))
        elif name == "sms":
            assert settings.sms_webhook_url is not None
            people.append(SmsChannel(settings.sms_webhook_url, settings.sms_token, settings.sms_sender,
                                     timeout_s=settings.timeout_s, attempts=attempts, backoff_s=backoff))
        elif name == "slack":
            assert settings.slack_webhook_url is not None
            rooms.append(SlackChannel(settings.slack_webhook_url, timeout_s=settings.timeout_s, attempts=attempts,
                                      backoff_s=backoff))
    return people, rooms


def build_notifier(settings: NotifySettings, mqtt: MqttClient | None) -> Notifier:
    """The Notifier for `settings`, with its admins."""
    people, rooms = build_channels(settings, mqtt)
    # A channel's own retries fit inside this: attempts x (timeout + backoff), with room to spare.
    deadline = settings.attempts * (settings.timeout_s + settings.retry_backoff_s * 4) + 5
    return Notifier(people, rooms=rooms, admins=settings.admins, deadline_s=deadline)
