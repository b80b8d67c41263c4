"""Settings of an ``openlineage`` Source: none beyond the common ones.

```yaml
apiVersion: accord.dev/v1
kind: Source
metadata: {name: lineage, domain: data}
spec:
  type: openlineage    # tools send RunEvents to POST /api/v1/sources/lineage/openlineage
```
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["OpenLineageConfig"]


class OpenLineageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
