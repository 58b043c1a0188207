"""Open an exported model version with TensorFlow or LiteRT behind one `predict` call.

`judge` returns the scores and, for a model whose serving signature has the optional
MAP_OUTPUT_KEY output, the defect maps of the same forward pass (None for older models).

The worker imports this module; TensorFlow is imported lazily so that a LiteRT worker never
pays its start-up time and memory.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

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
from line_runtime.cpus import available_cpus

BACKENDS = ("auto", "tensorflow", "litert", "null")

# A backend runner: (frames [N,H,W,1] uint8, want_maps) -> (scores [N], maps [N,h',w'] or None).
Runner = Callable[[np.ndarray, bool], tuple[np.ndarray, Optional[np.ndarray]]]


class ModelLoadError(RuntimeError):
    """A model folder is missing, incomplete or unreadable."""


def latest_version(base: Path) -> Optional[Path]:
    """The highest integer sub-folder of `base` holding metadata.json; `base` itself if it is a version."""
    base = Path(base)
    if (base / METADATA_FILE).is_file():
        return base
    if not base.is_dir():
        return None
    versions = [p for p in base.iterdir() if p.is_dir() and p.name.isdigit() and (p / METADATA_FILE).is_file()]
    return max(versions, key=lambda p: int(p.name), default=None)


def gpu_visible() -> bool:
    """True when TensorFlow can see a GPU (checks device files first, so CPU hosts skip importing TF)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


