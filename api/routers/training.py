"""Training job and model registry routes (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import AdminPrincipal, SessionDep, SettingsDep
from api.errors import error_responses
from api.params import Offset, PageLimit
from foundry.training_jobs import service as job_service
from foundry.training_jobs.schemas import JobStatus, TrainingJobCreate, TrainingJobRead
from foundry.usecases.training import submit_training_job
from worker.queue import CeleryQueue

router = APIRouter(prefix="/v1", tags=["training"])


@router.post("/training-jobs", status_code=status.HTTP_202_ACCEPTED, response_model=TrainingJobRead,
             responses=error_responses(404, 422, s404="The snapshot, base model or tenant does not exist.",
                                       s422="Invalid recipe settings (invalid_recipe) or an unknown preset "
                                            "(unknown_preset)."))
def create_training_job(principal: AdminPrincipal, session: SessionDep, settings: SettingsDep,
                        body: TrainingJobCreate) -> TrainingJobRead:
    job = submit_training_job(session=session, queue=CeleryQueue(settings), recipe_kind=body.recipe,
                              snapshot_id=body.snapshot_id, name=body.name, base_model_id=body.base_model_id,
                              overrides=body.settings, preset=body.preset, requested_by=f"api:{principal}",
                              owner_tenant_id=body.tenant_id, style_mode=settings.style_names)
    return TrainingJobRead.model_validate(job)


@router.get("/training-jobs", response_model=list[TrainingJobRead])
def list_training_jobs(_principal: AdminPrincipal, session: SessionDep,
                       status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
                       tenant_id: Annotated[uuid.UUID | None, Query(description="Only this tenant's jobs.")] = None,
                       limit: PageLimit = 50, offset: Offset = 0) -> list[TrainingJobRead]:
    jobs = job_service.list_jobs(session=session, status=status, tenant_id=tenant_id, limit=limit, offset=offset)
    return [job_read(session, j) for j in jobs]


@router.get("/training-jobs/{job_id}", response_model=TrainingJobRead)
def get_training_job(_principal: AdminPrincipal, session: SessionDep, job_id: uuid.UUID) -> TrainingJobRead:
    return job_read(session, job_service.get_job(session=session, job_id=job_id))


def job_read(session, job) -> TrainingJobRead:
    return TrainingJobRead.model_validate(job).model_copy(update={
        "queue_position": job_service.queue_position(session=session, job=job)})


@router.post("/training-jobs/{job_id}/cancel", response_model=TrainingJobRead,
             responses=error_responses(409, s409="The job already finished (training_job_finished)."))
def cancel_training_job(_principal: AdminPrincipal, session: SessionDep, job_id: uuid.UUID) -> TrainingJobRead:
    with session.begin():
        return TrainingJobRead.model_validate(job_service.request_cancel(session=session, job_id=job_id))
