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
        return _train(args, log)
    if args.command == "quick-demo":
        return _quick_demo(args, log)
    if args.command == "evaluate":
        from training.evaluate import evaluate

        result = evaluate(args.model, args.data, args.split, args.report, backend=args.backend, batch_size=args.batch_size,
                          log=log, holdout_only=args.holdout, localise=args.localise, region_level=args.region_level,
                          max_regions=args.max_regions, size_policy=args.size_policy)
        return 0 if result else 1
    raise ValueError(f"unknown command {args.command!r}")


def _backbone(args: argparse.Namespace, variant: str, log: Log) -> BackboneInfo:
    """The backbone named by --backbone, or a local random-init one built (once) under OUT/backbones/."""
    if args.backbone:
        return backbone_info(args.backbone, args.input_range)
    folder = Path(args.out) / "backbones" / f"efficientnet_b0_{variant}"
    if not (folder / BACKBONE_INFO).is_file():
        log(f"building a random-init EfficientNet-B0 backbone ({variant}) in {folder}")
        build_backbone(folder, variant, seed=args.seed)
    return backbone_info(str(folder), args.input_range)


def _recipe(args: argparse.Namespace, name: str, plan=None):
    from training.model import ModelConfig
    from training.quality_gate import GateLimits
    from training.train import TrainConfig
    from training.workflow import Recipe

    src = plan if plan is not None else args
    model_size = src.model_size
    model = ModelConfig(design=args.design, model_height=model_size[0], model_width=model_size[1], fine_tune=not args.frozen,
                        standardize=args.standardize, downscale=src.downscale, context=getattr(src, "context", None) or "none",
                        flatten=bool(getattr(src, "flatten", None)), decision_stages=getattr(src, "decision_stages", None) or 0,
                        coarse_view=getattr(src, "coarse_view", None) or 0)
    train = TrainConfig(epochs=src.epochs, batch_size=src.batch_size, learning_rate=src.learning_rate, crop=src.crop, repeats=src.repeats,
                        patience=src.patience, seed=args.seed, max_minutes=src.max_minutes, threads=args.threads,
                        schedule=src.schedule, mil_weight=getattr(src, "mil_weight", 0.0), balanced=getattr(src, "balanced", False),
                        ema=getattr(src, "ema", None) or 0.0, invert=getattr(src, "invert", None) or 0.0,
                        synthetic_stains=getattr(src, "synthetic_stains", None) or 0.0,
                        scale_jitter=getattr(src, "scale_jitter", None) or 0.0, mil_top_k=getattr(src, "mil_top_k", None) or 1)
    gate = GateLimits(args.gate_min_auc, args.gate_min_recall, args.gate_max_fpr)
    return Recipe(name=name, model=model, train=train, split=tuple(args.fractions), split_seed=args.split_seed, target_recall=args.target_recall,
                  max_fpr=args.max_fpr, gate=gate, litert=args.litert)


def _fast_recipe(recipe, size: tuple[int, int]):
    """The exact recipe at the fast variant's working size and downscale, on its own time budget.

    `flatten` needs one grey channel and the fast variant's three channels (average, minimum,
    maximum) are what it has instead, so the fast variant goes without it.
    """
    from dataclasses import replace

    from training.variants import FAST_DOWNSCALE, FAST_MAX_MINUTES

    return replace(recipe, model=replace(recipe.model, model_height=size[0], model_width=size[1], downscale=FAST_DOWNSCALE, flatten=False),
                   train=replace(recipe.train, max_minutes=FAST_MAX_MINUTES))


def _split_note(data: Path, split: str, items) -> str:
    """' (split Train)' where the images came from a split folder of that name; '' for plain defect/ + ok/ folders."""
    used = any(split.lower() in (part.lower() for part in Path(it.path).relative_to(data).parts[:-1]) for it in items)
    return f" (split {split})" if used else ""


