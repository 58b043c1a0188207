"""The training loop: mixed supervision (image label + weak mask), class weights, early stopping.

One progress line per epoch goes to `log`; the wall time and the best epoch come back in
`TrainResult`. Training stops at `epochs`, after `patience` epochs without a better validation
score, or when the `max_minutes` deadline passes (a monotonic deadline, checked per batch).
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from line_runtime.cpus import configure_tensorflow_threads
from training import metrics
from training.backbone import BackboneInfo
from training.model import ModelConfig, build_models
from training.pipeline import ArraySet, BatchSampler


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyperparameters (saved in metadata.json)."""

    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    crop: int = 0  # 0 = whole frames; else square crops (defect crops hold the weak mask)
    repeats: int = 1  # passes over the training frames per epoch (a new crop each pass)
    patience: int = 8
    min_epochs: int = 4
    seg_weight: float = 1.0
    seg_pos_weight: float = 10.0  # defect cells are ~1% of the map
    # Multiple-instance loss on the highest cell of the defect map: defective frames without a
    # mask must have at least one defect cell, ok frames none (image-level labels).
    mil_weight: float = 0.0  # 0 = off (the crops recipe); the whole-frame recipe sets 1
    # Cells a defective frame without a mask must light up: its k highest cells' mean logit is
    # trained towards "defect" (1 = the top cell only). Ok frames keep the top cell, their hardest
    # negative. The top cell alone teaches only the cell the model already likes best: when that is
    # a background blotch, the defect itself never gets a gradient.
    mil_top_k: int = 1
    balanced: bool = False  # epochs of every defective frame + as many random ok frames (whole-frame recipe)
    seed: int = 0
    max_minutes: float = 25.0
    threads: int = 2  # the command line's default is every CPU the process may use (line_runtime.cpus.available_cpus)
    # "step": x0.1 for the last third of the epochs; "cosine": per-batch cosine decay to 2 % by the
    # end of the epochs OR of the time budget, whichever comes first (a short run on busy cores
    # still ends on a low, settled learning rate instead of being cut mid-stride)
    schedule: str = "step"
    # Weight averaging (Polyak/EMA): validation, the kept epoch and the export use an exponential
    # moving average of the weights with this decay (0 = off, the raw weights). From scratch on a
    # few hundred frames the raw weights swing from batch to batch (validation ROC-AUC 0.89-0.97
    # between neighbouring epochs); their average sits in the middle of that swing.
    ema: float = 0.0
    # Negatives (255 - x) with this probability: most defects of a set are of one polarity, and a
    # model that saw few bright stains misses them (the varied-size mixed set's held-out misses).
    invert: float = 0.0
    # Synthetic stains (training/synthetic.py): per epoch, this many ok frames per real defect get a
    # soft patch and train as defects with a known mask. Whole-frame recipe only.
    synthetic_stains: float = 0.0
    # Zoom augmentation (training/pipeline.py: rescale_and_shift): each training frame zoomed by a
    # factor up to 1 +- this about a random point. 0 = off.
    scale_jitter: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)


@dataclass
class TrainResult:
    """A trained scorer and what happened on the way."""

    scorer: Any
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    wall_seconds: float = 0.0
    stopped_because: str = ""
    mapper: Any = None  # pixels -> defect map [N, h/s, w/s, 1] in 0..1 (segdec only): where the decision came from
    interrupted: Optional[str] = None  # "SIGINT" / "SIGTERM" when a signal stopped the loop early (StopRequest)


