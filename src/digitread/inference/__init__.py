"""From a user's image to digits: loading, MNIST-style normalisation and batched classification."""
