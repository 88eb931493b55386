"""The queue as the use cases see it: enqueue committed work by id (``worker.queue`` implements it)."""

from __future__ import annotations

import uuid
from typing import Protocol


class TaskQueue(Protocol):
    def training_job(self, job_id: uuid.UUID) -> None: ...

    def generation(self, generation_id: uuid.UUID) -> None: ...

    def index_build(self, model_id: uuid.UUID) -> None: ...
