"""Train a small lung-ultrasound frame classifier on an exported covidx-us build, streamed into the HF Trainer.

What it does: streams ``datasets.load_dataset(DIR, CONFIG, streaming=True)`` from a build exported in the Hub layout
(``DIR/<config>/<split>-NNNNN-of-NNNNN.parquet`` plus ``DIR/README.md`` with a ``configs:`` block), resizes, augments and
normalises each frame on the fly, trains a small randomly initialised ResNet (``transformers.ResNetForImageClassification``)
with ``transformers.Trainer`` on CPU for ``--max-steps`` steps, then evaluates on the validation split and prints the
accuracy overall and per class (class names from the ``label`` ClassLabel feature). No pretrained weights are fetched and
nothing reaches the Hub. What it must not do: touch the build, or stand in for a benchmark (it is a starting point).

Usage::

    python examples/train.py --data ./covidx_us --config frames-4class --max-steps 200
    # prints lines such as:  accuracy[covid] = 0.6250 (10/16)

Needs the ``train`` extra: ``pip install -e .[train]`` (torch, transformers, accelerate). torchvision is not needed: the
transforms are written with PIL and numpy.

Streaming pitfalls with the Trainer, and what this script does about each
--------------------------------------------------------------------------
1. ``remove_unused_columns``. By default the Trainer drops every column the model's ``forward`` does not name
   (``pixel_values``, ``labels``). On a map-style ``Dataset`` with ``set_transform`` it drops ``image`` *before* the
   transform runs (KeyError: 'image'); on a streaming ``IterableDataset`` it drops them inside the collator, so a
   collate_fn that builds ``pixel_values`` from ``image`` never sees it. Here the transform runs in
   ``IterableDataset.map``, which emits exactly ``pixel_values`` and ``labels`` (``remove_columns=`` every source column),
   and ``remove_unused_columns=False``. Leaving a column such as ``frame_index`` or ``luss`` in with
   ``remove_unused_columns=False`` makes the collator pass it to ``forward`` (unexpected keyword argument), so drop them.
2. ``max_steps`` is required. A streaming dataset has no ``__len__``, so the Trainer cannot turn ``num_train_epochs`` into
   steps and raises "max_steps must be set to a positive value"; learning-rate schedules and logging count in steps.
   When the stream runs out before ``max_steps`` the Trainer starts it again as the next epoch (and calls
   ``set_epoch``, which reshuffles).
3. Shuffling is approximate. ``IterableDataset.shuffle(seed, buffer_size)`` shuffles the order of the shards and then
   draws from a buffer of ``buffer_size`` examples. An export writes the frames of one video next to each other, so a
   buffer smaller than a few videos' worth of frames gives batches from one video (and one class). Use
   ``--shuffle-buffer`` well above frames-per-video x videos-per-batch, and export with several shards.
4. DataLoader workers. With ``--workers N`` each worker gets whole shards of the stream (``datasets`` splits by shard);
   with fewer shards than workers the extra workers are stopped ("Too many dataloader workers"). Each worker also holds
   its own copy of the augmentation random generator; it is seeded here from the worker's torch seed (different per
   worker and per epoch, derived from ``--seed``) so workers do not repeat each other's flips.
5. The labels column. Models compute the loss only when they get ``labels``. The build names the column ``label``
   (a ClassLabel); the default collator renames ``label`` to ``labels`` but only when the column is there under exactly
   that name, so a renamed or string column trains without a loss. Here the map writes ``labels`` itself, and the
   class names for ``id2label`` come from the ClassLabel feature, never from a hand-written list.
6. Evaluation on a stream has no length either: the Trainer iterates the validation split to its end, so keep it
   unshuffled and without augmentation (the per-class counts printed are the whole split).

Augmentations, chosen for lung ultrasound: horizontal flip (probe orientation differs between operators and sites) and a
small random affine (rotation +-10 degrees, shift +-5 %, scale 0.9-1.1) filled with black like the area outside the
field of view. No vertical flip: depth runs top to bottom (pleural line above, A-lines and B-lines below).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CONFIGS = ("frames-4class", "frames-3class", "frames-binary")
# No pretrained statistics apply to a randomly initialised model: centre grey-scale ultrasound pixels on 0.
MEAN = 0.5
STD = 0.5


# ---- transforms (pure functions: PIL image in, array out) ----


def random_affine(
    image: Image.Image,
    rng: np.random.Generator,
    *,
    max_rotate: float = 10.0,
    max_shift: float = 0.05,
    scale: tuple[float, float] = (0.9, 1.1),
) -> Image.Image:
    """Rotate, shift and scale ``image`` about its centre by random amounts; uncovered pixels are black."""
    w, h = image.size
    angle = math.radians(rng.uniform(-max_rotate, max_rotate))
    s = rng.uniform(*scale)
    tx, ty = rng.uniform(-max_shift, max_shift) * w, rng.uniform(-max_shift, max_shift) * h
    cx, cy = w / 2, h / 2
    # PIL wants the inverse map, output pixel -> input pixel: in = C + R(-angle)/s * (out - C - t).
    cos, sin = math.cos(angle) / s, math.sin(angle) / s
    a, b, d, e = cos, sin, -sin, cos
    c = cx - a * (cx + tx) - b * (cy + ty)
    f = cy - d * (cx + tx) - e * (cy + ty)
    return image.transform(
        (w, h), Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BILINEAR, fillcolor=0
    )


def to_pixel_values(image: Image.Image, size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Resize ``image`` to ``size`` x ``size``, augment when ``rng`` is given, normalise; float32 ``(3, size, size)``."""
    image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    if rng is not None:
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = random_affine(image, rng)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return ((pixels - MEAN) / STD).transpose(2, 0, 1).copy()


