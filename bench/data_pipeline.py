"""Benchmark: one MLP epoch fed by a DataLoader (tutorial style) vs by course_lib.train.fit.

    .venv/bin/python bench/data_pipeline.py [--batch-size 256] [--hidden 800 800]

(a) the way the PyTorch and Keras tutorials feed MNIST: ``torchvision.datasets.MNIST``
    with ``transforms.ToTensor()`` and a ``DataLoader`` (one PIL image per sample);
(b) ``course_lib.train.fit`` slicing in-memory tensors.
Same model, batch size, optimiser and number of samples; both run in this process, one
after the other, so they share the machine's state. It also times the data feeding
alone (no model), which is where the two differ. The last line is the speed-up.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from course_lib import config, data, models, train


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
            xb, yb = splits.x_train[idx], splits.y_train[idx]
            seen += len(yb)
        return time.perf_counter() - start, seen
    history = train.fit(model, splits.x_train, splits.y_train, train.cross_entropy_loss, epochs=1,
                        batch_size=batch_size, schedule="constant", device="cpu", progress=False)
    return history.seconds, len(splits.x_train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[800, 800])
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data.load_mnist(fast=False)  # make sure the IDX files exist before timing
    start = time.perf_counter()
    data.load_mnist(fast=False)
    print(f"load_mnist() full set from IDX: {time.perf_counter() - start:.2f} s")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"MLP hidden={tuple(args.hidden)}")

    rates = {}
    for label, runner in [("DataLoader", epoch_dataloader), ("in-memory", epoch_in_memory)]:
        for feed_only in (True, False):
            config.seed_everything(0)
            model = models.MLP(hidden=args.hidden)
            seconds, seen = runner(model, args.batch_size, feed_only=feed_only)
            what = "data feeding only" if feed_only else "one training epoch"
            rates[(label, feed_only)] = seen / seconds
            print(f"{label:>10} | {what:<18} | {seconds:7.2f} s | {seen / seconds:12,.0f} samples/s")
    feed = rates[("in-memory", True)] / rates[("DataLoader", True)]
    print(f"speedup of data feeding alone (in-memory / DataLoader): {feed:.1f}")
    print(f"speedup (in-memory / DataLoader): {rates[('in-memory', False)] / rates[('DataLoader', False)]:.1f}")


if __name__ == "__main__":
    main()
