"""Generate the published JSON Schemas: `python -m line_contracts.schemas [OUT_DIR]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from line_contracts.events import DeadLetterRecord, DefectEvent
from line_contracts.frame import FrameHeaders
from line_contracts.model import ModelMetadata

SCHEMAS = {
    "result-event.schema.json": DefectEvent,
    "dead-letter-record.schema.json": DeadLetterRecord,
    "frame-headers.schema.json": FrameHeaders,
    "model-metadata.schema.json": ModelMetadata,
}
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def render(model) -> str:
    """The committed text of one model's JSON Schema (serialisation mode: what is on the wire)."""
    return json.dumps(model.model_json_schema(mode="serialization"), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name, model in SCHEMAS.items():
        (out / name).write_text(render(model))
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
