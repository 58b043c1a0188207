"""Give an already trained segdec model the defect-map output without training it again.

    .venv/bin/python -m training.reexport SOURCE_VERSION_DIR TARGET_BASE [--version N]

Models exported before the serving signature had MAP_OUTPUT_KEY hold the map only in their separate
`defect_map` signature. This rebuilds the same Keras graph from metadata.json (design, working size,
backbone handle), copies every weight from the SavedModel by name, checks that the rebuilt model
scores the same as the original, and exports it again with `export_version` (scores and map from one
forward pass, LiteRT twin included). Metadata is carried over; the new version says where it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from line_contracts.model import INPUT_KEY, OUTPUT_KEY, SAVED_MODEL_DIR, SIGNATURE_NAME
from line_runtime.model import read_metadata


def rebuild(version_dir: Path):
    """(scorer, mapper, metadata) of a segdec version folder, weights copied from its SavedModel."""
    import tensorflow as tf

    from training.backbone import backbone_info
    from training.model import ModelConfig, build_models, defect_mapper

    meta = read_metadata(version_dir)
    arch = meta.architecture
    if arch.get("design") != "segdec":
        raise ValueError(f"{version_dir}: design {arch.get('design')!r} has no defect map; only segdec models can be re-exported with one")
    config = ModelConfig(**{k: arch[k] for k in ModelConfig.__dataclass_fields__ if k in arch})
    train_model, scorer = build_models(config, backbone_info(meta.backbone))
    mapper = defect_mapper(train_model)
    loaded = tf.saved_model.load(str(version_dir / SAVED_MODEL_DIR))
    saved = {v.name: v for v in loaded.scorer.variables}
    targets = scorer.weights
    missing = [w.name for w in targets if w.name not in saved or tuple(saved[w.name].shape) != tuple(w.shape)]
    if missing or len(saved) != len(targets):
        raise ValueError(f"{version_dir}: the rebuilt model does not match the saved one ({len(saved)} saved weights, "
                         f"{len(targets)} rebuilt; unmatched: {missing[:5]})")
    for w in targets:
        w.assign(saved[w.name])
    probe = np.random.default_rng(0).integers(0, 256, (2, meta.input_height, meta.input_width, 1), dtype=np.uint8)
    original = loaded.signatures[SIGNATURE_NAME](**{INPUT_KEY: tf.constant(probe)})[OUTPUT_KEY].numpy()
    from training.export import serving_module

    module = serving_module(scorer, (meta.input_height, meta.input_width), (arch["model_height"], arch["model_width"]), mapper,
                            arch.get("downscale", "area"))
    again = module.serve(tf.constant(probe))[OUTPUT_KEY].numpy()
    if not np.allclose(original, again, atol=1e-4):
        raise ValueError(f"{version_dir}: the rebuilt model scores {again} where the original scores {original}")
    return scorer, mapper, meta


def reexport(source: Path, target_base: Path, version: int | None = None, log=print) -> Path:
    """Export `source` again under target_base with the map output; returns the new version folder."""
    from training.export import export_version

    scorer, mapper, meta = rebuild(Path(source))
    arch = {k: v for k, v in meta.architecture.items() if k not in ("model_height", "model_width", "defect_map_signature",
                                                                    "defect_map_output")}
    return export_version(
        scorer, Path(target_base), name=meta.name, version=version, input_size=(meta.input_height, meta.input_width),
        model_size=(meta.architecture["model_height"], meta.architecture["model_width"]), threshold=meta.threshold,
        threshold_rule=meta.threshold_rule, backbone=meta.backbone, architecture=arch,
        training_data={**meta.training_data, "reexported_from": f"{Path(source).resolve()} (v{meta.version}, "
                                                                 f"same weights, map output added)"},
        metrics=meta.metrics, fit_to_serve=meta.fit_to_serve, quality_gate=meta.quality_gate, mapper=mapper, log=log)


def main(argv=None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="version folder of the trained model (holds metadata.json)")
    p.add_argument("target", type=Path, help="model base folder to export into")
    p.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    folder = reexport(args.source, args.target, args.version)
    print(json.dumps({"exported": str(folder)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
