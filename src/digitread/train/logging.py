"""Where training numbers go: the console, TensorBoard, or nowhere. Swappable, so the loop never cares."""

from __future__ import annotations

import sys
from pathlib import Path


class NullLogger:
    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        pass

    def log_epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class ConsoleLogger(NullLogger):
    """One line per epoch on stderr (the progress bar shows the steps)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def log_epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars.items() if k != "epoch"]
        print(f"epoch {epoch}: " + "  ".join(parts), file=self.stream, flush=True)

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class TensorBoardLogger(NullLogger):
    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency, imported only here
        except ImportError:
            from digitread.errors import DigitreadError

            raise DigitreadError("--tensorboard needs TensorBoard: pip install 'digitread[tensorboard]'") from None

        self.writer = SummaryWriter(str(log_dir))

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self.writer.add_scalar(f"step/{k}", v, step)

    def log_epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            if isinstance(v, int | float):
                self.writer.add_scalar(f"epoch/{k}", v, epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MultiLogger(NullLogger):
    def __init__(self, *loggers: NullLogger):
        self.loggers = loggers

    def log_scalars(self, step: int, scalars: dict[str, float]) -> None:
        for lg in self.loggers:
            lg.log_scalars(step, scalars)

    def log_epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        for lg in self.loggers:
            lg.log_epoch(epoch, scalars)

    def message(self, text: str) -> None:
        for lg in self.loggers:
            lg.message(text)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()
