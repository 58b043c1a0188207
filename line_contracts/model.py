"""The model contract between training (which exports) and the worker (which serves).

A model base folder holds one sub-folder per version, named by a positive integer (as TF
Serving does); the highest complete version is the one to serve. A version folder holds:

    saved_model/     TensorFlow SavedModel; signature SIGNATURE_NAME takes INPUT_KEY:
                     uint8 [N, H, W, 1] raw grayscale frames, returns OUTPUT_KEY: float32 [N]
                     defect scores in [0, 1]. Resizing and normalisation live inside.
                     Optional second output MAP_OUTPUT_KEY: float32 [N, h', w'] defect map in
                     [0, 1], one cell per (H/h') x (W/w') frame pixels (the same forward pass,
                     so regions cost no second inference); models without it give no regions.
    model.tflite     LiteRT twin of the same function (CPU workers).
    metadata.json    ModelMetadata; written last, so its presence marks the version complete.
    fast/            Optional cheaper variant of the same model: a complete model folder of its
                     own (saved_model/, model.tflite, metadata.json with variant "fast"), same
                     frames in and same outputs, judged at a lower working resolution. The
                     version's metadata `variants["fast"]` records its held-out metrics and
                     `matches_exact`; a CPU worker serves it only when that is true.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

SIGNATURE_NAME = "serving_default"
INPUT_KEY = "frames"
OUTPUT_KEY = "scores"
MAP_OUTPUT_KEY = "defect_map"
SAVED_MODEL_DIR = "saved_model"
TFLITE_FILE = "model.tflite"
METADATA_FILE = "metadata.json"
METADATA_SCHEMA_VERSION = 1
FAST_VARIANT_DIR = "fast"
VARIANTS = ("exact", "fast")


class ModelMetadata(BaseModel):
    """What the worker and humans need to know about one exported model version."""

    model_config = ConfigDict(protected_namespaces=(), extra="allow")

    schema_version: int = Field(METADATA_SCHEMA_VERSION, description="Metadata schema version.")
    name: str = Field(min_length=1, description="Model name, e.g. 'dagm-class8'.")
    version: str = Field(min_length=1, description="Version; equals the version folder's name.")
    input_height: int = Field(gt=0, description="Frame height the model expects, in pixels.")
    input_width: int = Field(gt=0, description="Frame width the model expects, in pixels.")
    threshold: float = Field(ge=0.0, le=1.0, description="Decision threshold: score >= threshold means defect.")
    threshold_rule: str = Field("", description="How the threshold was chosen, e.g. 'min DAGM cost (FN=20 FP)'.")
    backbone: str = Field("", description="Backbone handle (TF Hub URL or local path) it was built from.")
    architecture: dict[str, Any] = Field(default_factory=dict, description="Hyperparameters (resolution, tiling...).")
    training_data: dict[str, Any] = Field(default_factory=dict, description="Summary of the data it was trained on.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Validation metrics at export time.")
    created_at: Optional[str] = Field(None, description="ISO-8601 UTC export time.")
    fit_to_serve: bool = Field(
        True, description="False when the held-out part failed the training quality gate; workers refuse such a model unless allowed."
    )
    quality_gate: dict[str, Any] = Field(
        default_factory=dict, description="The gate's limits, the held-out values it judged and the reasons it failed, if it did."
    )
    litert_twin: bool = Field(True, description="model.tflite was written; False: LiteRT conversion failed, TensorFlow only.")
    export_warnings: list[str] = Field(default_factory=list, description="What went wrong at export without losing the model.")
    variant: str = Field("exact", description="'exact' (the version folder itself) or 'fast' (its fast/ sub-folder).")
    variants: dict[str, Any] = Field(
        default_factory=dict,
        description="Other variants inside this version: {'fast': {folder, model_height, model_width, downscale, threshold, "
                    "holdout, matches_exact, reason}}.",
    )
