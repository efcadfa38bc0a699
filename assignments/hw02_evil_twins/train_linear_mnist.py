"""Train a linear network on an MNIST-format file and print which digits it gets wrong.

    python3 train_linear_mnist.py --data bad_digits_ubyte.gz --labels bad_labels_ubyte.gz

The starting point of homework 2: it trains on every digit, then tests on the same
digits and prints the failures by index, e.g.

    Final accuracy 144/165 (0.8727272748947144)
    Final failures at indices [2, 3, 12, 19, ...]

Change it (subsets of the data, repeated runs, fewer epochs, another network) into
hw02.py, which prints only your guess of the evil twins.
"""

import argparse

import torch
from torch import nn

import mnist_util


def train(X, y, num_epochs=100, lr=0.1, batch_size=32, seed=None):
    """A linear network (784 -> 10) trained with SGD on (X, y); returns the model."""
    if seed is not None:
        torch.manual_seed(seed)
    model = nn.Linear(X.shape[1], 10)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(num_epochs):
        order = torch.randperm(len(X))
        for i in range(0, len(X), batch_size):
            idx = order[i:i + batch_size]
            loss = loss_fn(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def failures(model, X, y):
    """Indices of the digits whose predicted class differs from their label."""
    with torch.no_grad():
        pred = model(X).argmax(1)
    return (pred != y).nonzero().flatten().tolist()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="IDX image file, e.g. bad_digits_ubyte.gz")
    parser.add_argument("--labels", required=True, help="IDX label file, e.g. bad_labels_ubyte.gz")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    X, y = mnist_util.as_tensors(mnist_util.read_images(args.data), mnist_util.read_labels(args.labels))
    model = train(X, y, num_epochs=args.epochs)
    wrong = failures(model, X, y)
    correct = len(y) - len(wrong)
    print(f"Final accuracy {correct}/{len(y)} ({correct / len(y)})")
    print(f"Final failures at indices {wrong}")


if __name__ == "__main__":
    main()
