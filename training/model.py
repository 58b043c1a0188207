"""Network designs on top of a hub-loaded EfficientNet-B0 backbone.

* `segdec` (default, after Tabernik et al. 2019 / Bozic et al. 2021, "mixed supervision"): the
  early EfficientNet-B0 stages at (near) native resolution give a stride-8 feature map; a small
  segmentation head is trained on the weak defect masks; a decision head looks at the
  segmentation map and features (global max + average pooling) and gives the frame's score.
  The decision head sees the features through a stop-gradient, so the backbone is shaped by
  pixel supervision, which is what works on a few hundred images without pretraining.
* `global`: the notebook's design (backbone feature vector + one sigmoid unit), kept to measure
  the trade-off and for TF Hub feature-vector handles.

Every model takes float pixels 0..255, shape [N, h, w, C] at the working size, and does its own
scaling; C is 1 (grey, copied to the backbone's RGB) or 3 (`downscale="extremes"`: block
average, minimum, maximum; training/frames.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from training.backbone import BackboneInfo, hub_layer
from training.frames import channels

DESIGNS = ("segdec", "global")
# Extra inputs of the segmentation head besides the backbone's features (`ModelConfig.context`).
CONTEXTS = ("none", "brightness")
# Extra stages of the decision head (_widen); three already reach about 700 working-size pixels.
MAX_DECISION_STAGES = 3
# Shrink factors of the coarse view (`ModelConfig.coarse_view`, _coarse_view); 0 = off.
COARSE_VIEW_FACTORS = (0, 2, 4)


@dataclass(frozen=True)
class ModelConfig:
    """Saved hyperparameters of a design (go into metadata.json `architecture`)."""

    design: str = "segdec"
    model_height: int = 512
    model_width: int = 512
    fine_tune: bool = True
    standardize: bool = True  # per-frame mean/contrast normalisation before the backbone
    seg_channels: int = 32
    dropout: float = 0.2
    downscale: str = "area"  # how camera frames shrink to the working size (training/frames.py)
    context: str = "none"  # "brightness": the head also sees each cell's brightness step, sign dropped (_brightness_context)
    flatten: bool = False  # the backbone's middle channel is the frame with its shading removed (_with_flattened)
    decision_stages: int = 0  # extra (2x max pool, 5x5 conv) stages of the decision head: a wider view for the score (_widen)
    coarse_view: int = 0  # the same backbone also sees the frame shrunk by this factor; the map keeps the stronger cell (_coarse_view)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)


def build_models(config: ModelConfig, info: BackboneInfo, standardised_in_training: bool = False) -> tuple[Any, Any]:
    """Return (training model -> [score, seg_logits or None], scorer -> score) sharing weights.

    `standardised_in_training`: the training batches come already standardised by their whole
    frame (BatchSampler, `standardize`), so the standardising layer passes them through when
    called with training=True. Crops then look as they do inside the frame at serving time.
    """
    import tf_keras as keras

    if config.design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {config.design!r}")
    if config.context not in CONTEXTS:
        raise ValueError(f"context must be one of {CONTEXTS}, got {config.context!r}")
    if not 0 <= config.decision_stages <= MAX_DECISION_STAGES:
        raise ValueError(f"decision stages must be 0 to {MAX_DECISION_STAGES}, got {config.decision_stages}")
    if config.coarse_view not in COARSE_VIEW_FACTORS:
        raise ValueError(f"coarse view must be one of {COARSE_VIEW_FACTORS} (0 = off), got {config.coarse_view}")
    if config.coarse_view and config.context != "none":
        raise ValueError("a coarse view and the brightness context do not combine (the context has no coarse twin)")
    if config.coarse_view and config.design != "segdec":
        raise ValueError(f"a coarse view needs design 'segdec' (it feeds the defect map), got {config.design!r}")
    pixels = keras.Input((None, None, channels(config.downscale)), name="pixels")
    normalised = _standardizer(standardised_in_training)(pixels) if config.standardize else pixels
    base = normalised
    if config.flatten:
        if channels(config.downscale) != 1:
            raise ValueError(f"flatten needs one grey channel (downscale 'area'), got downscale {config.downscale!r}")
        base = keras.layers.Lambda(_with_flattened, name="flatten")(normalised)
    scaled = base if info.input_range == "0-255" else keras.layers.Rescaling(1.0 / 255.0)(base)
    rgb = keras.layers.Concatenate(name="gray_to_rgb")([scaled, scaled, scaled]) if scaled.shape[-1] == 1 else scaled
    backbone = hub_layer(info, trainable=config.fine_tune)
    features = backbone(rgb)

    if config.design == "global":
        if info.variant != "feature-vector":
            features = keras.layers.GlobalAveragePooling2D()(features)
        features = keras.layers.Dropout(config.dropout)(features)
        score = keras.layers.Dense(1, activation="sigmoid", name="score")(features)
        model = keras.Model(pixels, score, name="global_classifier")
        return model, model

    if info.variant == "feature-vector":
        raise ValueError("design 'segdec' needs a spatial backbone (variant stride4/stride8/stride16), not a feature vector")
    if config.context == "brightness":
        features = keras.layers.Concatenate(name="with_context")([features, _brightness_context(normalised, info.output_stride)])
    seg_conv = keras.layers.Conv2D(config.seg_channels, 5, padding="same", activation="relu", name="seg_conv")
    seg_out = keras.layers.Conv2D(1, 1, name="seg_logits")
    seg_hidden = seg_conv(features)
    seg_logits = seg_out(seg_hidden)
    if config.coarse_view:
        seg_hidden, seg_logits = _coarse_view(rgb, backbone, seg_conv, seg_out, seg_hidden, seg_logits, config.coarse_view,
                                              info.output_stride)
    seg_map = keras.layers.Activation("sigmoid", name="seg_map")(seg_logits)
    decision = keras.layers.Concatenate(name="decision_input")([seg_hidden, seg_map])
    decision = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="dec_conv")(decision)
    decision = _widen(decision, config.decision_stages)
    # Max pooling only: a frame's score must not depend on how much defect-free area surrounds
    # the defect, so training on crops transfers to whole frames.
    pooled = keras.layers.Concatenate(name="pooled")([
        keras.layers.GlobalMaxPooling2D()(decision),
        keras.layers.GlobalMaxPooling2D()(seg_logits),
    ])
    pooled = keras.layers.Dropout(config.dropout)(pooled)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(pooled)
    train_model = keras.Model(pixels, [score, seg_logits], name="segdec_train")
    scorer = keras.Model(pixels, score, name="segdec_scorer")
    return train_model, scorer


DECISION_STAGE_CHANNELS = 32


def _widen(decision: Any, stages: int) -> Any:
    """The decision head's map after `stages` (2x2 max pool, 5x5 conv) stages.

    Without them the score looks at about 115 working-size pixels around each cell (the stride-8
    backbone, the 5x5 and 3x3 head convolutions): a soft stain that wide on a striped or mottled
    surface is judged from its inside alone. Each stage doubles the cell and adds four of them to
    the view (two stages: about 330 pixels), as in Bozic et al.'s decision subnetwork. The defect
    map (seg_logits) is untouched, and the frame's score is still a maximum, so it does not depend
    on how much defect-free area surrounds the defect.
    """
    import tf_keras as keras

    for stage in range(1, stages + 1):
        decision = keras.layers.MaxPooling2D(2, padding="same", name=f"dec_pool{stage}")(decision)
        decision = keras.layers.Conv2D(DECISION_STAGE_CHANNELS, 5, padding="same", activation="relu", name=f"dec_conv{stage}")(decision)
    return decision


def _coarse_view(rgb: Any, backbone: Any, seg_conv: Any, seg_out: Any, hidden: Any, logits: Any, factor: int,
                 stride: int) -> tuple[Any, Any]:
    """(hidden, logits) of the segmentation head, each cell the stronger of the frame's own and a coarse view's.

    A stride-8 cell's features see about 67 working-size pixels, so a soft stain three times that
    wide has a flat inside and edges no steeper than the surface's own shading: no cell stands
    out. The same backbone and head (shared weights) also look at the frame shrunk by `factor`,
    where that stain is a blob a few cells wide, the kind the network catches best; whatever it
    learns about blobs it can use on stains `factor` times their size. The coarse map is spread
    back to the fine grid (nearest neighbour, cut to size) and each cell keeps the larger value,
    so the defect map keeps its shape and the score is still a maximum. Cost: 1/factor^2 of
    another backbone pass. Mirror padding, average pooling, nearest resize, slicing and maximum are
    LiteRT builtins. The two views share the backbone's batch normalisation: in training each view
    is normalised by its own batch, while the moving averages that serving uses mix both (measured
    as a whole in docs/training.md, not separately).
    """
    import tf_keras as keras

    # mirrored out to whole coarse cells first, so the coarse grid lines up with the fine one and covers it
    padded = keras.layers.Lambda(_mirror_pad_to, arguments={"multiple": factor * stride}, name="coarse_pad")(rgb)
    coarse = keras.layers.AveragePooling2D(factor, name="coarse_shrink")(padded)
    coarse_hidden = seg_conv(backbone(coarse))
    coarse_logits = seg_out(coarse_hidden)
    merged = []
    for name, fine, rough in (("hidden", hidden, coarse_hidden), ("logits", logits, coarse_logits)):
        spread = keras.layers.UpSampling2D(factor, interpolation="nearest", name=f"coarse_{name}_up")(rough)
        spread = keras.layers.Lambda(_cut_to, name=f"coarse_{name}_cut")([spread, fine])
        merged.append(keras.layers.Maximum(name=f"scale_max_{name}")([fine, spread]))
    return merged[0], merged[1]


def _mirror_pad_to(pixels: Any, multiple: int) -> Any:
    """Pixels mirrored past the bottom and right edges up to the next multiple of `multiple` rows and columns."""
    import tensorflow as tf

    shape = tf.shape(pixels)
    rows, cols = (-shape[1]) % multiple, (-shape[2]) % multiple
    return tf.pad(pixels, [[0, 0], [0, rows], [0, cols], [0, 0]], mode="REFLECT")


def _cut_to(tensors: Any) -> Any:
    """The first tensor's top-left corner of the second's height and width (the coarse grid rounds up)."""
    import tensorflow as tf

    big, like = tensors
    shape = tf.shape(like)
    return big[:, : shape[1], : shape[2], :]


def defect_mapper(train_model: Any) -> Any:
    """pixels -> defect map [N,h',w',1] in 0..1 of a segdec training model (same graph); None for other designs."""
    import tf_keras as keras

    try:
        seg_map = train_model.get_layer("seg_map")
    except ValueError:
        return None
    return keras.Model(train_model.input, seg_map.output, name="defect_map")


def _brightness_context(normalised: Any, stride: int) -> Any:
    """Two channels on the backbone's cell grid: how far a cell's surroundings are from the frame's
    brightness and from their wider neighbourhood's, sign dropped.

    A stain is a large, soft brightness step; fine texture (tool marks, grain) averages out over
    two cells, and a lighting gradient cancels in the difference of two centred windows. Dropping
    the sign makes a bright stain look like a dark one here, so the far more common dark defects
    teach the head the bright ones too. Average pooling and abs are LiteRT builtins.
    """
    import tf_keras as keras

    grey = keras.layers.Lambda(lambda x: x[..., :1], name="context_grey")(normalised)  # the block average channel
    near = keras.layers.AveragePooling2D(2 * stride, strides=stride, padding="same", name="context_near")(grey)
    wide = keras.layers.AveragePooling2D(7, strides=1, padding="same", name="context_wide")(
        keras.layers.AveragePooling2D(stride, strides=stride, padding="same")(grey))
    return keras.layers.Lambda(_context_steps, name="context_steps")([near, wide, grey])


def _context_steps(tensors: Any) -> Any:
    """|near - frame mean| and |near - wide|, on the standardised scale (1 = one standard deviation of 40)."""
    import tensorflow as tf

    near, wide, grey = tensors
    frame_mean = tf.reduce_mean(grey, axis=[1, 2, 3], keepdims=True)
    return tf.concat([tf.abs(near - frame_mean), tf.abs(near - wide)], axis=-1) / 40.0


FLATTEN_WINDOW = 31  # pixels at the working size: about four stride-8 cells, wider than a blob, narrower than shading


def _with_flattened(grey: Any) -> Any:
    """[N,h,w,1] grey -> [N,h,w,3]: grey, the grey minus its local mean (x2, about 128), grey.

    Mottled coatings and uneven light put slow brightness swings under the defects; a small dark
    blob is as dark as the swings and only sharper. The middle channel takes the swings out (a
    31-pixel box mean, separable, LiteRT average pooling; padded pixels are not counted), so the
    backbone starts from what is sharper than its surroundings, while the outer channels keep the
    frame as it is for large soft stains. The backbone takes three channels anyway: no extra cost.
    """
    import tensorflow as tf

    local = tf.nn.avg_pool2d(grey, ksize=[1, 1, FLATTEN_WINDOW, 1], strides=1, padding="SAME")
    local = tf.nn.avg_pool2d(local, ksize=[1, FLATTEN_WINDOW, 1, 1], strides=1, padding="SAME")
    return tf.concat([grey, 128.0 + 2.0 * (grey - local), grey], axis=-1)


# Per-frame standardisation (_standardizer): every frame leaves with this mean and spread, on the 0..255
# scale; a spread below MIN_SPREAD (a blank frame) is not blown up into noise. BatchSampler uses the same numbers.
STANDARD_MEAN, STANDARD_SPREAD, MIN_SPREAD = 128.0, 40.0, 4.0


def standardise(pixels: Any, mean: Any, spread: Any) -> Any:
    """Pixels of a frame with this mean and (floored) standard deviation -> the standard scale; numpy or TensorFlow."""
    return (pixels - mean) / spread * STANDARD_SPREAD + STANDARD_MEAN


def _standardizer(pass_in_training: bool) -> Any:
    """The layer that maps each frame to mean 128, standard deviation 40 (still on the 0..255 scale).

    A random-init stem convolution sees a frame's overall brightness far more than its fine
    detail; frames of different surfaces or exposures then look alike to it. Standardising
    each frame first makes the network spend its capacity on local structure (defects).
    `pass_in_training`: training batches are standardised already (by their whole frame, where
    they are crops), so called with training=True the layer returns them unchanged.
    """
    import tensorflow as tf
    import tf_keras as keras

    class Standardize(keras.layers.Layer):
        def call(self, pixels: Any, training: Any = None) -> Any:
            if pass_in_training and training:
                return pixels
            mean, variance = tf.nn.moments(pixels, axes=[1, 2, 3], keepdims=True)
            return standardise(pixels, mean, tf.maximum(tf.sqrt(variance), MIN_SPREAD))

    return Standardize(name="standardize")
