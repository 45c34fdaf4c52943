"""Digits drawn in handwriting-style fonts: shapes MNIST's American writers rarely make (the 1 with a
long flag, the 7 with a bar, open 4s, looped 2s), for the synthetic strips.

The digits are rendered once, normalised the MNIST way (``fit_digit``) and shipped as a small
safetensors file, so training does not depend on which fonts a machine has. To rebuild it, with
Debian's font packages installed (see ``FONTS``)::

    python -m digitread.data.font_digits
"""

from __future__ import annotations

import argparse
import functools
from importlib import resources
from pathlib import Path

import numpy as np

BANK = "font_digits.safetensors"
# Debian package -> font files; all free licences that allow redistribution (OFL, GPL). Outline fonts are
# left out: a hollow digit is not a pen stroke.
FONTS = {
    "fonts-dkg-handwriting": ["truetype/fifthhorseman/dkg.ttf", "truetype/fifthhorseman/dkgBd.ttf",
                              "truetype/fifthhorseman/dkgIt.ttf", "truetype/fifthhorseman/dkgBI.ttf"],
    "fonts-breip": ["truetype/breip/Breip.ttf"],
    "fonts-humor-sans": ["truetype/humor-sans/Humor-Sans.ttf"],
    "fonts-kristi": ["truetype/kristi/Kristi.ttf"],
    "fonts-bwht": [f"opentype/bwht/BecauseWe{n}-Regular.otf"
                   for n in ("Build", "Connect", "Create", "Learn", "Mentor", "Organize")],
    "fonts-dancingscript": ["opentype/dancingscript/DancingScript-Regular.otf",
                            "opentype/dancingscript/DancingScript-Bold.otf"],
    "fonts-comic-neue": [f"opentype/comic-neue/ComicNeue-{s}.otf"
                         for s in ("Regular", "Bold", "Italic", "Light", "BoldItalic", "LightItalic")],
    "fonts-klee": ["truetype/klee/KleeOne-Regular.ttf", "truetype/klee/KleeOne-SemiBold.ttf"],
}  # fmt: skip


def render_digits(font_path: Path, size: int = 64) -> np.ndarray:
    """The ten digits of one font as MNIST-style uint8 fields (10, 28, 28), white on black."""
    from PIL import Image, ImageDraw, ImageFont

    from digitread.inference.normalize import fit_digit

    font = ImageFont.truetype(str(font_path), size)
    fields = []
    for digit in "0123456789":
        canvas = Image.new("L", (size * 2, size * 2), 0)
        ImageDraw.Draw(canvas).text((size // 2, size // 4), digit, fill=255, font=font)
        fields.append(fit_digit(np.asarray(canvas)))
    return np.stack(fields)


@functools.cache
def load_font_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8) from the bank shipped in the package."""
    from safetensors.numpy import load_file

    tensors = load_file(str(resources.files("digitread") / "data" / BANK))
    return tensors["images"], tensors["labels"]


def main() -> int:
    from safetensors.numpy import save_file

    from digitread._io import atomic_write

    parser = argparse.ArgumentParser(description="Render the font digit bank from installed Debian font packages.")
    parser.add_argument("--fonts", type=Path, default=Path("/usr/share/fonts"), help="where the fonts are installed")
    parser.add_argument("--out", type=Path, default=Path(str(resources.files("digitread") / "data" / BANK)))
    args = parser.parse_args()
    images, names = [], []
    for package, files in FONTS.items():
        for name in files:
            path = args.fonts / name
            if not path.is_file():
                raise SystemExit(f"{path} is missing: apt-get install {package}")
            images.append(render_digits(path))
            names.append(name)
    bank = {"images": np.concatenate(images), "labels": np.tile(np.arange(10, dtype=np.uint8), len(images))}
    atomic_write(args.out, lambda tmp: save_file(bank, str(tmp), metadata={"fonts": ",".join(names)}))
    print(f"{len(bank['labels'])} digits from {len(names)} fonts written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
