"""The embedded broker's race on a queue's first use must not turn an accepted request into a 500."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from foundry.config import Settings
from worker import queue
from worker.app import GENERATION_QUEUE


def test_a_send_that_loses_the_queue_creation_race_is_sent_again_by_a_fresh_client(tmp_path, monkeypatch):
    settings = Settings(var_dir=tmp_path)  # the embedded SQLite broker
    made = []
    real_create = queue.create_app

    def create(settings):
        app = real_create(settings)
        made.append(app)
        if len(made) == 1:  # this client loses the race: a worker created the queue's row first
            def lose(*_args, **_kwargs):
                raise IntegrityError("INSERT INTO kombu_queue (name) VALUES (?)", ("generation",),
                                     Exception("UNIQUE constraint failed: kombu_queue.name"))
            app.send_task = lose
        return app

    monkeypatch.setattr(queue, "create_app", create)
    monkeypatch.setattr(queue, "_apps", {})
    generation_id = uuid.uuid4()
    queue.enqueue_generation(generation_id, settings)
    assert len(made) == 2 and queue._apps[settings.resolved_broker_url] is made[1]
    with made[1].connection_for_read() as connection:
        waiting = connection.SimpleQueue(GENERATION_QUEUE)
        message = waiting.get(timeout=10)
        assert message.headers["task"] == queue.RUN_GENERATION
        assert message.payload[0] == [str(generation_id)]
        message.ack()
        waiting.close()
