"""Asking for a model's attribution index: check the model, then queue the build on a training worker.

The build itself takes one gradient per training image (``worker.attribution.build_index``): minutes,
never part of a request.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from foundry.models_registry import service as registry_service
from foundry.usecases.queue import TaskQueue


def request_index_build(*, session: Session, queue: TaskQueue, model_id: uuid.UUID) -> None:
    registry_service.get_model(session=session, model_id=model_id)  # 404 before anything is queued
    queue.index_build(model_id)
