"""What each `python -m training` subcommand does (argument parsing lives in cli.py)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

from training.backbone import BACKBONE_INFO, BackboneInfo, backbone_info, build_backbone

Log = Callable[[str], None]


def run_command(args: argparse.Namespace, log: Log) -> int:
    """Dispatch a parsed command line."""
    if args.command == "build-backbone":
        info = build_backbone(args.out, args.variant, args.weights, args.seed)
        log(f"backbone saved: {info.handle} (variant {info.variant}, stride {info.output_stride}, {info.channels} channels, "
            f"input {info.input_range}, weights {info.weights})")
        return 0
    if args.command == "train":
        return _train_dagm(args, log)
    if args.command == "quick-demo":
        return _quick_demo(args, log)
    if args.command == "evaluate":
        from training.evaluate import evaluate

        result = evaluate(args.model, args.data, args.split, args.report, backend=args.backend, batch_size=args.batch_size,
                          log=log, holdout_only=args.holdout)
        return 0 if result else 1
    raise ValueError(f"unknown command {args.command!r}")


def _backbone(args: argparse.Namespace, log: Log) -> BackboneInfo:
    """The backbone named by --backbone, or a local random-init one built (once) under OUT/backbones/."""
    if args.backbone:
        return backbone_info(args.backbone, args.input_range)
    folder = Path(args.out) / "backbones" / f"efficientnet_b0_{args.backbone_variant}"
    if not (folder / BACKBONE_INFO).is_file():
        log(f"building a random-init EfficientNet-B0 backbone ({args.backbone_variant}) in {folder}")
        build_backbone(folder, args.backbone_variant, seed=args.seed)
    return backbone_info(str(folder), args.input_range)


def _recipe(args: argparse.Namespace, name: str):
    from training.model import ModelConfig
    from training.train import TrainConfig
    from training.workflow import Recipe

    model = ModelConfig(design=args.design, model_height=args.model_size[0], model_width=args.model_size[1], fine_tune=not args.frozen,
                        standardize=args.standardize)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, crop=args.crop, repeats=args.repeats,
                        patience=args.patience, seed=args.seed, max_minutes=args.max_minutes, threads=args.threads,
                        schedule=args.schedule)
    return Recipe(name=name, model=model, train=train, split=tuple(args.fractions), split_seed=args.split_seed, target_recall=args.target_recall,
                  max_fpr=args.max_fpr)


def _train_dagm(args: argparse.Namespace, log: Log) -> int:
    from surface_images.datasets import discover, read_grayscale, summary
    from training.pipeline import load_images
    from training.train import configure_threads
    from training.workflow import train_and_export

    configure_threads(args.threads)
    started = time.monotonic()
    items = discover(args.data, args.data_split)
    labelled = [it for it in items if it.label is not None]
    info = summary(labelled)
    log(f"data: {args.data} split {args.data_split}: {info['images']} labelled images, {info['defective']} defective")
    input_size = read_grayscale(labelled[0].path).shape
    data = load_images(labelled, args.model_size)
    log(f"decoded {len(data)} images at {args.model_size[0]}x{args.model_size[1]} in {time.monotonic() - started:.0f}s")
    backbone = _backbone(args, log)
    train_and_export(_recipe(args, args.name), data, backbone, args.out, input_size,
                     {**info, "source": str(args.data), "data_split": args.data_split}, args.version, log)
    log(f"total wall time {time.monotonic() - started:.0f}s")
    return 0


def _quick_demo(args: argparse.Namespace, log: Log) -> int:
    from surface_images.synthetic import SyntheticFrames
    from training.pipeline import load_synthetic
    from training.train import configure_threads
    from training.workflow import train_and_export

    configure_threads(args.threads)
    started = time.monotonic()
    frames = SyntheticFrames(seed=args.seed, size=args.frame_size, defect_rate=0.5, defect_scale=args.defect_scale)
    data = load_synthetic(frames, 0, args.frames, args.model_size)
    log(f"generated {len(data)} synthetic frames ({int(data.labels.sum())} defective) in {time.monotonic() - started:.0f}s")
    backbone = _backbone(args, log)
    summary = {"images": len(data), "defective": int(data.labels.sum()), "ok": int(len(data) - data.labels.sum()),
               "source": f"surface_images.synthetic.SyntheticFrames(seed={args.seed}, size={tuple(args.frame_size)}, defect_scale={args.defect_scale:g})"}
    train_and_export(_recipe(args, args.name), data, backbone, args.out, tuple(args.frame_size), summary, args.version, log)
    log(f"total wall time {time.monotonic() - started:.0f}s")
    return 0
