"""Where the pipeline keeps its intermediate arrays: in memory, or in a resumable work folder on disk.

The pipeline's stages (RGB latents, snippet predictions per dilation group, the merged depth) all read and write
arrays through a *store*. :class:`MemoryStore` hands out ordinary numpy arrays (``RollingDepthPipeline.__call__``);
:class:`DiskStore` hands out :class:`NpyArray` files in a work folder plus a ``progress.json`` recording which
stages and snippet batches are finished, so a run killed half-way picks up where it stopped and memory does not grow
with the length of the video.

Why not ``np.memmap``: pages of a file mapping that a process has touched count towards its resident memory until
the mapping is closed, and the kernel only takes them back under memory pressure, so a merge that reads every
snippet once through a memmap shows the whole cache in the peak RSS. :class:`NpyArray` reads and writes slices of
the first axis with plain file I/O instead; the files are ordinary ``.npy`` files that ``np.load(..., mmap_mode="r")``
opens as usual.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from ..errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent runs on one work folder are not detected there
    fcntl = None

log = logging.getLogger(__name__)

READ_BLOCK_BYTES = 16 << 20  # iteration reads this much at a time and hands out one row after another
PROGRESS_FILE = "progress.json"
LOCK_FILE = "lock"
PROGRESS_VERSION = 1


# ------------------------------------------------------------------------------------------------------------------
class NpyArray:
    """A C-order ``.npy`` file indexed along its first axis with file reads and writes, never held in memory.

    Supports ``a[i]``, ``a[i, j, ...]`` (leading integers), ``a[i:j]`` (step 1) and ``a[index_array]`` for reading,
    the same except index arrays for writing, ``len``, iteration over rows, ``shape``/``dtype``/``ndim``, and
    ``np.asarray(a)`` (which does read everything: meant for tests and small arrays).

    Parameters
    ----------
    path : str or Path
        An existing ``.npy`` file (see :meth:`create`).
    writable : bool
        Open for writing too.
    rows : int, optional
        Expose only the first ``rows`` rows (a shorter view of the same file).
    """

    def __init__(self, path: str | Path, writable: bool = False, rows: int | None = None):
        self.path = Path(path)
        self._file = open(self.path, "r+b" if writable else "rb")
        try:
            version = npformat.read_magic(self._file)
            reader = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, fortran, dtype = reader(self._file)
        except Exception:
            self._file.close()
            raise
        if fortran or dtype.hasobject:
            self._file.close()
            raise ValueError(f"{self.path}: only C-order arrays of plain numbers are supported")
        self._offset = self._file.tell()
        self._lock = threading.Lock()  # a seek and its read or write are one step for threads (the output writers)
        self.dtype = dtype
        self.shape = (shape[0] if rows is None else min(int(rows), shape[0]), *shape[1:])
        self._row_items = int(np.prod(shape[1:], dtype=np.int64))
        self._row_bytes = self._row_items * dtype.itemsize
        self.writable = writable

    @classmethod
    def create(cls, path: str | Path, shape: tuple[int, ...], dtype=np.float32) -> NpyArray:
        """A new file of the given shape (contents undefined until written; sparse where the file system allows)."""
        dtype = np.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        header = {"descr": npformat.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        with open(path, "wb") as file:
            write = npformat.write_array_header_2_0 if _header_too_long(header) else npformat.write_array_header_1_0
            write(file, header)
            file.truncate(file.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        return cls(path, writable=True)

    # -- sizes ----------------------------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self._row_bytes

    def __len__(self) -> int:
        return self.shape[0]

    def head(self, rows: int) -> NpyArray:
        """The first ``rows`` rows as another (read-only) view of the same file."""
        return NpyArray(self.path, writable=False, rows=rows)

    # -- reading ----------------------------------------------------------------------------------------------------
    def _read(self, first: int, count: int, items: int | None = None, skip: int = 0) -> np.ndarray:
        n_items = count * self._row_items if items is None else items
        out = np.empty(n_items, dtype=self.dtype)
        with self._lock:
            self._file.seek(self._offset + first * self._row_bytes + skip * self.dtype.itemsize)
            n_read = self._file.readinto(memoryview(out).cast("B"))
        if n_read != out.nbytes:
            raise OSError(f"{self.path} is shorter than its header says")
        return out

    def _row(self, index) -> int:
        index = int(index)
        if index < 0:
            index += self.shape[0]
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"row {index} out of range for {self.shape[0]} rows of {self.path.name}")
        return index

    def _rows(self, key: slice) -> tuple[int, int]:
        first, stop, step = key.indices(self.shape[0])
        if step != 1:
            raise IndexError("only slices with step 1 are supported")
        return first, max(first, stop)

    def _sub(self, key: tuple) -> tuple[int, int, tuple[int, ...]]:
        """Leading integer indices -> (row, item offset inside the row, shape of the addressed block)."""
        if len(key) > self.ndim or not all(isinstance(k, (int, np.integer)) for k in key):
            raise IndexError(f"unsupported index {key!r}")
        row = self._row(key[0])
        skip, stride = 0, self._row_items
        for axis, k in enumerate(key[1:], 1):
            size = self.shape[axis]
            k = int(k) + size if k < 0 else int(k)
            if not 0 <= k < size:
                raise IndexError(f"index {k} out of range for axis {axis} of size {size}")
            stride //= size
            skip += k * stride
        return row, skip, self.shape[len(key) :]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._read(self._row(key), 1).reshape(self.shape[1:])
        if isinstance(key, slice):
            first, stop = self._rows(key)
            return self._read(first, stop - first).reshape(stop - first, *self.shape[1:])
        if isinstance(key, tuple):
            row, skip, shape = self._sub(key)
            return self._read(row, 1, items=int(np.prod(shape, dtype=np.int64)), skip=skip).reshape(shape)
        index = np.asarray(key)
        if index.dtype.kind in "iu" and index.ndim == 1:
            out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
            for i, row in enumerate(index):
                out[i] = self[int(row)]
            return out
        raise IndexError(f"unsupported index {key!r}")

    def __iter__(self) -> Iterator[np.ndarray]:
        block = max(1, READ_BLOCK_BYTES // max(1, self._row_bytes))
        for first in range(0, self.shape[0], block):
            yield from self[first : first + block]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = self[:]
        return data if dtype is None else data.astype(dtype, copy=False)

    # -- writing ----------------------------------------------------------------------------------------------------
    def __setitem__(self, key, value) -> None:
        if not self.writable:
            raise ValueError(f"{self.path} is open read-only")
        if isinstance(key, (int, np.integer)):
            row, skip, shape = self._row(key), 0, self.shape[1:]
        elif isinstance(key, slice):
            row, stop = self._rows(key)
            skip, shape = 0, (stop - row, *self.shape[1:])
        elif isinstance(key, tuple):
            row, skip, shape = self._sub(key)
        else:
            raise IndexError(f"unsupported index {key!r}")
        data = np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=self.dtype), shape))
        with self._lock:
            self._file.seek(self._offset + row * self._row_bytes + skip * self.dtype.itemsize)
            self._file.write(memoryview(data).cast("B"))

    def flush(self, sync: bool = True) -> None:
        """Hand written data to the OS (enough to survive the process being killed); ``sync`` also asks the disk."""
        self._file.flush()
        if sync and self.writable:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> NpyArray:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NpyArray({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"


def _header_too_long(header: dict) -> bool:
    return len(repr(header)) > 60000  # format 1.0 stores the header length in 2 bytes


def rows_in_blocks(array, block_bytes: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(first_row, rows)`` blocks of any array-like indexed by slices along its first axis (ndarray or NpyArray),
    each about ``block_bytes`` (default ``READ_BLOCK_BYTES``) big: the way to stream a disk-backed array."""
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * np.dtype(array.dtype).itemsize)
    block = max(1, (block_bytes or READ_BLOCK_BYTES) // row_bytes)
    for first in range(0, len(array), block):
        yield first, np.asarray(array[first : first + block])


# ------------------------------------------------------------------------------------------------------------------
class MemoryStore:
    """Arrays in memory and no record of progress: a pipeline call runs every stage from the start."""

    resumable = False

    def __init__(self):
        self._state: dict = {}

    def array(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def get(self, key: str, default=None):
        return self._state.get(key, default)

    def set(self, key: str, value) -> None:
        self._state[key] = value

    def close(self) -> None:
        pass


class PrefixedStore:
    """A view of another store whose array and key names all carry ``prefix``: one shot of a multi-shot run keeps
    its own stages and progress in the run's store, so every shot resumes where it stopped."""

    def __init__(self, store, prefix: str):
        self.store, self.prefix = store, prefix
        self.resumable = getattr(store, "resumable", True)

    def array(self, name: str, shape: tuple[int, ...], dtype=np.float32):
        return self.store.array(self.prefix + name, shape, dtype)

    def get(self, key: str, default=None):
        return self.store.get(self.prefix + key, default)

    def set(self, key: str, value) -> None:
        self.store.set(self.prefix + key, value)


class DiskStore:
    """Arrays as ``.npy`` files in ``folder`` plus ``progress.json``, valid only for one ``fingerprint``.

    ``fingerprint`` is a JSON-able description of everything that decides the arrays' contents (input file, model
    weights, options). Opening a folder whose recorded fingerprint differs starts over (logged); opening one that
    matches resumes: :meth:`get` returns what earlier runs recorded with :meth:`set`, and :meth:`array` reopens the
    existing files. :meth:`set` first flushes every array to the OS, then replaces ``progress.json`` atomically, so
    the record never claims more than the files hold, whenever the process dies. The folder is locked while open
    (an OS lock, released even by ``kill -9``), so two runs of one video into one folder cannot mix their work.

    Parameters
    ----------
    folder : Path
        The work folder (created).
    fingerprint : dict
        What the cached arrays depend on.
    resume : bool
        False always starts over.
    sync : bool
        Also ``fsync`` arrays before each progress update, so even a power cut cannot leave a record that claims
        more than the disk holds.
    """

    resumable = True

    def __init__(self, folder: Path, fingerprint: dict, resume: bool = True, sync: bool = True):
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # normalised as it will read back
        self.sync = sync
        self._arrays: dict[str, NpyArray] = {}
        self.resumed = False
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = self._acquire_lock()
        state = self._load() if resume else None
        if state is not None and state.get("fingerprint") == self.fingerprint:
            self._state = state.get("done", {})
            self.resumed = bool(self._state)
            if self.resumed:
                log.info("resuming the interrupted run kept in %s", self.folder)
        else:
            if state is not None:
                log.info("%s holds an interrupted run with other inputs, model or options: starting over", self.folder)
            for entry in self.folder.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                elif entry.name != LOCK_FILE:
                    entry.unlink()
            self._state = {}
        self._write()

    def _acquire_lock(self):
        lock = open(self.folder / LOCK_FILE, "a")
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                raise UserError(
                    f"{self.folder} is in use by another rolldepth run on the same video and output folder"
                ) from None
        return lock

    def _load(self) -> dict | None:
        try:
            state = json.loads((self.folder / PROGRESS_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("version") != PROGRESS_VERSION:
            return None
        return state

    def _write(self) -> None:
        tmp = self.folder / f".{PROGRESS_FILE}.partial"
        tmp.write_text(json.dumps({"version": PROGRESS_VERSION, "fingerprint": self.fingerprint, "done": self._state}))
        os.replace(tmp, self.folder / PROGRESS_FILE)

    def array(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> NpyArray:
        """The array file ``<name>.npy``: reopened if it exists with this shape and dtype, else created."""
        shape = tuple(int(s) for s in shape)
        if name in self._arrays:
            self._arrays.pop(name).close()
        path = self.folder / f"{name}.npy"
        array = None
        if path.is_file():
            try:
                array = NpyArray(path, writable=True)
            except (OSError, ValueError):
                array = None
            if array is not None and (array.shape != shape or array.dtype != np.dtype(dtype)):
                array.close()
                array = None
        if array is None:
            array = NpyArray.create(path, shape, dtype)
        self._arrays[name] = array
        return array

    def get(self, key: str, default=None):
        return self._state.get(key, default)

    def set(self, key: str, value) -> None:
        """Record progress, after making every array's data safe."""
        for array in self._arrays.values():
            array.flush(sync=self.sync)
        self._state[key] = value
        self._write()

    def close(self) -> None:
        """Close the arrays and release the folder (it stays on disk for a later run to resume)."""
        for array in self._arrays.values():
            array.close()
        self._arrays.clear()
        self._lock.close()

    def remove(self) -> None:
        """Delete the work folder (after the outputs are safely written)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
