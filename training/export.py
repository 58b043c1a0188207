"""Export a trained Keras scorer as a versioned model folder (line_contracts.model contract).

The exported signature takes raw uint8 grayscale frames [N, H, W, 1] at the camera size and
returns one float32 defect score per frame; a model with a defect map (segdec) also returns the
map (MAP_OUTPUT_KEY) from the same forward pass, so the worker gets regions at no second
inference, in the SavedModel and in its LiteRT twin alike. Resizing to the network's working resolution and
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
    MAP_OUTPUT_KEY,
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


def serving_module(scorer: Any, input_size: tuple[int, int], model_size: tuple[int, int], mapper: Any = None,
                   downscale: str = "area") -> Any:
    """Wrap `scorer` (float 0..255 [N,h,w,C] -> [N] or [N,1]) in the uint8 serving signature.

    With a `mapper` (pixels -> [N,h',w',1] defect map) `serve` returns the map as MAP_OUTPUT_KEY too,
    and the module gets `locate`, saved as the DEFECT_MAP_SIGNATURE (map only, for training/localise.py):
    the cells that made the decision, also for image-level training.
    """
    import tensorflow as tf

    height, width = input_size
    joint = _joint_model(scorer, mapper)

    class DefectScorer(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="defect_scorer")
            self.scorer = scorer
            if joint is not None:
                self.joint = joint

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 1], tf.uint8, name=INPUT_KEY)])
        def serve(self, frames: Any) -> dict[str, Any]:
            # The same resize training prepared its images with (LiteRT builtins only).
            pixels = to_working_size(tf.cast(frames, tf.float32), tuple(model_size), downscale)
            if mapper is None:
                scores = self.scorer(pixels, training=False)
                return {OUTPUT_KEY: tf.reshape(tf.cast(scores, tf.float32), [-1])}
            if joint is not None:
                scores, cells = joint(pixels, training=False)
            else:  # scorer and mapper are separate graphs: two passes, still one call for the worker
                scores, cells = self.scorer(pixels, training=False), mapper(pixels, training=False)
            return {OUTPUT_KEY: tf.reshape(tf.cast(scores, tf.float32), [-1]),
                    MAP_OUTPUT_KEY: tf.clip_by_value(tf.cast(cells, tf.float32)[..., 0], 0.0, 1.0)}

    module = DefectScorer()
    if mapper is not None:
        module.mapper = mapper

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, 1], tf.uint8, name=INPUT_KEY)])
        def locate(frames: Any) -> dict[str, Any]:
            pixels = to_working_size(tf.cast(frames, tf.float32), tuple(model_size), downscale)
            return {DEFECT_MAP_KEY: tf.cast(mapper(pixels, training=False), tf.float32)[..., 0]}

        module.locate = locate
    return module


def _joint_model(scorer: Any, mapper: Any) -> Any:
    """One Keras model giving [score, map] when scorer and mapper are heads of one graph, else None.

    Calling the two models one after the other would run the shared backbone twice; the joint
    model runs it once, which is what keeps regions cheap in the worker.
    """
    if mapper is None:
        return None
    try:
        import tf_keras as keras

        if len(scorer.inputs) != 1 or len(mapper.inputs) != 1 or scorer.inputs[0] is not mapper.inputs[0]:
            return None
        return keras.Model(scorer.inputs[0], [scorer.outputs[0], mapper.outputs[0]], name="score_and_map")
    except (AttributeError, TypeError, ValueError):  # not functional Keras models: fall back to two calls
        return None


def preflight(scorer: Any, input_size: tuple[int, int], model_size: tuple[int, int], workdir: Path,
              mapper: Any = None, downscale: str = "area") -> float:
    """Export an untrained twin (with its map output) and convert it to LiteRT (seconds); ExportError naming the cause."""
    import tensorflow as tf

    started = time.monotonic()
    target = Path(workdir) / f".preflight-{os.getpid()}"
    shutil.rmtree(target, ignore_errors=True)
    try:
        module = serving_module(scorer, tuple(input_size), tuple(model_size), mapper, downscale)
        tf.saved_model.save(module, str(target / SAVED_MODEL_DIR), signatures={SIGNATURE_NAME: module.serve.get_concrete_function()})
        convert_to_litert(target / SAVED_MODEL_DIR, with_map=mapper is not None)
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
    variant: str = "exact",
    variants: dict[str, Any] | None = None,
    variant_dirs: dict[str, Path] | None = None,
    warnings: list[str] | None = None,
) -> Path:
    """Write base/<version>/ (saved_model/, model.tflite, metadata.json) and return its path.

    `variant_dirs` ({"fast": complete model folder}) are moved into the version before its
    metadata.json is written, so a version is complete with its variants or not at all.
    """
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
        # The resize is part of the model's contract, so it comes from the recorded architecture.
        module = serving_module(scorer, tuple(input_size), model_size, mapper, (architecture or {}).get("downscale", "area"))
        signatures = {SIGNATURE_NAME: module.serve.get_concrete_function()}
        if mapper is not None:
            signatures[DEFECT_MAP_SIGNATURE] = module.locate.get_concrete_function()
        tf.saved_model.save(module, str(staging / SAVED_MODEL_DIR), signatures=signatures)
        warnings = list(warnings or [])
        twin = False
        if litert:
            try:
                (staging / TFLITE_FILE).write_bytes(convert_to_litert(staging / SAVED_MODEL_DIR, with_map=mapper is not None))
                twin = True
            except ExportError as exc:
                # The trained weights are in the SavedModel already: keep them, say so loudly.
                warnings.append(f"no LiteRT twin: {exc}")
                log(f"WARNING: {exc}; the SavedModel is written anyway (metadata litert_twin=false); serve it with backend tensorflow")
        for file_name, text in (extra_files or {}).items():
            (staging / file_name).write_text(text)
        for folder_name, source in (variant_dirs or {}).items():
            shutil.move(str(source), str(staging / folder_name))
        metadata = ModelMetadata(
            name=name,
            version=str(version),
            input_height=int(input_size[0]),
            input_width=int(input_size[1]),
            threshold=float(np.clip(threshold, 0.0, 1.0)),
            threshold_rule=threshold_rule,
            backbone=backbone,
            architecture={**(architecture or {}), "model_height": model_size[0], "model_width": model_size[1],
                          "defect_map_signature": DEFECT_MAP_SIGNATURE if mapper is not None else None,
                          "defect_map_output": mapper is not None},
            training_data=training_data or {},
            metrics=metrics or {},
            created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            fit_to_serve=fit_to_serve,
            quality_gate=quality_gate or {},
            litert_twin=twin,
            export_warnings=warnings,
            variant=variant,
            variants=variants or {},
        )
        # Written last: its presence marks the version complete (line_contracts.model).
        (staging / METADATA_FILE).write_text(json.dumps(metadata.model_dump(), indent=2, default=_jsonable))
        os.replace(staging, final)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def convert_to_litert(saved_model_dir: Path, with_map: bool = False) -> bytes:
    """Convert the serving signature of a SavedModel to a LiteRT flatbuffer (float32 builtins).

    The twin must give what the SavedModel gives: its signature's outputs are checked (the map too, `with_map`).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE_NAME])
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # the converter raises many unrelated types
        raise ExportError(f"LiteRT conversion of {saved_model_dir} failed: {exc}") from exc
    from ai_edge_litert.interpreter import Interpreter

    outputs = Interpreter(model_content=flatbuffer).get_signature_runner(SIGNATURE_NAME).get_output_details()
    expected = {OUTPUT_KEY, MAP_OUTPUT_KEY} if with_map else {OUTPUT_KEY}
    if set(outputs) != expected:
        raise ExportError(f"the LiteRT twin of {saved_model_dir} has outputs {sorted(outputs)}, expected {sorted(expected)}")
    return flatbuffer


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for numpy scalars and paths in metadata dictionaries."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
