"""Typeset digits: 0-9 rendered with the fonts that ship with installed packages, then made to look
like scikit-learn's digits (the handwritten domain A of CycleGAN's ``digits_to_typed``).

Fonts: Pillow's built-in FreeType font and the TrueType fonts matplotlib ships (DejaVu, STIX,
Computer Modern: regular, bold, italic, mono and serif faces, 22 in all); with ``system_fonts``
also every ``.ttf`` under /usr/share/fonts (optional, since it makes the data depend on the machine).

Each image: a random font and stroke width, the glyph drawn large on a 64 x 64 canvas, a random
affine jitter (rotation, scale, shear, translation), cropped to its ink and centred in a square
(as the NIST preprocessing behind optdigits normalises size), then reduced to 8 x 8 grey levels
0..16 (optdigits counts pixels in 4 x 4 blocks of a 32 x 32 bitmap) and upsampled bicubically to
the configured size, exactly as :func:`pipeline.data.digits.load_digit_images` treats the
handwritten ones. So the two domains differ in glyph shape, not in resolution or blur.
Deterministic for a seed (and a font list).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

CANVAS = 64  # render size; glyphs are drawn at about 44 px
_MPL_FONTS = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
    "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique", "DejaVuSansMono-BoldOblique",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
    "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic", "STIXGeneralBolIta",
    "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10",
)
PILLOW_DEFAULT = "pillow-default"


def font_names(system_fonts: bool = False) -> list[str]:
    """The fonts typed digits are drawn with: Pillow's default, matplotlib's, optionally the system's."""
    mpl_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    names = [PILLOW_DEFAULT] + [str(mpl_dir / f"{name}.ttf") for name in _MPL_FONTS if (mpl_dir / f"{name}.ttf").is_file()]
    if system_fonts:
        names += sorted(str(p) for p in Path("/usr/share/fonts").rglob("*.ttf"))
    return names


def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size) if name == PILLOW_DEFAULT else ImageFont.truetype(name, size)


def render_digit(digit: int, font: ImageFont.FreeTypeFont, stroke: int, rng: np.random.Generator) -> np.ndarray:
    """One glyph on a 64 x 64 canvas with random affine jitter; float [64, 64] ink in [0, 1]."""
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(canvas).text((CANVAS / 2, CANVAS / 2), str(digit), fill=255, font=font, anchor="mm",
                                stroke_width=stroke, stroke_fill=255)
    angle = math.radians(rng.uniform(-12, 12))
    scale = rng.uniform(0.85, 1.1)
    shear = rng.uniform(-0.25, 0.25)
    # Inverse map output -> input (what Image.transform takes), about the canvas centre.
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    a, b, d, e = cos, sin + shear * cos, -sin, cos - shear * sin
    c0 = CANVAS / 2
    coeffs = (a, b, c0 - a * c0 - b * c0, d, e, c0 - d * c0 - e * c0)
    warped = canvas.transform(canvas.size, Image.AFFINE, coeffs, resample=Image.BILINEAR)
    return np.asarray(warped, np.float32) / 255.0


def fit_to_frame(ink: np.ndarray, rng: np.random.Generator, frame: int = 32) -> np.ndarray:
    """Crop to the ink's bounding box, scale the longer side to about 90% of a ``frame`` square
    (random +-1 px shift), as size-normalised NIST digits are; float [frame, frame] in [0, 1]."""
    rows, cols = np.nonzero(ink > 0.1)
    crop = Image.fromarray((ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1] * 255).astype(np.uint8))
    side = max(crop.size)
    target = round(frame * rng.uniform(0.8, 0.95))
    w, h = max(1, round(crop.size[0] * target / side)), max(1, round(crop.size[1] * target / side))
    glyph = crop.resize((w, h), Image.LANCZOS)
    out = Image.new("L", (frame, frame), 0)
    dx, dy = rng.integers(-1, 2, size=2)
    out.paste(glyph, ((frame - w) // 2 + int(dx), (frame - h) // 2 + int(dy)))
    return np.asarray(out, np.float32) / 255.0


def to_optdigits(bitmap: np.ndarray, image_size: int) -> np.ndarray:
    """[32, 32] ink in [0, 1] -> 8 x 8 block sums quantised to 0..16 (optdigits) -> uint8 [S, S]."""
    blocks = bitmap.reshape(8, 4, 8, 4).mean(axis=(1, 3))  # share of ink in each 4 x 4 block
    levels = np.clip(np.round(blocks * 16), 0, 16)
    small = (levels / 16.0 * 255.0).round().astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((image_size, image_size), Image.BICUBIC))


def typed_digit_images(n: int, image_size: int, seed: int, system_fonts: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``n`` typeset digits with balanced labels in random order: (uint8 [n, 1, S, S], int64 [n])."""
    rng = np.random.default_rng(seed)
    names = font_names(system_fonts)
    labels = rng.permutation(np.arange(n) % 10)
    fonts: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}
    images = np.empty((n, 1, image_size, image_size), np.uint8)
    for i, digit in enumerate(labels):
        name = names[rng.integers(len(names))]
        size = int(rng.integers(38, 48))
        font = fonts.setdefault((name, size), _font(name, size))
        ink = render_digit(int(digit), font, int(rng.integers(0, 3)), rng)
        images[i, 0] = to_optdigits(fit_to_frame(ink, rng), image_size)
    return images, labels.astype(np.int64)
