# Author: your name
# Netid: your netid
# Aid: If in doubt, list anything your referenced. A stack overflow post, chatgpt, gemini, your friend Bob, etc. If referring to an LLM, you must included a link to a particular session. Just saying "I asked chatgpt" isn't a get out of trouble free statement. If two submissions are nearly identical and nothing is listed, I will have to assume that there was copying with an attempt at obfuscation.
"""Homework 2, "evil twins": print the indices of the mislabelled digits.

    python3 hw02.py --data bad_digits_ubyte.gz --labels bad_labels_ubyte.gz

must print your best guess of the evil twins' indices as one comma-separated line,
for example ``2, 3, 12, 19``. Start from train_linear_mnist.py and mnist_util.py.
"""

import argparse

import mnist_util


def find_evil_twins(images, labels):
    """Return the list of indices you believe are evil twins."""
    # YOUR CODE HERE: train, look at what the network gets wrong, combine runs.
    return []


def main():
    parser = argparse.ArgumentParser(description="Find the evil twins in an MNIST-format file.")
    parser.add_argument("--data", required=True, help="IDX image file, e.g. bad_digits_ubyte.gz")
    parser.add_argument("--labels", required=True, help="IDX label file, e.g. bad_labels_ubyte.gz")
    args = parser.parse_args()
    images = mnist_util.read_images(args.data)
    labels = mnist_util.read_labels(args.labels)
    print(", ".join(str(i) for i in find_evil_twins(images, labels)))


if __name__ == "__main__":
    main()
