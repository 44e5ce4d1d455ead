"""The peers lut classify is measured against in bench_peers.py, each run as its own process:
a plain rasterio + numpy + onnxruntime script, a raw session on the same patches, and TorchGeo's
GridGeoSampler pipeline. Each is written the way a careful user would write it, with ONNX Runtime's
default session options."""

#: a plain script: lut's window grid (the last window aligned inward) and its overlap averaging, so the map
#: is lut's; numpy normalisation in float32; a tiled, deflated GeoTIFF written strip by strip.
PLAIN = r'''
import sys, numpy as np, onnxruntime as ort, rasterio
from rasterio.windows import Window
scene, model, out, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
S, mean, std = 224, np.float32(0.5), np.float32(0.5)
def origins(n):
    o = list(range(0, n - S + 1, S))
    return o + [n - S] if o[-1] != n - S else o
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
with rasterio.open(scene) as src:
    H, W = src.height, src.width
    ys, xs = origins(H), origins(W)
    edges = sorted({0, H, *ys, *[y + S for y in ys]})
    bands = {}  # first row of a band of rows -> [summed probabilities (K, W), windows per column (W,)]
    profile = dict(driver="GTiff", width=W, height=H, count=1, dtype="uint8", crs=src.crs, nodata=255,
                   transform=src.transform, tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    with rasterio.open(out, "w", **profile) as dst:
        for r, y in enumerate(ys):
            strip = src.read(window=Window(0, y, W, S))
            windows = np.stack([strip[:, :, x:x + S] for x in xs]).astype(np.float32)
            windows *= np.float32(1 / 255)
            windows -= mean
            windows *= 1 / std
            logits = np.concatenate([session.run(None, {"pixel_values": windows[i:i + batch]})[0]
                                     for i in range(0, len(windows), batch)])
            e = np.exp(logits - logits.max(1, keepdims=True))
            probs = e / e.sum(1, keepdims=True)
            for top, bottom in zip(edges[:-1], edges[1:]):
                if y <= top and bottom <= y + S:
                    acc = bands.setdefault(top, [np.zeros((probs.shape[1], W), np.float32), np.zeros(W, np.float32)])
                    for x, p in zip(xs, probs):
                        acc[0][:, x:x + S] += p[:, None]
                        acc[1][x:x + S] += 1
            last = r == len(ys) - 1
            for top in [t for t in bands if last or edges[edges.index(t) + 1] <= ys[r + 1]]:
                acc = bands.pop(top)
                cls = (acc[0] / acc[1]).argmax(0).astype(np.uint8)
                height = edges[edges.index(top) + 1] - top
                dst.write(np.repeat(cls[None], height, 0), 1, window=Window(0, top, W, height))
'''

#: a raw session: the scene's first windows, prepared in memory before the clock starts, through session.run
RAW = r'''
import sys, time, numpy as np, onnxruntime as ort, rasterio
from rasterio.windows import Window
scene, model, batch, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
S = 224
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
windows = []
with rasterio.open(scene) as src:
    for y in range(0, src.height - S + 1, S):
        strip = src.read(window=Window(0, y, src.width, S))
        windows += [strip[:, :, x:x + S] for x in range(0, src.width - S + 1, S)]
        if len(windows) >= limit:
            break
x = (np.stack(windows[:limit]).astype(np.float32) / 255 - 0.5) / 0.5
x = x.astype(np.float32)
session.run(None, {"pixel_values": x[:batch]})  # warm-up
start = time.perf_counter()
for i in range(0, len(x), batch):
    session.run(None, {"pixel_values": x[i:i + batch]})
print(len(x) / (time.perf_counter() - start))
'''

#: TorchGeo 0.8: RasterDataset + GridGeoSampler + DataLoader (one worker process), the same ONNX model
TORCHGEO = r'''
import sys, numpy as np, onnxruntime as ort
from pathlib import Path
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset, stack_samples
from torchgeo.samplers import GridGeoSampler
scene, model, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
class Scene(RasterDataset):
    filename_glob = scene.name
    is_image = True
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
dataset = Scene(paths=str(scene.parent))
loader = DataLoader(dataset, sampler=GridGeoSampler(dataset, size=224, stride=224), batch_size=batch,
                    collate_fn=stack_samples, num_workers=1)
done = 0
for item in loader:
    x = (item["image"].numpy().astype(np.float32) / 255 - 0.5) / 0.5
    session.run(None, {"pixel_values": x.astype(np.float32)})
    done += len(x)
print(done)
'''