def make_transform(size: int, seed: int | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The per-example map: ``{image, label, ...}`` -> ``{pixel_values, labels}``; augments when ``seed`` is not None."""
    state: dict[str, np.random.Generator] = {}

    def transform(example: dict[str, Any]) -> dict[str, Any]:
        rng = None
        if seed is not None:
            if "rng" not in state:  # created lazily, inside the DataLoader worker that runs the map
                import torch.utils.data

                # A worker's seed differs per worker and per epoch (workers restart each epoch) and follows --seed.
                info = torch.utils.data.get_worker_info()
                state["rng"] = np.random.default_rng(seed if info is None else [seed, info.seed])
            rng = state["rng"]
        return {"pixel_values": to_pixel_values(example["image"], size, rng), "labels": int(example["label"])}

    return transform


# ---- metrics ----


def per_class_accuracy(
    predictions: np.ndarray, labels: np.ndarray, names: Sequence[str]
) -> list[tuple[str, int, int]]:
    """``(class name, correct, total)`` for every class, in ClassLabel order (total 0 when the split has none)."""
    return [
        (name, int(np.sum((labels == k) & (predictions == k))), int(np.sum(labels == k)))
        for k, name in enumerate(names)
    ]


def format_accuracy(rows: Sequence[tuple[str, int, int]]) -> list[str]:
    """Lines ``accuracy[all] = 0.5000 (6/12)`` then one ``accuracy[<class>] = ...`` per class (``n/a`` when empty)."""
    correct, total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    lines = []
    for name, c, t in [("all", correct, total), *rows]:
        value = f"{c / t:.4f}" if t else "n/a"
        lines.append(f"accuracy[{name}] = {value} ({c}/{t})")
    return lines


# ---- command line ----


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path("covidx_us"), help="exported build folder (Hub layout)"
    )
    parser.add_argument("--config", default="frames-4class", choices=CONFIGS)
    parser.add_argument(
        "--max-steps", type=int, default=200, help="optimiser steps (required by streaming datasets)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128, help="frames are resized to this square size")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/covidx-us"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--shuffle-buffer", type=int, default=2000, help="examples held by the streaming shuffle buffer"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers (at most the number of shards)"
    )
    parser.add_argument("--eval-split", default="validation")
    parser.add_argument(
        "--fold", type=int, metavar="I", help="k-fold export (splits fold0..foldK-1, covidx-us build --split kfold): "
        "train on every other fold, evaluate on fold I (--eval-split is then foldI)"
    )
    args = parser.parse_args(argv)
    if args.fold is not None:
        if args.fold < 0:
            parser.error(f"--fold must be at least 0, got {args.fold}")
        args.eval_split = f"fold{args.fold}"
    for name in ("max_steps", "batch_size", "image_size", "shuffle_buffer"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.workers < 0:
        parser.error(f"--workers must be at least 0, got {args.workers}")
    if not (args.data / "README.md").is_file():
        parser.error(
            f"--data {args.data}: no README.md there; expected an exported build (covidx-us build --output DIR)"
        )
    if not (args.data / args.config).is_dir():
        found = sorted(p.name for p in args.data.iterdir() if p.is_dir() and not p.name.startswith("."))
        parser.error(
            f"--data {args.data} has no {args.config}/ folder; configs found: {', '.join(found) or 'none'}"
        )
    return args


def _train_and_eval(streams, args: argparse.Namespace):
    """(train, evaluation) streams: train/--eval-split, or with --fold I every fold but I, and fold I."""
    import datasets

    if args.fold is not None:
        folds = sorted((s for s in streams if s.startswith("fold")), key=lambda s: int(s[4:]) if s[4:].isdigit() else 0)
        if args.eval_split not in folds:
            hint = f"folds: {', '.join(folds)}" if folds else "it is not a k-fold export (covidx-us build --split kfold)"
            sys.exit(f"error: {args.data} {args.config} has no split {args.eval_split!r}; {hint}; "
                     f"splits: {', '.join(streams)}")
        others = [streams[f] for f in folds if f != args.eval_split]
        if not others:
            sys.exit(f"error: {args.data} {args.config} has a single fold: nothing left to train on")
        return datasets.concatenate_datasets(others), streams[args.eval_split]
    for split in ("train", args.eval_split):
        if split not in streams:
            hint = "; a k-fold export: pass --fold I" if any(s.startswith("fold") for s in streams) else ""
            sys.exit(f"error: {args.data} {args.config} has no {split!r} split; splits: {', '.join(streams)}{hint}")
    return streams["train"], streams[args.eval_split]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    # Heavy imports after the arguments are checked, so a typo fails in a second, not after torch loads.
    import datasets
    import transformers
    from transformers import ResNetConfig, ResNetForImageClassification, Trainer, TrainingArguments

    transformers.set_seed(args.seed)
    streams = datasets.load_dataset(str(args.data), args.config, streaming=True)
    train, evaluation = _train_and_eval(streams, args)
    features = train.features or train._resolve_features().features
    label = features.get("label")
    if not isinstance(label, datasets.ClassLabel):
        sys.exit(f"error: {args.data} {args.config}: column 'label' must be a ClassLabel, got {label!r}")
    names = list(label.names)
    print(f"{args.config}: classes {', '.join(names)}", flush=True)

    columns = list(features)
    train = train.shuffle(seed=args.seed, buffer_size=args.shuffle_buffer)
    train = train.map(make_transform(args.image_size, args.seed), remove_columns=columns)
    evaluation = evaluation.map(make_transform(args.image_size, None), remove_columns=columns)

    config = ResNetConfig(
        num_channels=3,
        embedding_size=16,
        hidden_sizes=[16, 32, 64, 128],
        depths=[1, 1, 1, 1],
        layer_type="basic",  # about 0.31 M parameters: trains on CPU in seconds per step
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    model = ResNetForImageClassification(config)

    training_args = TrainingArguments(
        output_dir=str(args.output_dir),
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=min(10, args.max_steps // 10),
        weight_decay=0.01,
        remove_unused_columns=False,  # pitfall 1: the map already keeps only pixel_values and labels
        dataloader_num_workers=args.workers,
        dataloader_pin_memory=False,
        logging_steps=max(1, min(50, args.max_steps // 10)),
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=args.seed,
        data_seed=args.seed,
        disable_tqdm=not sys.stderr.isatty(),
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train)
    result = trainer.train()
    print(f"train_loss = {result.training_loss:.6f}", flush=True)
    trainer.save_model(str(args.output_dir))

    prediction = trainer.predict(evaluation)
    predicted = np.argmax(prediction.predictions, axis=-1)
    eval_loss = prediction.metrics.get("test_loss", float("nan"))
    print(f"{args.eval_split}_loss = {eval_loss:.6f}", flush=True)
    for line in format_accuracy(per_class_accuracy(predicted, np.asarray(prediction.label_ids), names)):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
