"""Contact sheet of a paired folder: for each class, a row of its first images (one view of each
of several shapes), beside a plain render of each shape's voxels. Used for docs/photo_renders.png:

    python scripts/photo_sheet.py /work/data/mn6_32_photo_test docs/photo_renders.png --per-class 4 --thumb 96
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from gan3d.data.pairs import PairedData
from gan3d.render.raster import render_voxels, tile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs")
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--thumb", type=int, default=96)
    ap.add_argument("--colors", type=int, default=256, help="palette size of the PNG (smaller file)")
    args = ap.parse_args()
    data = PairedData(args.pairs)
    pics, labels = [], []
    for c, name in enumerate(data.class_names):
        rows = np.flatnonzero(data.label == c)
        shapes = list(dict.fromkeys(data.shape_index[rows].tolist()))
        step = max(1, len(shapes) // args.per_class)  # shapes spread over the class
        for s in shapes[::step][: args.per_class]:
            row = int(rows[data.shape_index[rows] == s][0])
            img = Image.fromarray(np.asarray(data.images[row])).resize((args.thumb, args.thumb), Image.BILINEAR)
            grid = data.dataset.grids(int(s))[0]
            vox = render_voxels(grid, size=args.thumb, azimuth=float(data.azimuth[row]), elevation=float(data.elevation[row]))
            pics += [np.asarray(img), vox]
            labels += [f"{name} photo", f"{name} voxels"]
    sheet = Image.fromarray(tile(pics, ncols=2 * args.per_class, labels=labels))
    sheet.quantize(colors=args.colors, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"{args.out}: {sheet.width}x{sheet.height}, {len(pics) // 2} shapes of {len(data.class_names)} classes")


if __name__ == "__main__":
    main()
