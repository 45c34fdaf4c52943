"""Data: IDX files, locating and verifying MNIST, splits and batch augmentation."""
