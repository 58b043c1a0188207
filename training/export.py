"""Export a trained Keras scorer as a versioned model folder (line_contracts.model contract).

The exported signature takes raw uint8 grayscale frames [N, H, W, 1] at the camera size and
returns one float32 defect score per frame. Resizing to the network's working resolution and
all normalisation happen inside, so training and serving cannot disagree. The LiteRT twin is
converted from the very SavedModel written here. The version is staged in a hidden folder,
metadata.json is written last, and the folder is renamed into place, so a worker polling the
base folder never sees a half-written version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from line_contracts.model import (
    INPUT_KEY,
    METADATA_FILE,
    OUTPUT_KEY,
    SAVED_MODEL_DIR,
    SIGNATURE_NAME,
    TFLITE_FILE,
    ModelMetadata,
)
from training.frames import to_working_size

# SavedModel-only signature: uint8 frames -> DEFECT_MAP_KEY float32 [N, h', w'] cell scores in 0..1.
DEFECT_MAP_SIGNATURE = "defect_map"
DEFECT_MAP_KEY = "defect_map"


class ExportError(RuntimeError):
    """The model could not be exported (bad target folder, conversion failure)."""


def next_version(base: Path) -> int:
    """The next free integer version under `base` (1 when there is none)."""
    versions = [int(p.name) for p in Path(base).glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def serving_module(scorer: Any, input_size: tuple[int, int], model_size: tuple[int, int], mapper: Any = None) -> Any:
    """Wrap `scorer` (float 0..255 [N,h,w,1] -> [N] or [N,1]) in the uint8 serving signature.

    With a `mapper` (pixels -> [N,h',w',1] defect map) the module also gets `locate`, saved as the
    DEFECT_MAP_SIGNATURE: the cells that made the decision, also for image-level training.
    """
    import tensorflow as tf

    height, width = input_size

    class DefectScorer(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="defect_scorer")
            self.scorer = scorer

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 1], tf.uint8, name=INPUT_KEY)])
        def serve(self, frames: Any) -> dict[str, Any]:
            # The same resize training prepared its images with (LiteRT builtins only).
            pixels = to_working_size(tf.cast(frames, tf.float32), tuple(model_size))
            scores = self.scorer(pixels, training=False)
            return {OUTPUT_KEY: tf.reshape(tf.cast(scores, tf.float32), [-1])}

    module = DefectScorer()
    if mapper is not None:
        module.mapper = mapper

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 1], tf.uint8, name=INPUT_KEY)])
        def locate(frames: Any) -> dict[str, Any]:
            pixels = to_working_size(tf.cast(frames, tf.float32), tuple(model_size))
            return {DEFECT_MAP_KEY: tf.cast(mapper(pixels, training=False), tf.float32)[..., 0]}

        module.locate = locate
    return module


def preflight(scorer: Any, input_size: tuple[int, int], model_size: tuple[int, int], workdir: Path) -> float:
    """Export an untrained twin and convert it to LiteRT (seconds); ExportError naming the cause if a backend fails."""
    import tensorflow as tf

    started = time.monotonic()
    target = Path(workdir) / f".preflight-{os.getpid()}"
    shutil.rmtree(target, ignore_errors=True)
    try:
        module = serving_module(scorer, tuple(input_size), tuple(model_size))
        tf.saved_model.save(module, str(target / SAVED_MODEL_DIR), signatures={SIGNATURE_NAME: module.serve.get_concrete_function()})
        convert_to_litert(target / SAVED_MODEL_DIR)
    except ExportError:
        raise
    except Exception as exc:  # SavedModel tracing errors come in many types
        raise ExportError(f"the model for {input_size[0]}x{input_size[1]} frames (working size {model_size[0]}x{model_size[1]}) "
                          f"cannot be exported as a SavedModel: {exc}") from exc
    finally:
        shutil.rmtree(target, ignore_errors=True)
    return time.monotonic() - started


def export_version(
    scorer: Any,
    base: Path,
    *,
    name: str,
    input_size: tuple[int, int],
    model_size: tuple[int, int] | None = None,
    threshold: float,
    version: int | None = None,
    threshold_rule: str = "",
    backbone: str = "",
    architecture: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    litert: bool = True,
    extra_files: dict[str, str] | None = None,
    fit_to_serve: bool = True,
    quality_gate: dict[str, Any] | None = None,
    log: Any = print,
    mapper: Any = None,
) -> Path:
    """Write base/<version>/ (saved_model/, model.tflite, metadata.json) and return its path."""
    import tensorflow as tf

    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    version = next_version(base) if version is None else int(version)
    if version < 1:
        raise ExportError(f"version must be a positive integer, got {version}")
    final = base / str(version)
    if final.exists():
        raise ExportError(f"{final} already exists; pick another --version or remove that folder")
    model_size = tuple(model_size or input_size)
    staging = base / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        module = serving_module(scorer, tuple(input_size), model_size, mapper)
        signatures = {SIGNATURE_NAME: module.serve.get_concrete_function()}
        if mapper is not None:
            signatures[DEFECT_MAP_SIGNATURE] = module.locate.get_concrete_function()
        tf.saved_model.save(module, str(staging / SAVED_MODEL_DIR), signatures=signatures)
        warnings: list[str] = []
        twin = False
        if litert:
            try:
                (staging / TFLITE_FILE).write_bytes(convert_to_litert(staging / SAVED_MODEL_DIR))
                twin = True
            except ExportError as exc:
                # The trained weights are in the SavedModel already: keep them, say so loudly.
                warnings.append(f"no LiteRT twin: {exc}")
                log(f"WARNING: {exc}; the SavedModel is written anyway (metadata litert_twin=false); serve it with backend tensorflow")
        for file_name, text in (extra_files or {}).items():
            (staging / file_name).write_text(text)
        metadata = ModelMetadata(
            name=name,
            version=str(version),
            input_height=int(input_size[0]),
            input_width=int(input_size[1]),
            threshold=float(np.clip(threshold, 0.0, 1.0)),
            threshold_rule=threshold_rule,
            backbone=backbone,
            architecture={**(architecture or {}), "model_height": model_size[0], "model_width": model_size[1],
                          "defect_map_signature": DEFECT_MAP_SIGNATURE if mapper is not None else None},
            training_data=training_data or {},
            metrics=metrics or {},
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            fit_to_serve=fit_to_serve,
            quality_gate=quality_gate or {},
            litert_twin=twin,
            export_warnings=warnings,
        )
        # Written last: its presence marks the version complete (line_contracts.model).
        (staging / METADATA_FILE).write_text(json.dumps(metadata.model_dump(), indent=2, default=_jsonable))
        os.replace(staging, final)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def convert_to_litert(saved_model_dir: Path) -> bytes:
    """Convert the serving signature of a SavedModel to a LiteRT flatbuffer (float32 builtins)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE_NAME])
    try:
        return converter.convert()
    except Exception as exc:  # the converter raises many unrelated types
        raise ExportError(f"LiteRT conversion of {saved_model_dir} failed: {exc}") from exc


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for numpy scalars and paths in metadata dictionaries."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
