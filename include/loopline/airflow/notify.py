"""Notifications through Airflow's notifier mechanism: e-mail (the SMTP provider's
``SmtpNotifier``, connection ``smtp_default`` unless the spec names another) and a generic
webhook (connection ``loopline_webhook``: its host is the URL, its password an optional bearer
token). Per model, the spec's ``notify`` section says who hears about which events:

    notify:
      email: [ml-oncall@example.com]
      webhook: true
      on: [drift, retrain_triggered, gate_rejected, rollback, task_failure]

A notification that cannot be sent is logged, never fails the step it reports on.
"""

from __future__ import annotations

import json
import logging
import urllib.request

from airflow.sdk import BaseHook, BaseNotifier, Context

from loopline.core.spec import ModelSpec

log = logging.getLogger(__name__)
WEBHOOK_CONNECTION = "loopline_webhook"


class WebhookNotifier(BaseNotifier):
    """POST a JSON message to the URL of an HTTP connection."""

    template_fields = ("message",)

    def __init__(self, message: str, event: str, model: str, conn_id: str = WEBHOOK_CONNECTION):
        super().__init__()
        self.message, self.event, self.model, self.conn_id = message, event, model, conn_id

    def notify(self, context: Context) -> None:
        conn = BaseHook.get_connection(self.conn_id)
        url = conn.host if "://" in (conn.host or "") else conn.get_uri()
        body = {
            "event": self.event,
            "model": self.model,
            "text": self.message,
            "dag_id": context["dag"].dag_id,
            "run_id": context.get("run_id"),
            "task_id": context["ti"].task_id if context.get("ti") else None,
        }
        headers = {"Content-Type": "application/json"}
        if conn.password:
            headers["Authorization"] = f"Bearer {conn.password}"
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def notifiers(spec: ModelSpec, event: str, message: str) -> list[BaseNotifier]:
    """The notifiers the spec asks for on ``event``, with this message."""
    settings = spec.notify
    if event not in settings.on:
        return []
    found: list[BaseNotifier] = []
    if settings.email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        found.append(
            SmtpNotifier(
                to=list(settings.email),
                subject=f"[loopline] {spec.name}: {event.replace('_', ' ')}",
                html_content=f"<p>{message}</p><p>{{{{ dag.dag_id }}}}, run {{{{ run_id }}}}</p>",
                smtp_conn_id=settings.smtp_connection,
            )
        )
    if settings.webhook:
        found.append(WebhookNotifier(message, event, spec.name, settings.webhook_connection))
    return found


def send(spec: ModelSpec, event: str, message: str, context: Context) -> int:
    """Send ``event`` to whoever the spec names; returns how many notifications went out."""
    sent = 0
    for notifier in notifiers(spec, event, message):
        try:
            notifier(context)
            sent += 1
        except Exception:  # a notification must never fail the step it reports on
            log.exception("model %s: could not send the %s notification", spec.name, event)
    return sent


def on_failure(spec: ModelSpec):
    """A task-level failure callback for the spec's ``task_failure`` notifications, or None."""
    if "task_failure" not in spec.notify.on or not (spec.notify.email or spec.notify.webhook):
        return None

    def callback(context: Context) -> None:
        ti = context.get("ti")
        error = context.get("exception")
        message = f"task {ti.task_id if ti else '?'} failed: {error}"
        send(spec, "task_failure", message, context)

    return callback