class LoadedModel:
    """One opened model version: `predict` maps uint8 [N,H,W,1] frames to float32 [N] scores."""

    def __init__(self, metadata: ModelMetadata, backend: str, version_dir: Path, run: Runner, has_map: bool = False):
        self.metadata = metadata
        self.backend = backend
        self.version_dir = version_dir
        self.has_map = has_map  # the serving signature returns MAP_OUTPUT_KEY too
        self._run = run

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the model expects."""
        return self.metadata.input_height, self.metadata.input_width

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """Score a batch of uint8 frames [N,H,W,1] (or [N,H,W]); returns float32 [N]."""
        return self.judge(frames, want_maps=False)[0]

    def judge(self, frames: np.ndarray, want_maps: bool = True) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Scores float32 [N] and defect maps float32 [N,h',w'] in 0..1 from one call (maps None without a map output)."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[..., np.newaxis]
        height, width = self.input_size
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (height, width, 1):
            raise ValueError(
                f"model {self.metadata.name} v{self.metadata.version} expects uint8 frames of shape "
                f"[N, {height}, {width}, 1], got {frames.dtype} {frames.shape}"
            )
        want_maps = want_maps and self.has_map
        if frames.shape[0] == 0:
            return np.zeros((0,), np.float32), None
        scores, maps = self._run(np.ascontiguousarray(frames), want_maps)
        scores = np.asarray(scores, np.float32).reshape(-1)
        if not want_maps or maps is None:
            return scores, None
        maps = np.asarray(maps, np.float32)
        if maps.ndim == 4 and maps.shape[-1] == 1:
            maps = maps[..., 0]
        if maps.ndim != 3 or maps.shape[0] != frames.shape[0]:
            raise ValueError(f"model {self.metadata.name} v{self.metadata.version} returned defect maps of shape "
                             f"{maps.shape} for {frames.shape[0]} frames (expected [N, h', w'])")
        return scores, maps

    def warmup(self, batch_sizes: Iterable[int]) -> None:
        """Run each batch size once so the first real batch does not pay tracing/allocation."""
        height, width = self.input_size
        for size in batch_sizes:
            frames = np.full((int(size), height, width, 1), 128, np.uint8)
            self.judge(frames)
            if self.has_map and self.backend == "tensorflow":  # scores-only is a second traced function
                self.predict(frames)


def read_metadata(version_dir: Path) -> ModelMetadata:
    """Parse metadata.json of a version folder, with an error naming the file."""
    path = Path(version_dir) / METADATA_FILE
    try:
        return ModelMetadata.model_validate_json(path.read_text())
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path} not found: not a complete model version (metadata.json is written last)") from exc
    except ValueError as exc:
        raise ModelLoadError(f"{path} is not valid model metadata: {exc}") from exc


def check_fit_to_serve(metadata: ModelMetadata, allow_unfit: bool) -> None:
    """Refuse a model whose held-out part failed the training quality gate, unless `allow_unfit`."""
    if metadata.fit_to_serve or allow_unfit:
        return
    reasons = "; ".join(metadata.quality_gate.get("reasons", [])) or "no reasons recorded"
    raise ModelLoadError(
        f"model {metadata.name} v{metadata.version} is marked not fit to serve by its training quality gate ({reasons}); "
        "retrain it, or set WORKER_ALLOW_UNFIT_MODEL=true to serve it anyway"
    )


def resolve_backend(version_dir: Path, backend: str = "auto") -> str:
    """The backend `load_model` will use: "auto" is tensorflow on a GPU or without model.tflite, else litert."""
    if backend != "auto":
        return backend
    has_tflite = (Path(version_dir) / TFLITE_FILE).is_file()
    return "tensorflow" if gpu_visible() or not has_tflite else "litert"


def load_model(version_dir: Path, backend: str = "auto", jit_compile: bool = False, num_threads: Optional[int] = None) -> LoadedModel:
    """Open a version folder with the chosen backend ("auto": TF on GPU, else LiteRT if present, else TF).

    "null" runs no model at all (score 0 for every frame, only metadata.json is read): the benchmark uses it
    to measure what the pipeline around the model costs; never chosen by "auto".
    `num_threads` is the LiteRT interpreter's (None: every CPU the process may use, `available_cpus`; the
    interpreter's own default is one thread).
    """
    version_dir = Path(version_dir)
    if backend not in BACKENDS:
        raise ValueError(f"model backend must be one of {BACKENDS}, got {backend!r}")
    metadata = read_metadata(version_dir)
    backend = resolve_backend(version_dir, backend)
    if backend == "null":
        run, has_map = _null_runner, False
    elif backend == "litert":
        run, has_map = _litert_runner(version_dir / TFLITE_FILE, metadata, num_threads)
    else:
        run, has_map = _tensorflow_runner(version_dir / SAVED_MODEL_DIR, jit_compile)
    return LoadedModel(metadata, backend, version_dir, run, has_map)


def _null_runner(frames: np.ndarray, want_maps: bool) -> tuple[np.ndarray, None]:
    """Score 0 for every frame without reading the pixels: the model costs nothing (and has no map)."""
    return np.zeros((frames.shape[0],), np.float32), None


def _tensorflow_runner(saved_model_dir: Path, jit_compile: bool) -> tuple[Runner, bool]:
    """A runner of the SavedModel's serving signature, and whether the signature has a map output."""
    import tensorflow as tf

    if not saved_model_dir.is_dir():
        raise ModelLoadError(f"{saved_model_dir} not found: the version folder has no SavedModel")
    loaded = tf.saved_model.load(str(saved_model_dir))
    if SIGNATURE_NAME not in loaded.signatures:
        raise ModelLoadError(f"{saved_model_dir} has no signature {SIGNATURE_NAME!r}")
    signature = loaded.signatures[SIGNATURE_NAME]
    has_map = MAP_OUTPUT_KEY in signature.structured_outputs

    # Two traced functions: asking for scores only lets TensorFlow prune a map branch the scores do not use.
    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def serve(frames: Any) -> Any:
        return signature(**{INPUT_KEY: frames})[OUTPUT_KEY]

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def serve_with_maps(frames: Any) -> Any:
        out = signature(**{INPUT_KEY: frames})
        return out[OUTPUT_KEY], out[MAP_OUTPUT_KEY]

    def run(frames: np.ndarray, want_maps: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
        _ = loaded  # keep the restored object (and its variables) alive with the function
        if want_maps and has_map:
            scores, maps = serve_with_maps(tf.constant(frames))
            return scores.numpy(), maps.numpy()
        return serve(tf.constant(frames)).numpy(), None

    return run, has_map


def _litert_runner(tflite_path: Path, metadata: ModelMetadata, num_threads: Optional[int]) -> tuple[Runner, bool]:
    """A runner of model.tflite (input resized to each new batch size), and whether it has a map output."""
    from ai_edge_litert.interpreter import Interpreter

    if not tflite_path.is_file():
        raise ModelLoadError(f"{tflite_path} not found: export the model with its LiteRT twin or use backend tensorflow")
    interpreter = Interpreter(model_path=str(tflite_path), num_threads=num_threads or available_cpus())
    runner = interpreter.get_signature_runner(SIGNATURE_NAME)
    input_index = runner.get_input_details()[INPUT_KEY]["index"]
    outputs = runner.get_output_details()
    output_index = outputs[OUTPUT_KEY]["index"]
    map_index = outputs[MAP_OUTPUT_KEY]["index"] if MAP_OUTPUT_KEY in outputs else None
    state = {"batch": -1}  # per-model, not global: last allocated batch size

    def run(frames: np.ndarray, want_maps: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
        if frames.shape[0] != state["batch"]:
            interpreter.resize_tensor_input(input_index, list(frames.shape), strict=False)
            interpreter.allocate_tensors()
            state["batch"] = frames.shape[0]
        interpreter.set_tensor(input_index, frames)
        interpreter.invoke()  # one pass computes every output; reading the map costs a copy only
        scores = interpreter.get_tensor(output_index).copy()
        maps = interpreter.get_tensor(map_index).copy() if want_maps and map_index is not None else None
        return scores, maps

    return run, map_index is not None
