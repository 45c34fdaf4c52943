"""PyTorch's official MNIST example (pytorch/examples, mnist/main.py) trained as published, as a
reference for the speed benchmark: its network, its data pipeline (a Dataset turning each image into a
PIL image, then ToTensor and Normalize, batched by a DataLoader without workers or shuffling, as the
script does on a CPU), Adadelta at lr 1.0, StepLR(gamma=0.7) every epoch, batch 64, 14 epochs, a
test after each epoch. torchvision cannot be imported here, so its two transforms are written out.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

MEAN, STD = 0.1307, 0.3081


class ExampleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return F.log_softmax(self.fc2(x), dim=1)


class MnistImages(Dataset):
    """What torchvision's MNIST dataset with ToTensor() and Normalize((0.1307,), (0.3081,)) returns."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = torch.from_numpy(np.array(images, np.uint8)), labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[i].numpy(), mode="L")
        x = torch.from_numpy(np.array(image, np.uint8, copy=True)).unsqueeze(0).float().div(255)  # ToTensor
        return (x - MEAN) / STD, int(self.labels[i])  # Normalize


def _test(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(loader.dataset)


def train_example(data, seed: int = 1, epochs: int = 14) -> dict:
    """Train as published; returns the test accuracy after every epoch with the training seconds so
    far (the tests between epochs are not counted), and the trained model."""
    torch.manual_seed(seed)
    train_loader = DataLoader(MnistImages(data.train.images, data.train.labels), batch_size=64)
    test_loader = DataLoader(MnistImages(data.test.images, data.test.labels), batch_size=1000)
    model = ExampleNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    seconds, curve = 0.0, []
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        for batch, (x, y) in enumerate(train_loader):
            optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
            if batch % 10 == 0:  # the script logs the loss every 10 batches, which syncs as this does
                loss.item()
        seconds += time.perf_counter() - t0
        curve.append({"epoch": epoch, "seconds": round(seconds, 2), "test_accuracy": _test(model, test_loader)})
        scheduler.step()
    return {"curve": curve, "model": model.eval()}


def example_probabilities(model: nn.Module, digits: np.ndarray) -> np.ndarray:
    """Class probabilities for uint8 digits (N, 28, 28) the example's way: normalise, run, exponentiate."""
    x = (torch.from_numpy(digits).unsqueeze(1).float().div(255) - MEAN) / STD
    with torch.no_grad():
        return model(x).exp().numpy()
