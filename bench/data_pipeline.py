"""Benchmark: one MLP epoch fed by a DataLoader (tutorial style), by course_lib.train.fit, and by a bare loop.

    .venv/bin/python bench/data_pipeline.py [--batch-size 256] [--hidden 800 800] [--repeats 5] [--overhead-only] [--threads 1]

(a) the way the PyTorch and Keras tutorials feed MNIST: ``torchvision.datasets.MNIST``
    with ``transforms.ToTensor()`` and a ``DataLoader`` (one PIL image per sample);
(b) ``course_lib.train.fit`` slicing in-memory tensors;
(c) a bare loop over batches sliced beforehand: forward, loss, backward, optimiser step,
    nothing else. The floor any training loop can reach on this model.
Same model, batch size, optimiser and number of samples. (a) and (b) run one after the
other and also time the data feeding alone (no model), which is where the two differ.
(b) and (c) are repeated, interleaved (``timing.time_interleaved``), and compared by
their median: the last line is fit's overhead over the bare loop (1.00 = none).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from course_lib import config, data, models, timing, train
from course_lib.losses import cross_entropy_loss


def epoch_dataloader(model: nn.Module, batch_size: int, feed_only: bool = False) -> tuple[float, int]:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(root=str(config.data_dir()), train=True, download=False,
                             transform=transforms.ToTensor())
    subset = torch.utils.data.Subset(dataset, range(data.NUM_TRAIN))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start, seen = time.perf_counter(), 0
    for xb, yb in loader:
        if not feed_only:
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seen += len(yb)
    return time.perf_counter() - start, seen


def epoch_in_memory(model: nn.Module, batch_size: int, feed_only: bool = False) -> tuple[float, int]:
    splits = data.load_mnist(fast=False)  # loading is timed separately below
    if feed_only:
        start, seen = time.perf_counter(), 0
        order = torch.randperm(len(splits.x_train))
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            _, yb = splits.x_train[idx], splits.y_train[idx]  # the slicing is what is timed
            seen += len(yb)
        return time.perf_counter() - start, seen
    history = train.fit(model, splits.x_train, splits.y_train, cross_entropy_loss, epochs=1,
                        batch_size=batch_size, schedule="constant", progress=False)
    return history.seconds, len(splits.x_train)


def fit_overhead(hidden: list, batch_size: int, repeats: int, warmup: int = 1) -> dict:
    """Median epoch seconds of ``train.fit`` (default settings: cosine schedule, progress bar) and a bare loop."""
    splits = data.load_mnist(fast=False)
    x, y = splits.x_train, splits.y_train
    with config.seeded(0):
        fit_model, bare_model = models.MLP(hidden=hidden), models.MLP(hidden=hidden)
        order = torch.randperm(len(x))
    batches = [(x[order[i:i + batch_size]], y[order[i:i + batch_size]]) for i in range(0, len(x), batch_size)]

    def fit_epoch(_):
        train.fit(fit_model, x, y, cross_entropy_loss, epochs=1, batch_size=batch_size, desc="fit epoch")

    def bare_epoch(_):
        optimizer = torch.optim.Adam(bare_model.parameters(), lr=1e-3)
        for xb, yb in batches:
            loss = nn.functional.cross_entropy(bare_model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return timing.time_interleaved({"fit": fit_epoch, "bare loop": bare_epoch}, range(warmup + repeats), warmup)


def compare_feeding(hidden: list, batch_size: int) -> None:
    """(a) vs (b): one epoch and the data feeding alone, DataLoader against in-memory slicing."""
    rates = {}
    for label, runner in [("DataLoader", epoch_dataloader), ("in-memory", epoch_in_memory)]:
        for feed_only in (True, False):
            with config.seeded(0):
                model = models.MLP(hidden=hidden)
            seconds, seen = runner(model, batch_size, feed_only=feed_only)
            what = "data feeding only" if feed_only else "one training epoch"
            rates[(label, feed_only)] = seen / seconds
            print(f"{label:>10} | {what:<18} | {seconds:7.2f} s | {seen / seconds:12,.0f} samples/s")
    feed = rates[("in-memory", True)] / rates[("DataLoader", True)]
    print(f"data-feeding ratio (in-memory / DataLoader samples per second): {feed:.1f}")
    print(f"speedup of one epoch (in-memory / DataLoader): {rates[('in-memory', False)] / rates[('DataLoader', False)]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[800, 800])
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs of fit and of the bare loop, each")
    parser.add_argument("--overhead-only", action="store_true", help="skip the DataLoader comparison")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice); 1 is steadier on a busy machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data.load_mnist(fast=False)  # make sure the IDX files exist before timing
    start = time.perf_counter()
    data.load_mnist(fast=False)
    print(f"load_mnist() full set from IDX: {time.perf_counter() - start:.2f} s")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"MLP hidden={tuple(args.hidden)}")

    if not args.overhead_only:
        compare_feeding(args.hidden, args.batch_size)
    timings = fit_overhead(args.hidden, args.batch_size, args.repeats)
    for name, result in timings.items():
        print(f"{name:>10} | one training epoch | median {result.median:.2f} s (IQR {result.q1:.2f}-{result.q3:.2f} s, "
              f"{len(result.wall)} interleaved repeats)")
    print(f"fit overhead over the bare loop: {timings['fit'].median / timings['bare loop'].median:.2f}")


if __name__ == "__main__":
    main()
