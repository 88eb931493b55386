"""The embedded broker's race on a queue's first use: the API and a worker starting together both create
the queue's row. The loser must read the row, not raise (a worker's consumer stops on that error and its
queue is never served; an API request would answer 500)."""

from __future__ import annotations

import uuid

import pytest

from foundry.config import Settings
from worker import queue
from worker.app import GENERATION_QUEUE, EmbeddedBrokerChannel, create_app


class _BlindQuery:
    """A query whose ``first()`` sees no row: the moment before another process's insert committed."""

    def __init__(self, query, blind: list):
        self._query, self._blind = query, blind

    def filter(self, *conditions):
        return _BlindQuery(self._query.filter(*conditions), self._blind)

    def first(self):
        if self._blind:
            self._blind.pop()
            return None
        return self._query.first()

    def __getattr__(self, name):
        return getattr(self._query, name)


def test_a_queue_row_made_by_another_process_meanwhile_is_read_and_messages_still_flow(tmp_path, monkeypatch):
    settings = Settings(var_dir=tmp_path)  # the embedded SQLite broker
    app = create_app(settings)
    with app.connection_for_write() as other:  # the other process wins: the row exists
        other.SimpleQueue(GENERATION_QUEUE).close()
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, EmbeddedBrokerChannel)
        real_query = channel.session.query
        blind = [1, 1]  # kombu looks twice (before and inside its in-process lock) before it inserts
        monkeypatch.setattr(channel.session, "query", lambda *entities: _BlindQuery(real_query(*entities), blind))
        row = channel._get_or_create(GENERATION_QUEUE)
        assert not blind and row.name == GENERATION_QUEUE
        monkeypatch.undo()
        rows = channel.session.query(channel.queue_cls).filter(channel.queue_cls.name == GENERATION_QUEUE).all()
        assert len(rows) == 1

    monkeypatch.setattr(queue, "_apps", {})
    generation_id = uuid.uuid4()
    queue.enqueue_generation(generation_id, settings)
    with app.connection_for_read() as connection:
        waiting = connection.SimpleQueue(GENERATION_QUEUE)
        message = waiting.get(timeout=10)
        assert message.headers["task"] == queue.RUN_GENERATION
        assert message.payload[0] == [str(generation_id)]
        message.ack()
        waiting.close()


def test_any_other_integrity_failure_still_raises(tmp_path, monkeypatch):
    from kombu.transport.sqlalchemy import Channel as KombuChannel
    from sqlalchemy.exc import IntegrityError, NoResultFound

    def broken(self, name):
        raise IntegrityError("INSERT INTO kombu_queue (name) VALUES (?)", (name,), Exception("disk says no"))

    monkeypatch.setattr(KombuChannel, "_get_or_create", broken)
    app = create_app(Settings(var_dir=tmp_path))
    with app.connection_for_write() as connection, pytest.raises(NoResultFound):
        # no row appeared, so reading it finds none: the failure is reported, not hidden
        connection.default_channel._get_or_create("never-made")