def _train(args: argparse.Namespace, log: Log) -> int:
    """Check the data, print the plan, preflight the export, train, export."""
    from surface_images.datasets import discover
    from training.data_check import check_training_data
    from training.plan import make_plan

    started = time.monotonic()
    checked = check_training_data(args.data, discover(args.data, args.data_split))
    plan = make_plan(args, [it.label for it in checked.items], checked.sizes, checked.masks, [it.group for it in checked.items])
    args.threads = plan.threads
    log(f"data: {args.data}{_split_note(Path(args.data), args.data_split, checked.items)}: checked {len(checked.items)} images in "
        f"{time.monotonic() - started:.0f}s")
    for line in plan.lines():
        log(line)
    if args.plan_only:
        return 0

    from line_runtime.cpus import configure_tensorflow_threads
    from surface_images.datasets import summary
    from training.model import build_models
    from training.pipeline import load_images
    from training.workflow import train_and_export

    configure_tensorflow_threads(args.threads)
    backbone = _backbone(args, plan.variant, log)
    recipe = _recipe(args, args.name or Path(args.data).resolve().name, plan)
    from training.export import preflight
    from training.model import defect_mapper

    train_model, scorer = build_models(recipe.model, backbone)
    export_s = 0.0
    if args.litert:
        export_s = preflight(scorer, plan.frame, plan.model_size, Path(args.out), mapper=defect_mapper(train_model), downscale=plan.downscale)
        log(f"preflight: an untrained twin exports as SavedModel and converts to LiteRT ({export_s:.0f}s)")
    data = load_images(checked.items, plan.model_size, plan.frame, checked.images, downscale=plan.downscale)
    log(f"prepared {len(data)} images at working size {plan.model_size[0]}x{plan.model_size[1]} in {time.monotonic() - started:.0f}s")
    fast = None
    if plan.fast_size:
        fast_recipe = _fast_recipe(recipe, plan.fast_size)
        if args.litert:
            fast_model, fast_scorer = build_models(fast_recipe.model, backbone)
            preflight(fast_scorer, plan.frame, plan.fast_size, Path(args.out), mapper=defect_mapper(fast_model),
                      downscale=fast_recipe.model.downscale)
        fast = (fast_recipe, load_images(checked.items, plan.fast_size, plan.frame, checked.images, downscale=fast_recipe.model.downscale))
        log(f"prepared the fast variant's images at {plan.fast_size[0]}x{plan.fast_size[1]} ({fast_recipe.model.downscale})")
    checked.images.clear()  # the decoded camera frames: prepared now, and 20 minutes of training need only those
    if args.max_minutes is None:
        recipe = _fit_the_command_budget(recipe, fast, plan, scorer, len(data), time.monotonic() - started, export_s, args, log)
    info = {**summary(checked.items), "source": str(args.data), "data_split": args.data_split, "masks": checked.masks,
            "plan": plan.as_dict()}
    train_and_export(recipe, data, backbone, args.out, plan.frame, info, args.version, log, fast=fast)
    log(f"total wall time {time.monotonic() - started:.0f}s")
    return 0


def _fit_the_command_budget(recipe, fast, plan, scorer, n_images: int, spent_s: float, export_s: float, args: argparse.Namespace,
                            log: Log):
    """Shorten the training loop when preparing, scoring and exporting this data would push `train` past 30 minutes."""
    from dataclasses import replace

    from training.budget import loop_budget, scoring_seconds_per_frame
    from training.frames import channels

    per_frame = scoring_seconds_per_frame(scorer, plan.model_size, channels(plan.downscale))
    scored = round(n_images * sum(args.fractions[1:]))  # validation and held-out frames, scored once each
    # the fast variant trains after the exact model on its own budget, then scores and exports again
    fast_s = 0.0 if fast is None else 60.0 * fast[0].train.max_minutes + scored * per_frame + 2 * export_s
    budget = loop_budget(recipe.train.max_minutes, spent_s, scored, per_frame, export_s, fast_s)
    if not budget.shortened:
        return recipe
    log(budget.line())
    plan.max_minutes = budget.minutes  # metadata.json's plan says what was run
    return replace(recipe, train=replace(recipe.train, max_minutes=budget.minutes))


def _quick_demo(args: argparse.Namespace, log: Log) -> int:
    from line_runtime.cpus import available_cpus, configure_tensorflow_threads
    from surface_images.synthetic import SyntheticFrames
    from training.pipeline import load_synthetic
    from training.workflow import train_and_export

    args.threads = args.threads or available_cpus()
    configure_tensorflow_threads(args.threads)
    started = time.monotonic()
    frames = SyntheticFrames(seed=args.seed, size=args.frame_size, defect_rate=0.5, defect_scale=args.defect_scale)
    data = load_synthetic(frames, 0, args.frames, args.model_size, args.downscale, workers=args.threads)
    log(f"generated {len(data)} synthetic frames ({int(data.labels.sum())} defective) in {time.monotonic() - started:.0f}s")
    backbone = _backbone(args, args.backbone_variant, log)
    summary = {"images": len(data), "defective": int(data.labels.sum()), "ok": int(len(data) - data.labels.sum()),
               "source": f"surface_images.synthetic.SyntheticFrames(seed={args.seed}, size={tuple(args.frame_size)}, defect_scale={args.defect_scale:g})"}
    train_and_export(_recipe(args, args.name), data, backbone, args.out, tuple(args.frame_size), summary, args.version, log)
    log(f"total wall time {time.monotonic() - started:.0f}s")
    return 0
