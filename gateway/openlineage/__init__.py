"""OpenLineage both ways: the emitter of Accord's run state changes (``out``) and the
receiver of RunEvents sent by other tools (``receive``). See docs/openlineage.md."""

from .out import Emitter, build_transport, run_id

__all__ = ["Emitter", "build_transport", "run_id"]
