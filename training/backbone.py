"""EfficientNet-B0 backbones loaded through TensorFlow Hub, and a builder for local ones.

Online users pass a TF Hub URL; air-gapped plants (and this project's tests) pass a local
SavedModel folder built by `build_backbone` from `tf_keras.applications.EfficientNetB0`
(random init, or a weights file the user supplies). The builder can cut the network after an
early stage so that the backbone returns a spatial feature map at stride 4 or 8: class-8
scratches a few pixels wide survive there, while they vanish after a 224x224 resize.

Input scales differ: keras.applications EfficientNet rescales internally and expects pixels in
0..255; TF Hub EfficientNet models expect 0..1. `backbone.json` next to a local backbone says
which; for a URL the TF Hub convention (0..1) is assumed unless overridden.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

BACKBONE_INFO = "backbone.json"
# Cut points of keras.applications EfficientNetB0: the last layer of each stage.
VARIANTS = {
    "stride4": ("block2b_add", 4, 24),
    "stride8": ("block3b_add", 8, 40),
    "stride16": ("block5c_add", 16, 112),
    "feature-vector": ("top_activation", 32, 1280),
}


@dataclass(frozen=True)
class BackboneInfo:
    """What a model builder must know about a backbone handle."""

    handle: str
    variant: str  # one of VARIANTS
    output_stride: int
    channels: int
    input_range: str  # "0-255" or "0-1"
    weights: str  # "random" or the weights file used


def build_backbone(out_dir: Path, variant: str = "stride8", weights: Optional[Path] = None, seed: int = 0, bn_momentum: float = 0.9) -> BackboneInfo:
    """Save a hub-compatible EfficientNet-B0 (cut at `variant`) as a SavedModel in `out_dir`."""
    import tensorflow as tf
    import tf_keras as keras

    if variant not in VARIANTS:
        raise ValueError(f"backbone variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"backbone weights file {weights} not found; pass an EfficientNetB0 .h5 weights file")
    keras.utils.set_random_seed(seed)
    full = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(None, None, 3))
    if weights is not None:
        full.load_weights(str(weights), by_name=True, skip_mismatch=True)
    for layer in full.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # Keras' 0.99 suits ImageNet-length runs; a few hundred steps from scratch need the
            # moving statistics to catch up faster, or inference-mode scores lag far behind.
            layer.momentum = bn_momentum
    layer, stride, channels = VARIANTS[variant]
    output = full.get_layer(layer).output
    if variant == "feature-vector":
        output = keras.layers.GlobalAveragePooling2D(name="avg_pool")(output)
    model = keras.Model(full.input, output, name=f"efficientnet_b0_{variant}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A Keras-format SavedModel: hub.KerasLayer restores its variables, trainable flags and
    # batch-norm behaviour (training=True/False), so the backbone can be frozen or fine-tuned.
    tf.saved_model.save(model, str(out_dir))
    info = BackboneInfo(str(out_dir), variant, stride, channels, "0-255", str(weights) if weights else "random")
    (out_dir / BACKBONE_INFO).write_text(json.dumps(asdict(info), indent=2))
    return info


def backbone_info(handle: str, input_range: Optional[str] = None) -> BackboneInfo:
    """Describe a handle: a local folder with backbone.json, or a TF Hub URL (assumed feature vector, 0..1)."""
    local = Path(handle)
    if local.is_dir() and (local / BACKBONE_INFO).is_file():
        data = json.loads((local / BACKBONE_INFO).read_text())
        data["handle"] = str(handle)
        if input_range:
            data["input_range"] = input_range
        return BackboneInfo(**data)
    if local.is_dir() or "://" in handle:
        return BackboneInfo(str(handle), "feature-vector", 32, 1280, input_range or "0-1", "hub")
    raise FileNotFoundError(
        f"backbone handle {handle!r} is neither a TF Hub URL nor a local SavedModel folder; "
        "build one with `python -m training build-backbone --out DIR`"
    )


def hub_layer(info: BackboneInfo, trainable: bool, name: str = "backbone") -> Any:
    """The backbone as a `hub.KerasLayer` (tf_keras layer), frozen or fine-tunable."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow_hub as hub

    return hub.KerasLayer(info.handle, trainable=trainable, name=name)
