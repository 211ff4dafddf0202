"""A train split as Parquet shards, for data larger than memory.

``data/prepared/<name>.shards/`` holds ``manifest.json`` and, when the split is streamed,
``part-00000.parquet``, ... with one row per image: ``image`` (the uint8 pixels ``[C, H, W]``
flattened, a fixed-size list of C*H*W uint8), ``label`` (int64) and ``index`` (int64, the row's
position in the train split: lets tests and audits see which rows a worker was served). A split
kept in memory gets a directory with only the manifest (``"streamed": false``): DVC needs the
declared output to exist.

The directory is written aside and swapped into place whole (:func:`pipeline.artifacts.atomic_path`),
so a directory that exists is complete.
Training reads shards through Ray Data (:func:`ray_dataset`, ray imported lazily: only this
reader and ``pipeline.train``/``pipeline.tune`` import ray); driver-side code that needs the train
split (the evaluator) iterates them with pyarrow alone (:func:`iter_shard_batches`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.artifacts import atomic_path, read_json, write_json
from pipeline.data.npz import sha256_file

MANIFEST = "manifest.json"
ROWS_PER_SHARD = 5000  # ~3.8 MB at 3x32x32: big enough for Parquet, small enough to shuffle files
FORMAT_VERSION = 1


def shards_path(npz_path: str | Path) -> Path:
    """``data/prepared/<name>.npz`` -> ``data/prepared/<name>.shards`` (the directory DVC tracks)."""
    return Path(npz_path).with_suffix(".shards")


def _table(x: np.ndarray, y: np.ndarray, start: int) -> pa.Table:
    """One chunk of rows: x uint8 [n, C, H, W], y int64 [n]; ``start`` is the first row's index."""
    assert x.dtype == np.uint8 and x.ndim == 4, f"shards hold uint8 images [N, C, H, W], got {x.dtype} {x.shape}"
    flat = np.ascontiguousarray(x).reshape(len(x), -1)  # [n, C*H*W]
    image = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), pa.uint8()), flat.shape[1])
    return pa.table({"image": image, "label": pa.array(np.asarray(y, np.int64)),
                     "index": pa.array(np.arange(start, start + len(x), dtype=np.int64))})


