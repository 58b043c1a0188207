"""The model in service, and hot reload: a higher version is loaded and warmed in the background,
then swapped in by the inference loop between two batches (never during one)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from line_runtime.cpus import available_cpus, configure_tensorflow_threads
from line_runtime.model import LoadedModel, check_fit_to_serve, gpu_visible, latest_version, load_model, resolve_backend
from line_runtime.variants import choose_variant
from worker.device_defaults import apply_device_defaults, describe
from worker.metrics import WorkerMetrics
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingModel:
    """A loaded, warmed model plus what every event needs to say about it."""

    model: LoadedModel
    name: str
    version: str
    backend: str
    threshold: float
    input_height: int
    input_width: int
    variant: str = "exact"  # or "fast": the version's fast/ sub-folder (line_contracts.model)
    folder: Optional[Path] = None  # the version folder (also for the fast variant, whose files sit below it)


def _version_number(path: Path) -> int:
    return int(path.name) if path.name.isdigit() else -1


def model_threads(settings: WorkerSettings) -> int:
    """The model's CPU threads (LiteRT, or TensorFlow without a GPU): the setting, or the pod's CPUs shared among its
    consumer processes."""
    return settings.model_threads or max(1, (settings.cpus or available_cpus()) // settings.processes)


class ModelManager:
    """Owns the serving model; a background thread offers newer versions, `take_update` swaps them in."""

    def __init__(self, settings: WorkerSettings, metrics: WorkerMetrics, stop: threading.Event):
        self._settings = settings
        self._metrics = metrics
        self._stop = stop
        self._lock = threading.Lock()
        self._pending: Optional[ServingModel] = None
        self._thread: Optional[threading.Thread] = None
        self._failed_versions: set[int] = set()
        self.current: Optional[ServingModel] = None
        self._jit = settings.jit_compile
        if self._jit and not gpu_visible():
            log.warning("WORKER_JIT_COMPILE=true ignored: no GPU visible (XLA is much slower on CPU)")
            self._jit = False

    def load_initial(self) -> ServingModel:
        """Load and warm the highest version in model_path; raises if there is none."""
        version_dir = latest_version(self._settings.model_path)
        if version_dir is None:
            raise FileNotFoundError(f"WORKER_MODEL_PATH={self._settings.model_path} holds no model version "
                                    "(expected <path>/<integer>/metadata.json or a version folder)")
        backend = resolve_backend(version_dir, self._settings.model_backend)  # batching fits the device
        log.info("%s", describe(apply_device_defaults(self._settings, backend, gpu_visible())))
        self.current = self._load(version_dir)
        self._metrics.set_model(self.current.name, self.current.version, self.current.backend)
        return self.current

    def _load(self, version_dir: Path) -> ServingModel:
        s = self._settings
        gpu = gpu_visible()
        choice = choose_variant(version_dir, s.model_variant, resolve_backend(version_dir, s.model_backend))
        log.info("model variant %s (%s)", choice.variant, choice.reason)
        # Resolved again for the chosen folder: a fast variant asked for by name may lack the LiteRT twin its exact
        # model has, and then serves as a SavedModel (which needs the thread cap below).
        backend = resolve_backend(choice.folder, s.model_backend)
        threads = model_threads(s)
        if backend == "tensorflow" and not gpu:
            # A SavedModel on CPU (no LiteRT twin, or chosen): TensorFlow's own default is every core it sees.
            # Only the first load can set it (TensorFlow keeps its threads once running; a hot reload has the same).
            if not configure_tensorflow_threads(threads):
                log.debug("TensorFlow already running in this process: its CPU threads stay as they are")
        model = load_model(choice.folder, backend=backend, jit_compile=self._jit, num_threads=threads)
        # Before warm-up: an unfit model is refused at start (exit, naming the gate) and on hot reload (old kept).
        check_fit_to_serve(model.metadata, s.allow_unfit_model)
        model.warmup(s.batch_buckets())
        md = model.metadata
        threshold = s.threshold_override if s.threshold_override is not None else md.threshold
        on_cpu = f", {threads} CPU threads" if model.backend == "litert" or not gpu else ""
        log.info("model %s v%s (%s) loaded from %s (backend %s%s, input %dx%d, threshold %.4f), warmed batch sizes %s",
                 md.name, md.version, choice.variant, choice.folder, model.backend, on_cpu, md.input_width, md.input_height,
                 threshold, s.batch_buckets())
        return ServingModel(model, md.name, md.version, model.backend, threshold, md.input_height, md.input_width,
                            choice.variant, version_dir)

    def start_watching(self) -> None:
        """Scan model_path every model_poll_interval_s for a higher version (no-op when the interval is 0)."""
        if self._settings.model_poll_interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._watch, name="model-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._settings.model_poll_interval_s):
            try:
                candidate = latest_version(self._settings.model_path)
            except OSError as exc:
                log.warning("cannot scan WORKER_MODEL_PATH=%s: %s", self._settings.model_path, exc)
                continue
            with self._lock:
                serving = self._pending or self.current
            number = _version_number(candidate) if candidate else -1
            if number in self._failed_versions or serving is None:
                continue
            if number <= _version_number(serving.folder or serving.model.version_dir):
                continue
            try:
                ready = self._load(candidate)
            except Exception as exc:  # a broken new version must not take down the one in service
                self._failed_versions.add(number)
                self._metrics.model_reloads.labels("failure").inc()
                log.error("hot reload of %s failed, keeping v%s: %s", candidate, serving.version, exc)
                continue
            with self._lock:
                self._pending = ready

    def take_update(self) -> Optional[ServingModel]:
        """Called by the inference loop between batches: switch to a newer warmed model if one is waiting."""
        if self._pending is None:
            return None
        with self._lock:
            ready, self._pending = self._pending, None
        if ready is None:
            return None
        old = self.current
        self.current = ready
        self._metrics.set_model(ready.name, ready.version, ready.backend)
        self._metrics.model_reloads.labels("success").inc()
        log.info("now serving model %s v%s (was v%s)", ready.name, ready.version, old.version if old else "-")
        return ready
