"""The floor a ViT must beat on real data: colour histograms + logistic regression on RSSCN7.

    python bench/bench_baseline_rsscn7.py [--data ../shared/data/rsscn7 --bins 8 --seeds 0,1,2]

Reports accuracy on a stratified 80/20 split (the mission's yardstick) and on lut's own 60/20/20 test
split for each of `--seeds` (default 0), so it lines up with `lut compare` and `lut finetune --seed S`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lut.toolkit.data.datasets import stratified_split
from lut.toolkit.data.imagefolder import read_photo, scan_folder


def histogram(path: Path, bins: int, channel_bins: int = 32) -> np.ndarray:
    """Joint RGB histogram plus per-channel histograms, square-rooted (Hellinger) for a linear model."""
    image = read_photo(path)
    q = image.reshape(3, -1).T // (256 // bins)
    joint = np.bincount(q[:, 0] * bins * bins + q[:, 1] * bins + q[:, 2], minlength=bins ** 3) / q.shape[0]
    per_channel = [np.bincount(image[c].ravel() // (256 // channel_bins), minlength=channel_bins) / q.shape[0]
                   for c in range(3)]
    return np.sqrt(np.concatenate([joint, *per_channel]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data",
                        default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rsscn7"))
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--seeds", default="0", help="lut split seeds, comma-separated")
    args = parser.parse_args()
    start = time.perf_counter()
    classes, files, labels = scan_folder(Path(args.data))
    features = np.stack([histogram(f, args.bins) for f in files])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
    idx = np.arange(len(files))
    train, test = train_test_split(idx, test_size=0.2, stratify=labels, random_state=0)
    acc_80_20 = model.fit(features[train], labels[train]).score(features[test], labels[test])
    print(f"{len(files)} images, {len(classes)} classes, {args.bins}^3-bin joint + 3 x 32-bin colour histograms")
    print(f"  logistic regression, stratified 80/20 split:     accuracy {acc_80_20:.4f}")
    scores = []
    for seed in (int(s) for s in args.seeds.split(",")):
        splits = stratified_split(labels, seed=seed)
        scores.append(model.fit(features[splits.train], labels[splits.train]).score(features[splits.test],
                                                                                   labels[splits.test]))
        print(f"  logistic regression, lut's 60/20/20 test split, seed {seed}:  accuracy {scores[-1]:.4f}")
    if len(scores) > 1:
        print(f"  mean {np.mean(scores):.4f}, sd {np.std(scores, ddof=1):.4f} over {len(scores)} seeds")
    print(f"  {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
