"""``/api/entities``: what was discovered, and which entities the pipeline tracks."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from energy_pipeline.api.errors import ERROR_RESPONSES, ApiError
from energy_pipeline.api.schemas import EntitiesOut, EntityOut, RoleName, TrackedIn
from energy_pipeline.api.state import ApiState, api_state, jsonable
from energy_pipeline.storage.documents import EntityRecord

router = APIRouter(prefix="/api/entities", tags=["entities"], responses=ERROR_RESPONSES)


def entity_out(record: EntityRecord) -> EntityOut:
    return EntityOut(**jsonable(record.to_dict()))


@router.get("", response_model=EntitiesOut, summary="List entities")
def list_entities(role: RoleName | None = Query(default=None, description="Only this role"),
                  tracked: bool | None = Query(default=None, description="Only tracked (true) or untracked"),
                  state: ApiState = Depends(api_state)) -> EntitiesOut:
    """Entities as discovered from Home Assistant's energy preferences, ordered by id."""
    return EntitiesOut(entities=[entity_out(r) for r in state.documents.list_entities(role=role, tracked=tracked)])


@router.put("/{entity_id}", response_model=EntityOut, summary="Track or untrack an entity")
def set_tracked(entity_id: str, body: TrackedIn, state: ApiState = Depends(api_state)) -> EntityOut:
    """Untracked entities are skipped by the next statistics run and the live stream (the choice survives
    rediscovery)."""
    record = state.documents.set_tracked(entity_id, body.tracked)
    if record is None:
        raise ApiError(404, "unknown_entity", f"unknown entity {entity_id!r} (GET /api/entities lists the known ones)")
    return entity_out(record)
