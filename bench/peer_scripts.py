"""The peers lut classify is measured against in bench_peers.py, each run as its own process:
a plain rasterio + numpy + onnxruntime script, a raw session on the same patches, and TorchGeo's
GridGeoSampler pipeline. Each is written the way a careful user would write it, with ONNX Runtime's
default session options."""

#: a plain script: lut's window grid (the last window aligned inward), batches of `batch` windows across
#: window rows, probabilities averaged per cell (the pieces between window edges) as lut does, so the map is
#: lut's; numpy normalisation in float32; a tiled, deflated GeoTIFF written cell row by cell row.
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
    ye, xe = sorted({0, H, *ys, *[y + S for y in ys]}), sorted({0, W, *xs, *[x + S for x in xs]})
    acc = np.zeros((len(ye) - 1, len(xe) - 1, session.get_outputs()[0].shape[-1]), np.float32)
    hits = np.zeros(acc.shape[:2], np.float32)
    widths = np.diff(xe)
    profile = dict(driver="GTiff", width=W, height=H, count=1, dtype="uint8", crs=src.crs, nodata=255,
                   transform=src.transform, tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    with rasterio.open(out, "w", **profile) as dst:
        pending, where, state = [], [], {"written": 0}
        def write(upto):  # cell rows before `upto` are final
            for i in range(state["written"], upto):
                cls = (acc[i] / np.maximum(hits[i], 1)[:, None]).argmax(1).astype(np.uint8)
                rows = ye[i + 1] - ye[i]
                dst.write(np.repeat(np.repeat(cls, widths)[None], rows, 0), 1, window=Window(0, ye[i], W, rows))
            state["written"] = max(state["written"], upto)
        def flush():
            x = np.stack(pending).astype(np.float32)
            x *= np.float32(1 / 255)
            x -= mean
            x *= 1 / std
            logits = session.run(None, {"pixel_values": x})[0]
            e = np.exp(logits - logits.max(1, keepdims=True))
            for (r, c), p in zip(where, e / e.sum(1, keepdims=True)):
                rows = slice(ye.index(ys[r]), ye.index(min(ys[r] + S, H)))
                cols = slice(xe.index(xs[c]), xe.index(min(xs[c] + S, W)))
                acc[rows, cols] += p
                hits[rows, cols] += 1
            r, c = where[-1]
            done = r + 1 if c == len(xs) - 1 else r  # window rows whose every window has run
            write(len(ye) - 1 if done == len(ys) else ye.index(ys[done]))
            pending.clear()
            where.clear()
        for r, y in enumerate(ys):
            strip = src.read(window=Window(0, y, W, S))
            for c, x in enumerate(xs):
                pending.append(strip[:, :, x:x + S])
                where.append((r, c))
                if len(pending) == batch:
                    flush()
        if pending:
            flush()
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
