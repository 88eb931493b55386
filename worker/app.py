"""The Celery application factory: queues ``training`` and ``generation``.

Production uses Redis (``FOUNDRY_BROKER_URL=redis://...``). The embedded default needs no
server: kombu's SQLAlchemy transport on a SQLite file beside the database. That transport
hands its transport options to ``create_engine`` (so ``polling_interval`` there crashes it);
the poll interval is set on a subclass registered under its own URL scheme instead.

Importing this module does nothing: no settings are read, no directory is created and kombu's
transport table is left alone until ``create_app`` is called.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as SQLAlchemyChannel
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport
from sqlalchemy.exc import IntegrityError

from foundry.config import Settings

TRAINING_QUEUE = "training"
GENERATION_QUEUE = "generation"
_EMBEDDED_SCHEME = "foundrysqla"


class EmbeddedBrokerChannel(SQLAlchemyChannel):
    """kombu's channel, safe when two processes create a queue's row at once.

    kombu guards the create with an in-process lock only: a worker and the API starting together
    both insert ``generation`` and the loser's UNIQUE violation escapes (into the worker's consumer,
    which then stops). Losing that race means the row exists, so it is read instead.
    """

    def _get_or_create(self, queue):
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()


class EmbeddedBrokerTransport(SQLAlchemyTransport):
    """kombu's SQLAlchemy transport with the foundry's poll interval (set per app below)."""

    Channel = EmbeddedBrokerChannel
    polling_interval = 0.5


def broker_url(settings: Settings) -> str:
    url = settings.resolved_broker_url
    if url.startswith("sqla+"):
        TRANSPORT_ALIASES.setdefault(_EMBEDDED_SCHEME, f"{__name__}:EmbeddedBrokerTransport")
        EmbeddedBrokerTransport.polling_interval = settings.broker_polling_interval
        return f"{_EMBEDDED_SCHEME}+{url.removeprefix('sqla+')}"
    return url


def create_app(settings: Settings) -> Celery:
    """A Celery app on ``settings``' broker; the worker's tasks are registered when it starts."""
    if settings.resolved_broker_url.startswith("sqla+sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("foundry", broker=broker_url(settings), include=["worker.tasks"])
    app.conf.update(
        task_queues=(Queue(TRAINING_QUEUE), Queue(GENERATION_QUEUE)),
        task_default_queue=TRAINING_QUEUE,
        task_routes={"foundry.training.*": {"queue": TRAINING_QUEUE},
                     "foundry.generation.*": {"queue": GENERATION_QUEUE}},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A job survives its worker: the message is acknowledged only when the task returns,
        # and tasks are idempotent (a job is claimed once), so redelivery is always safe.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app
