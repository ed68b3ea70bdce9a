"""Where fit_many's batched strategy beats one fit after another on a CPU.

    python benchmarks/batched_cpu.py [--threads 1] [--quick]

M sigmoid MLPs 784-(width x depth)-10 from M random starts on the embedded
MNIST training images, one epoch, Adam: fit_many(strategy="sequential")
against fit_many(strategy="batched"), in interleaved rounds (so a busier
machine slows both), for a grid of widths, depths, model counts and batch
sizes. Prints one markdown row per setting: the seconds of each (median of
the rounds) and the ratio taken round by round, median (min-max).
What `strategy="auto"` chooses on a CPU rests on this table (RESULTS.md).
"""
import argparse
import itertools
import time
from statistics import median

import torch
import torch.nn.functional as F

import aelab
from aelab.bench.cases import mlp
from aelab.sweep import fit_many


def ce(model, batch):
    X, y = batch
    return F.cross_entropy(model(X), y)


def seconds(strategy, M, width, depth, batch_size, X, y):
    torch.manual_seed(0)
    models = [mlp(width, depth) for _ in range(M)]
    start = time.perf_counter()
    fit_many(models, [(X, y)] * M, ce, strategy=strategy, num_epochs=1,
             batch_size=batch_size, device="cpu", quiet=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = aelab.load_dataset("mnist", "train", quiet=True)
    X, y = train.X[:2000], train.y[:2000]
    grid = ([(4, 32, 1, 64)] if args.quick else
            list(itertools.product((4, 20), (32, 128, 512), (1, 3), (64, 256))))
    print(f"{args.threads} torch thread(s); 1-min load average at the start "
          f"{open('/proc/loadavg').read().split()[0]}")
    print("| models | width | depth | batch | sequential s | batched s | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for M, width, depth, batch_size in grid:
        seconds("batched", 2, width, depth, batch_size, X[:256], y[:256])  # warm-up
        seq, bat = [], []
        for _ in range(args.rounds):
            seq.append(seconds("sequential", M, width, depth, batch_size, X, y))
            bat.append(seconds("batched", M, width, depth, batch_size, X, y))
        r = [a / b for a, b in zip(seq, bat)]
        print(f"| {M} | {width} | {depth} | {batch_size} | {median(seq):.2f} | "
              f"{median(bat):.2f} | {median(r):.1f}x ({min(r):.1f}-{max(r):.1f}) |",
              flush=True)
    print(f"load average at the end {open('/proc/loadavg').read().split()[0]}")


if __name__ == "__main__":
    main()
