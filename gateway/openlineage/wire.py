"""The OpenLineage RunEvent as Accord receives it (``POST /api/v1/sources/{name}/openlineage``).

The fields Accord reads are checked the way the OpenLineage JSON schema (2-0-2) checks
them: ``eventTime`` a date-time with its offset, ``producer`` and ``schemaURL`` URIs,
``run.runId`` a UUID, ``job.namespace``/``job.name`` and each dataset's ``namespace``/
``name`` strings, ``eventType`` one of the six. Facets stay open (any facet may come,
and is kept out of the store), except the parent run facet, which Accord reads.
An event that fails any of this is refused whole with 422 naming the field.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "EventType",
    "OpenLineageDataset",
    "OpenLineageJob",
    "OpenLineageRun",
    "OpenLineageRunEvent",
    "ParentFacet",
    "RunFacets",
]

EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]


class _Open(BaseModel):
    # Everything the spec allows beyond what Accord reads is accepted (and not stored).
    model_config = ConfigDict(extra="allow")


def _uri(value: str) -> str:
    scheme, sep, _rest = value.partition(":")
    if not sep or not scheme or not scheme[0].isalpha():
        raise ValueError("must be a URI (with a scheme, e.g. https://...)")
    return value


class ParentRun(_Open):
    runId: UUID


class ParentJob(_Open):
    namespace: str
    name: str


class ParentFacet(_Open):
    run: ParentRun
    job: ParentJob


class RunFacets(_Open):
    parent: ParentFacet | None = None


class OpenLineageRun(_Open):
    runId: UUID
    facets: RunFacets = Field(default_factory=RunFacets)

    @property
    def parent(self) -> ParentFacet | None:
        return self.facets.parent

    def facet(self, name: str) -> Any:
        """A run facet Accord does not model, as sent (None when absent)."""
        return (self.facets.model_extra or {}).get(name)


class OpenLineageJob(_Open):
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    facets: dict[str, Any] = Field(default_factory=dict)


class OpenLineageDataset(_Open):
    namespace: str = Field(min_length=1)
    name: str = Field(min_length=1)
    facets: dict[str, Any] | None = None


class OpenLineageRunEvent(_Open):
    """One OpenLineage RunEvent (the spec's ``RunEvent``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "eventType": "COMPLETE",
                    "eventTime": "2026-05-01T03:05:00Z",
                    "producer": "https://example.com/my-pipeline",
                    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                    "run": {"runId": "0190d3a8-7c2e-7f4b-9a55-2f6d3c1b8e01"},
                    "job": {"namespace": "dbt", "name": "analytics.orders"},
                    "inputs": [{"namespace": "s3://raw", "name": "orders.csv"}],
                    "outputs": [{"namespace": "postgres://db:5432", "name": "dw.orders"}],
                }
            ]
        },
    )

    eventType: EventType | None = None
    eventTime: AwareDatetime
    producer: str
    schemaURL: str
    run: OpenLineageRun
    job: OpenLineageJob
    inputs: list[OpenLineageDataset] = Field(default_factory=list)
    outputs: list[OpenLineageDataset] = Field(default_factory=list)

    @field_validator("producer", "schemaURL")
    @classmethod
    def _uris(cls, v: str) -> str:
        return _uri(v)