def _rechunk(chunks: Iterable[tuple[np.ndarray, np.ndarray]], rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of any size -> chunks of exactly ``rows`` rows (the last may be shorter), holding at
    most one shard plus one input chunk in memory."""
    xs, ys, held = [], [], 0
    for x, y in chunks:
        assert len(x) == len(y), f"{len(x)} images but {len(y)} labels in a chunk"
        xs.append(x)
        ys.append(y)
        held += len(x)
        while held >= rows:
            x_all, y_all = np.concatenate(xs), np.concatenate(ys)
            yield x_all[:rows], y_all[:rows]
            xs, ys, held = [x_all[rows:]], [y_all[rows:]], held - rows
    if held:
        yield np.concatenate(xs), np.concatenate(ys)


def write_shards(chunks: Iterable[tuple[np.ndarray, np.ndarray]], out_dir: str | Path,
                 rows_per_shard: int = ROWS_PER_SHARD) -> dict[str, Any]:
    """Write (x uint8 [n, C, H, W], y [n]) chunks as Parquet shards plus ``manifest.json``; returns
    the manifest (``n_rows``, ``shape``, each shard's file, rows and sha256).

    Chunks are consumed one at a time, so a generator keeps memory at about one shard. Nothing
    appears at ``out_dir`` unless every shard was written (a failure removes the temp directory).
    """
    with atomic_path(out_dir, directory=True) as tmp:
        shards, shape, n, label_max = [], None, 0, -1
        for i, (x, y) in enumerate(_rechunk(chunks, rows_per_shard)):
            assert shape in (None, list(x.shape[1:])), f"shard {i}: images {x.shape[1:]}, earlier ones {shape}"
            shape = list(x.shape[1:])
            name = f"part-{i:05d}.parquet"
            pq.write_table(_table(x, y, n), tmp / name, compression="zstd")
            shards.append({"file": name, "rows": int(len(x)), "sha256": sha256_file(tmp / name)})
            n += len(x)
            label_max = max(label_max, int(np.max(y)))
        assert shards, "no rows to write as shards"
        manifest = {"format": FORMAT_VERSION, "streamed": True, "n_rows": n, "shape": shape, "label_max": label_max,
                    "shards": shards}
        write_json(tmp / MANIFEST, manifest)
    return manifest


def write_placeholder(out_dir: str | Path) -> dict[str, Any]:
    """The directory of a split kept in memory: only a manifest saying so."""
    manifest = {"format": FORMAT_VERSION, "streamed": False}
    with atomic_path(out_dir, directory=True) as tmp:
        write_json(tmp / MANIFEST, manifest)
    return manifest


def read_manifest(shards_dir: str | Path) -> dict[str, Any]:
    """The manifest of a shards directory; FileNotFoundError naming the stage if it is missing."""
    path = Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shards manifest not found; run `dvc repro prepare@<dataset>`")
    return read_json(path)


def shard_files(shards_dir: str | Path) -> list[str]:
    """Absolute paths of the shards, in write order (Ray workers chdir)."""
    shards_dir = Path(shards_dir).resolve()
    return [str(shards_dir / s["file"]) for s in read_manifest(shards_dir)["shards"]]


def table_columns(batch: pa.Table | pa.RecordBatch) -> dict[str, np.ndarray]:
    """A batch of shard rows as numpy: ``image`` uint8 [n, C*H*W] (flat: the manifest has the
    shape), ``label`` and ``index`` int64 [n]. Zero-copy where Arrow allows."""
    columns = {}
    for name in batch.schema.names:
        column = batch.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if name == "image":
            columns[name] = column.flatten().to_numpy(zero_copy_only=False).reshape(len(batch), -1)
        else:
            columns[name] = column.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return columns


def iter_shard_batches(shards_dir: str | Path, batch_rows: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The whole split in write order, ``batch_rows`` at a time: (x uint8 [n, C, H, W], y int64 [n]).

    Plain pyarrow, no Ray: for driver-side passes over the train split (the evaluator)."""
    shape = read_manifest(shards_dir)["shape"]
    for path in shard_files(shards_dir):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["image", "label"]):
            columns = table_columns(batch)
            yield columns["image"].reshape(len(batch), *shape), columns["label"]


def local_stream(shards_dir: str | Path, batch_size: int, seed: int,
                 buffer_rows: int = 4096) -> Iterator[dict[str, np.ndarray]]:
    """One process's epoch over the shards (a Session without Ray Data: tests, PBT trials): shards
    in a seeded random order, rows shuffled within a ``buffer_rows`` window as Ray Data's local
    shuffle does; full batches only (``table_columns`` dicts)."""
    rng = np.random.default_rng(seed)
    files = shard_files(shards_dir)
    held: list[dict[str, np.ndarray]] = []
    rows = 0
    for i in rng.permutation(len(files)):
        for batch in pq.ParquetFile(files[i]).iter_batches(batch_size=buffer_rows):
            held.append(table_columns(batch))
            rows += len(batch)
            if rows < buffer_rows + batch_size:
                continue
            pool = {k: np.concatenate([h[k] for h in held]) for k in held[0]}
            order = rng.permutation(rows)
            for start in range(0, rows - buffer_rows - batch_size + 1, batch_size):
                yield {k: v[order[start:start + batch_size]] for k, v in pool.items()}
            used = (rows - buffer_rows) // batch_size * batch_size
            held, rows = [{k: v[order[used:]] for k, v in pool.items()}], rows - used
    if held:
        pool = {k: np.concatenate([h[k] for h in held]) for k in held[0]}
        order = rng.permutation(rows)
        for start in range(0, rows - batch_size + 1, batch_size):
            yield {k: v[order[start:start + batch_size]] for k, v in pool.items()}


def read_labels(shards_dir: str | Path) -> np.ndarray:
    """The ``label`` column of the whole split in write order: int64 [N] (small; no pixels read)."""
    return np.concatenate([pq.read_table(path, columns=["label"]).column(0).to_numpy().astype(np.int64)
                           for path in shard_files(shards_dir)])


def load_all(shards_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole split in memory (x [N, C, H, W] uint8, y [N]): for tests and small checks only."""
    xs, ys = zip(*iter_shard_batches(shards_dir))
    return np.concatenate(xs), np.concatenate(ys)


def ray_dataset(shards_dir: str | Path, seed: int, read_cpus: float):
    """The shards as a Ray Dataset whose file order is reshuffled at every execution (epoch), from
    ``seed``: a streaming shuffle (a global ``random_shuffle``/``randomize_block_order`` would hold
    the whole epoch first). Read tasks ask for ``read_cpus`` CPUs each (see the launcher)."""
    from ray.data import FileShuffleConfig, read_parquet  # lazily: only training needs ray

    files = shard_files(shards_dir)
    dataset = read_parquet(files, num_cpus=read_cpus, columns=["image", "label", "index"], override_num_blocks=len(files),
                           shuffle=FileShuffleConfig(seed=seed, reseed_after_execution=True))
    dataset.context.enable_progress_bars = False  # one bar per epoch and operator would flood the workers' log
    return dataset