class StopRequest:
    """Ctrl-C or SIGTERM while the training loop runs: stop after the current step, keep the best epoch.

    Minutes of training are the expensive part of a run; a user who presses Ctrl-C, or a cluster
    that ends the job with SIGTERM, should still get the best model so far, judged and exported as
    usual. The first signal asks the loop to stop (the rest of the run takes seconds to a minute);
    a second one aborts at once, writing nothing. Python takes signals in the main thread only, so
    elsewhere the guard does nothing and signals keep their usual effect. The loop asks `stopping()`
    after each step and after each epoch.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.received: Optional[str] = None
        self._said = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        # Only a flag: a handler that printed could interrupt a print of the main thread (reentrant write).
        name = signal.Signals(signum).name
        if self.received is not None:
            raise KeyboardInterrupt(f"second stop signal ({name}): training aborted, no model written")
        self.received = name

    def stopping(self) -> bool:
        """True once a stop signal came; says so in the log the first time it is asked."""
        if self.received is not None and not self._said:
            self._said = True
            self.log(f"{self.received} received: training stops now; the best epoch so far will be judged and exported "
                     f"(send it again to abort without a model)")
        return self.received is not None


def predict_scores(scorer: Any, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Scores for uint8 [N,H,W] (or [N,H,W,3]) images at the model's working resolution."""
    import tensorflow as tf

    run = tf.function(lambda x: scorer(x, training=False), reduce_retracing=True)
    images = images[..., None] if images.ndim == 3 else images  # grey [N,H,W] or extremes [N,H,W,3]
    out = [np.asarray(run(tf.constant(images[i : i + batch_size], tf.float32))).reshape(-1) for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def _validation_key(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float, float]:
    """Higher is better: (ROC-AUC, -min DAGM cost, separation margin in logits).

    AUC first: it does not hinge on one frame the way the 20:1 cost does; once classes are
    separated (AUC 1, cost 0) the margin between them decides.
    """
    threshold, _ = metrics.choose_threshold(labels, scores)
    cost = metrics.at_threshold(labels, scores, threshold)["dagm_cost"]
    logit = np.log(np.clip(scores, 1e-7, 1) / np.clip(1 - scores, 1e-7, 1))
    margin = float(np.min(logit[labels == 1]) - np.max(logit[labels == 0]))
    return round(metrics.roc_auc(labels, scores), 4), -cost, margin


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    backbone: BackboneInfo,
    train_set: ArraySet,
    val_set: ArraySet,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a model on `train_set`, keep the weights that did best on `val_set`."""
    import tensorflow as tf
    import tf_keras as keras

    configure_tensorflow_threads(train_config.threads)
    started = time.monotonic()
    deadline = started + 60.0 * train_config.max_minutes
    keras.utils.set_random_seed(train_config.seed)
    train_model, scorer = build_models(model_config, backbone, standardised_in_training=True)
    segdec = model_config.design == "segdec"
    stride = backbone.output_stride
    sampler = BatchSampler(train_set, train_config.batch_size, stride, train_config.crop or None, train_config.seed, repeats=train_config.repeats,
                           balanced=train_config.balanced, invert=train_config.invert,
                           synthetic_stains=train_config.synthetic_stains, scale_jitter=train_config.scale_jitter,
                           standardize=model_config.standardize)
    n, n_pos = len(train_set), int(train_set.labels.sum())
    if n_pos == 0 or n_pos == n:
        raise ValueError(f"training data needs both classes; got {n_pos} defective of {n}")
    # class weights: each class contributes half of the classification loss (balanced epochs already do)
    w_pos, w_neg = (1.0, 1.0) if train_config.balanced else (n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))
    optimizer = keras.optimizers.Adam(learning_rate=train_config.learning_rate)
    # Adam copies a learning-rate Variable passed in; assign to its own one, or schedules do nothing.
    lr = optimizer.learning_rate
    variables = train_model.trainable_variables
    if not 0.0 <= train_config.ema < 1.0:
        raise ValueError(f"ema must be in [0, 1), got {train_config.ema!r}")
    averaged = _WeightAverage(variables, train_config.ema) if train_config.ema else None

    @tf.function(reduce_retracing=True)
    def step(pixels, labels, seg_target, known):
        with tf.GradientTape() as tape:
            outputs = train_model(pixels, training=True)
            score = tf.reshape(outputs[0] if segdec else outputs, [-1])
            bce = keras.losses.binary_crossentropy(labels[:, None], score[:, None])
            cls_loss = tf.reduce_mean(bce * (labels * w_pos + (1 - labels) * w_neg))
            seg_loss = tf.constant(0.0)
            mil_loss = tf.constant(0.0)
            if segdec:
                seg = tf.nn.weighted_cross_entropy_with_logits(seg_target, outputs[1], train_config.seg_pos_weight)
                per_frame = tf.reduce_mean(seg, axis=[1, 2, 3])
                seg_loss = tf.reduce_sum(per_frame * known) / tf.maximum(tf.reduce_sum(known), 1.0)
                # MIL on the top cell(s), for frames whose defect map is not known pixel by pixel
                # (and ok frames: their top cell is their hardest negative).
                mil_frames = tf.maximum(1.0 - known, 1.0 - labels)
                mil = mil_loss_per_frame(outputs[1], labels, train_config.mil_top_k)
                mil_loss = tf.reduce_sum(mil * mil_frames) / tf.maximum(tf.reduce_sum(mil_frames), 1.0)
            loss = (cls_loss + train_config.seg_weight * seg_loss + train_config.mil_weight * mil_loss
                    + tf.add_n(train_model.losses or [tf.constant(0.0)]))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        if averaged is not None:
            averaged.update()
        return cls_loss, seg_loss + mil_loss

    if train_config.schedule not in ("step", "cosine"):
        raise ValueError(f"schedule must be 'step' or 'cosine', got {train_config.schedule!r}")
    total_steps = max(1, train_config.epochs * sampler.steps())
    budget = 60.0 * train_config.max_minutes
    done_steps = 0
    best_key, best_weights, best_epoch, history = None, None, 0, []
    stopped = "epochs done"
    with StopRequest(log) as stop:
        for epoch in range(1, train_config.epochs + 1):
            if train_config.schedule == "step" and epoch > train_config.epochs * 2 // 3:
                lr.assign(train_config.learning_rate * 0.1)  # fine phase: a lower rate settles the heads
            epoch_start = time.monotonic()
            losses = []
            for pixels, labels, seg_target, known in sampler.epoch():
                if train_config.schedule == "cosine":
                    progress = min(1.0, max(done_steps / total_steps, (time.monotonic() - started) / budget))
                    lr.assign(train_config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * progress))))
                done_steps += 1
                losses.append([float(v) for v in step(tf.constant(pixels), tf.constant(labels), tf.constant(seg_target), tf.constant(known))])
                if time.monotonic() > deadline or stop.stopping():
                    break
            if averaged is not None:
                averaged.swap()  # judge (and keep) the averaged weights; swapped back before training on
            val_scores = predict_scores(scorer, val_set.images)
            key = _validation_key(val_set.labels, val_scores)
            record = {
                "epoch": epoch,
                "cls_loss": float(np.mean([l[0] for l in losses])),
                "seg_loss": float(np.mean([l[1] for l in losses])),
                "val_roc_auc": metrics.roc_auc(val_set.labels, val_scores),
                "val_min_cost": -key[1],
                "val_margin": key[2],
                "seconds": time.monotonic() - epoch_start,
            }
            history.append(record)
            improved = best_key is None or key > best_key
            if improved:
                best_key, best_weights, best_epoch = key, train_model.get_weights(), epoch
            if averaged is not None:
                averaged.swap()
            log(
                f"epoch {epoch:3d}/{train_config.epochs}  cls {record['cls_loss']:.4f}  seg {record['seg_loss']:.4f}  "
                f"val auc {record['val_roc_auc']:.4f}  cost {record['val_min_cost']:.0f}  margin {key[2]:+.2f}  "
                f"{record['seconds']:.0f}s  elapsed {time.monotonic() - started:.0f}s{'  *best' if improved else ''}"
            )
            if stop.stopping():
                stopped = f"interrupted by {stop.received} in epoch {epoch} of {train_config.epochs}"
                break
            if time.monotonic() > deadline:
                stopped = f"time budget of {train_config.max_minutes:g} min reached"
                break
            if epoch >= train_config.min_epochs and epoch - best_epoch >= train_config.patience:
                stopped = f"early stop: no better validation score for {train_config.patience} epochs"
                break
    train_model.set_weights(best_weights)
    wall = time.monotonic() - started
    log(f"training finished: {stopped}; best epoch {best_epoch}; wall time {wall:.0f}s")
    mapper = keras.Model(train_model.input, train_model.get_layer("seg_map").output, name="defect_map") if segdec else None
    return TrainResult(scorer, best_epoch, history, wall, stopped, mapper, interrupted=stop.received)


def mil_loss_per_frame(seg_logits: Any, labels: Any, top_k: int = 1) -> Any:
    """Multiple-instance loss per frame: defective frames' k highest cells (mean logit) -> 1, ok frames' top cell -> 0."""
    import tensorflow as tf

    if top_k < 1:
        raise ValueError(f"mil top k must be at least 1, got {top_k}")
    flat = tf.reshape(seg_logits, [tf.shape(seg_logits)[0], -1])
    top = tf.reduce_max(flat, axis=1)
    if top_k == 1:
        return tf.nn.sigmoid_cross_entropy_with_logits(labels, top)
    k = tf.minimum(top_k, tf.shape(flat)[1])
    evidence = tf.reduce_mean(tf.math.top_k(flat, k).values, axis=1)
    return (labels * tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(labels), evidence)
            + (1.0 - labels) * tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(labels), top))


class _WeightAverage:
    """An exponential moving average of `variables`, updated inside the training step.

    The decay ramps up as (1 + t) / (10 + t) so the first steps' random weights fade quickly.
    `swap()` exchanges the live and the averaged values (twice restores them); Adam's state stays
    with the live weights, so training goes on exactly where it was.
    """

    def __init__(self, variables, decay: float):
        import tensorflow as tf

        self._variables = list(variables)
        self._decay = decay
        self._steps = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self._averages = [tf.Variable(v, trainable=False) for v in self._variables]

    def update(self) -> None:
        import tensorflow as tf

        self._steps.assign_add(1.0)
        decay = tf.minimum(self._decay, (1.0 + self._steps) / (10.0 + self._steps))
        for avg, v in zip(self._averages, self._variables):
            avg.assign(decay * avg + (1.0 - decay) * tf.cast(v, avg.dtype))

    def swap(self) -> None:
        for avg, v in zip(self._averages, self._variables):
            live = v.numpy()
            v.assign(avg.numpy())
            avg.assign(live)
