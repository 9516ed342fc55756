"""Omniglot (Lake, Salakhutdinov & Tenenbaum 2015) read straight from its official zip files, and N-way K-shot tasks.

Data. The dataset's public repository (github.com/brendenlake/omniglot, folder ``python/``) ships each split as
a zip ``<split>/<alphabet>/<character>/<drawing>.png`` of 105×105 one-bit PNGs, 20 drawings per character:
``images_background.zip`` (30 alphabets, 964 characters), ``images_evaluation.zip`` (20 alphabets, 659),
the two "minimal" background splits ``images_background_small1.zip`` (5 alphabets, 136 characters) and
``images_background_small2.zip`` (5, 156), and ``one-shot-classification/all_runs.zip``: Lake's 20 runs of
20-way within-alphabet one-shot classification (``runNN/training/classXX.png``, ``runNN/test/itemXX.png``,
``runNN/class_labels.txt`` pairing each test item with its training class).

Resizing to 28×28 follows the MAML reference code (cbfinn/maml, ``data/omniglot_resized/resize_images.py``):
``Image.open(f).resize((28, 28), resample=LANCZOS)`` on the original PNG. Those PNGs have Pillow mode "1"
(one bit per pixel), and Pillow ignores the requested filter for mode "1" images and uses nearest-neighbour
(documented in ``Image.resize``), so the reference images are *binary* 28×28 nearest-neighbour samples; that
is ``resample="reference"`` here. ``resample="lanczos"`` converts to 8-bit grey first and really applies
Lanczos (smoother, keeps thin strokes) — an option, not the paper's data. As in the reference data generator
(``1.0 - image / 255``), ink is 1 and paper 0.

Cache. Decoding ~3,000 PNGs takes seconds, so each zip is decoded once into a compact ``.npz`` (uint8 ink in
0…255, alphabet and character names) in a cache folder, under a name keyed by the zip's SHA-256 and the
resize option: a changed zip can never be served stale arrays. The SHA-256 of every file whose checksum is
known (:data:`KNOWN_SHA256`) is verified before it is read; for the full background/evaluation zips, whose
checksums are not pinned here, the alphabet / character / drawing counts are verified instead (:data:`STRUCTURE`).

Tasks. :class:`OmniglotTasks` samples N-way K-shot episodes, vectorised over the task axis with an explicit
``numpy.random.Generator``: N distinct characters per task, either from anywhere (``within_alphabet=False``, the
MAML setting) or from a single alphabet (``True``; Lake's benchmark discriminates within an alphabet, which is
harder); K support and Q query drawings per class (distinct drawings); and, with ``rotate=True``, each class
rotated by a random multiple of 90°, which makes rotated characters new classes (Santoro et al. 2016; the MAML
setup, which rotates each sampled class by one random multiple of 90°).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._checks import check_rng, positive_int

__all__ = ["KNOWN_SHA256", "STRUCTURE", "DOWNLOAD_URL", "IMAGE_SIZE", "OmniglotError", "Alphabets", "LakeRuns",
           "sha256_file", "load_alphabets", "load_lake_runs", "download", "default_cache_dir", "OmniglotTasks",
           "to_inputs", "rotate_images"]

IMAGE_SIZE = 28
DRAWINGS = 20
# The files beside the project in ../shared/data/omniglot (their SHA256SUMS), byte-identical to the dataset
# repository's python/ folder.
KNOWN_SHA256 = {
    "images_background_small1.zip": "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
    "images_background_small2.zip": "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
    "all_runs.zip": "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
}
# (alphabets, characters), 20 drawings each: the dataset README's counts.
STRUCTURE = {
    "images_background.zip": (30, 964),
    "images_evaluation.zip": (20, 659),
    "images_background_small1.zip": (5, 136),
    "images_background_small2.zip": (5, 156),
}
DOWNLOAD_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}"
RESAMPLE = ("reference", "lanczos")
_CACHE_VERSION = 1


class OmniglotError(ValueError):
    """A data file that is missing, corrupt, or not the file it claims to be."""


def default_cache_dir():
    """$MAMLNP_CACHE, else ~/.cache/mamlnp/omniglot."""
    env = os.environ.get("MAMLNP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mamlnp" / "omniglot"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked_zip(path):
    """The zip's SHA-256, after checking it exists and (if known) matches :data:`KNOWN_SHA256`."""
    path = Path(path)
    if not path.is_file():
        raise OmniglotError(f"no Omniglot file at {str(path)!r}: {_where_to_get(path.name, path.parent)}")
    digest = sha256_file(path)
    want = KNOWN_SHA256.get(path.name)
    if want is not None and digest != want:
        raise OmniglotError(f"{str(path)!r} has SHA-256 {digest}, expected {want} (the dataset's official file); "
                            "it is corrupt or another file. Replace it with the official one.")
    return digest


def _where_to_get(name, folder):
    url = DOWNLOAD_URL.format(name=("one-shot-classification/" if name == "all_runs.zip" else "") + name)
    return (f"download {url} (the dataset's public repository, github.com/brendenlake/omniglot) and place it, "
            f"unchanged and still zipped, at {Path(folder) / name}")


def _decode(png_bytes, resample):
    from PIL import Image  # Pillow: a dependency of matplotlib, which the project requires

    with Image.open(io.BytesIO(png_bytes)) as im:
        if resample == "reference":
            # exactly the reference call; on these mode-"1" images Pillow falls back to nearest-neighbour
            small = im.resize((IMAGE_SIZE, IMAGE_SIZE), resample=Image.Resampling.LANCZOS)
        else:
            small = im.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), resample=Image.Resampling.LANCZOS)
        grey = np.asarray(small.convert("L"), dtype=np.uint8)
    return (255 - grey).astype(np.uint8)  # ink = 255, paper = 0 (the reference's 1 − x/255, in bytes)


def _check_resample(resample):
    if resample not in RESAMPLE:
        raise ValueError(f"resample must be one of {RESAMPLE}, got {resample!r}")


def _cache_file(zip_path, cache_dir, resample):
    """Where the decoded images of the official zip ``zip_path`` are cached: named by the zip's checked content
    digest, the resampling and the image size (the zip and ``resample`` are checked first)."""
    _check_resample(resample)
    digest = _checked_zip(zip_path)
    folder = default_cache_dir() if cache_dir is None else cache_dir
    return Path(folder) / f"{zip_path.stem}-{digest[:16]}-{resample}-{IMAGE_SIZE}px-v{_CACHE_VERSION}.npz"


def _save_npz(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)  # atomic: a crash leaves no half-written cache


def _names(strings):
    return np.array(strings, dtype=np.str_)


@dataclass(frozen=True)
class Alphabets:
    """One split: ``images`` uint8 (C, 20, 28, 28), ink in 0…255; ``alphabet_of`` (C,) index into ``alphabets``;
    ``characters`` (C,) names "Alphabet/characterNN"."""

    images: np.ndarray
    alphabet_of: np.ndarray
    alphabets: tuple
    characters: tuple
    source: str = ""

    @property
    def num_characters(self):
        return int(self.images.shape[0])

    def counts(self):
        """(alphabets, characters, drawings per character)."""
        return len(self.alphabets), self.num_characters, int(self.images.shape[1])

    def merge(self, other):
        """The union of two splits; alphabets of ``other`` already in ``self`` are skipped (background small 1 and
        small 2 both hold Greek and Latin)."""
        keep = np.array([other.alphabets[a] not in self.alphabets for a in other.alphabet_of], dtype=bool)
        new = [a for a in other.alphabets if a not in self.alphabets]
        index = {a: len(self.alphabets) + i for i, a in enumerate(new)}
        return Alphabets(np.concatenate([self.images, other.images[keep]]),
                         np.concatenate([self.alphabet_of, [index[other.alphabets[a]] for a in other.alphabet_of[keep]]]
                                        ).astype(np.int64),
                         self.alphabets + tuple(new), self.characters + tuple(np.array(other.characters)[keep]),
                         f"{self.source}+{other.source}")

    def without(self, other):
        """This split minus the alphabets that ``other`` holds: held-out alphabets (e.g. small 2 minus small 1)."""
        keep_alpha = [a for a in self.alphabets if a not in other.alphabets]
        if not keep_alpha:
            raise ValueError("every alphabet of this split is in the other; nothing is held out")
        index = {a: i for i, a in enumerate(keep_alpha)}
        keep = np.array([self.alphabets[a] in index for a in self.alphabet_of], dtype=bool)
        return Alphabets(self.images[keep], np.array([index[self.alphabets[a]] for a in self.alphabet_of[keep]],
                                                     dtype=np.int64),
                         tuple(keep_alpha), tuple(np.array(self.characters)[keep]), f"{self.source}−{other.source}")


def load_alphabets(path, *, cache_dir=None, resample="reference"):
    """Read an ``images_*.zip`` split into :class:`Alphabets` (decoded once, then served from the cache)."""
    path = Path(path)
    cache = _cache_file(path, cache_dir, resample)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            found = Alphabets(data["images"], data["alphabet_of"], tuple(data["alphabets"].tolist()),
                              tuple(data["characters"].tolist()), path.name)
    else:
        found = _read_split(path, resample)
        _save_npz(cache, images=found.images, alphabet_of=found.alphabet_of, alphabets=_names(found.alphabets),
                  characters=_names(found.characters))
    _check_structure(found, path.name)
    return found


_DRAWING = re.compile(r"^[^/]+/([^/]+)/([^/]+)/([^/]+\.png)$")


def _read_split(path, resample):
    members = {}
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                m = _DRAWING.match(name)
                if m:
                    members.setdefault((m.group(1), m.group(2)), []).append((m.group(3), name))
            keys = sorted(members)
            if not keys:
                raise OmniglotError(f"{str(path)!r} holds no <split>/<alphabet>/<character>/<drawing>.png files; "
                                    "it is not an Omniglot images_*.zip")
            bad = [f"{a}/{c} ({len(members[(a, c)])})" for a, c in keys if len(members[(a, c)]) != DRAWINGS]
            if bad:
                raise OmniglotError(f"{str(path)!r}: every character must have {DRAWINGS} drawings; these do not: "
                                    f"{bad[:5]}")
            images = np.empty((len(keys), DRAWINGS, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
            for c, key in enumerate(keys):
                for d, (_, name) in enumerate(sorted(members[key])):
                    images[c, d] = _decode(z.read(name), resample)
    except zipfile.BadZipFile as err:
        raise OmniglotError(f"{str(path)!r} is not a readable zip file ({err}); replace it with the official "
                            "file") from err
    alphabets = tuple(sorted({a for a, _ in keys}))
    index = {a: i for i, a in enumerate(alphabets)}
    return Alphabets(images, np.array([index[a] for a, _ in keys], dtype=np.int64), alphabets,
                     tuple(f"{a}/{c}" for a, c in keys), path.name)


def _check_structure(found, name):
    want = STRUCTURE.get(name)
    if want is not None and found.counts() != (*want, DRAWINGS):
        raise OmniglotError(f"{name}: found {found.counts()[0]} alphabets, {found.counts()[1]} characters, "
                            f"{found.counts()[2]} drawings each; the official file has {want[0]}, {want[1]}, "
                            f"{DRAWINGS}. Replace it with the official file.")


@dataclass(frozen=True)
class LakeRuns:
    """Lake et al.'s 20 one-shot runs: ``support`` uint8 (20, 20, 28, 28) (training image of class j at [r, j]),
    ``query`` uint8 (20, 20, 28, 28) and ``query_labels`` (20, 20): the class of each test item."""

    support: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray

    def episodes(self):
        """As a meta-batch of 20 tasks: ``(support, query)`` with flattened float inputs, labels 0…19."""
        runs, ways = self.support.shape[:2]
        ys = np.broadcast_to(np.arange(ways), (runs, ways)).copy()
        return (to_inputs(self.support), ys), (to_inputs(self.query), self.query_labels.copy())


def load_lake_runs(path, *, cache_dir=None, resample="reference"):
    """Read ``all_runs.zip`` into :class:`LakeRuns` (cached like :func:`load_alphabets`)."""
    path = Path(path)
    cache = _cache_file(path, cache_dir, resample)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return LakeRuns(data["support"], data["query"], data["query_labels"])
    support = np.empty((20, 20, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    query = np.empty_like(support)
    labels = np.empty((20, 20), dtype=np.int64)
    try:
        with zipfile.ZipFile(path) as z:
            for r in range(20):
                run = f"run{r + 1:02d}"
                for j in range(20):
                    support[r, j] = _decode(z.read(f"{run}/training/class{j + 1:02d}.png"), resample)
                    query[r, j] = _decode(z.read(f"{run}/test/item{j + 1:02d}.png"), resample)
                pairs = z.read(f"{run}/class_labels.txt").decode().split()
                for test, train in zip(pairs[0::2], pairs[1::2]):
                    item = int(re.search(r"item(\d+)\.png$", test).group(1)) - 1
                    labels[r, item] = int(re.search(r"class(\d+)\.png$", train).group(1)) - 1
    except (zipfile.BadZipFile, KeyError, AttributeError) as err:
        raise OmniglotError(f"{str(path)!r} is not Lake's all_runs.zip (run01…run20 with training/, test/ and "
                            f"class_labels.txt): {err}") from err
    found = LakeRuns(support, query, labels)
    _save_npz(cache, support=support, query=query, query_labels=labels)
    return found


def download(name, cache_dir=None, *, url=None, timeout=60):
    """Fetch ``images_background.zip`` / ``images_evaluation.zip`` (or a known file) into the cache; return its path.

    On failure raises :class:`OmniglotError` saying which file to place where. The full zips' checksums are not
    pinned here, so their structure (alphabet, character and drawing counts) is verified by :func:`load_alphabets`.
    """
    if name not in STRUCTURE and name not in KNOWN_SHA256:
        raise ValueError(f"name must be one of {sorted(set(STRUCTURE) | set(KNOWN_SHA256))}, got {name!r}")
    folder = Path(default_cache_dir() if cache_dir is None else cache_dir)
    target = folder / name
    if target.is_file():
        return target
    url = url or DOWNLOAD_URL.format(name=("one-shot-classification/" if name == "all_runs.zip" else "") + name)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{os.getpid()}.part"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
            while block := response.read(1 << 20):
                f.write(block)
        if not zipfile.is_zipfile(tmp):
            raise OmniglotError(f"what {url} returned is not a zip file")
        os.replace(tmp, target)
    except (OSError, OmniglotError) as err:
        if tmp.exists():
            tmp.unlink()
        raise OmniglotError(f"could not download {name} ({type(err).__name__}: {err}). Instead, "
                            f"{_where_to_get(name, folder)}") from err
    return target


# ---------------------------------------------------------------------------------------- tasks
def to_inputs(images, dtype=np.float32):
    """uint8 ink (…, 28, 28) -> flattened inputs (…, 784) in [0, 1]: the MLP's x."""
    images = np.asarray(images)
    return (images.reshape(images.shape[:-2] + (-1,)).astype(dtype) / dtype(255.0)).astype(dtype, copy=False)


def rotate_images(images, quarter_turns):
    """Rotate each image (…, H, W) counter-clockwise by ``quarter_turns`` (…) × 90° (np.rot90's direction)."""
    images = np.asarray(images)
    turns = np.asarray(quarter_turns) % 4
    if turns.shape != images.shape[:-2]:
        raise ValueError(f"quarter_turns must have shape {images.shape[:-2]} (one per image), got {turns.shape}")
    out = images.copy()
    for k in (1, 2, 3):  # a loop over the four angles, never over images
        chosen = turns == k
        if chosen.any():
            out[chosen] = np.rot90(images[chosen], k, axes=(-2, -1))
    return out


def _first_n_of_random_order(rng, shape, n, excluded=None):
    """For each row, ``n`` distinct column indices in random order (argsort of uniform keys; ``excluded``
    columns are pushed past every allowed one)."""
    keys = rng.random(shape)
    if excluded is not None:
        keys = np.where(excluded, 2.0, keys)
    return np.argsort(keys, axis=-1, kind="stable")[..., :n]


@dataclass(frozen=True)
class OmniglotTasks:
    """N-way K-shot episodes from :class:`Alphabets`.

    ``sample(rng, meta_batch, ways, shots, queries)`` returns ``(support, query, info)``: support
    ``(x (T, N·K, 784) float32, y (T, N·K) int64)`` with class j's K drawings at positions j·K…j·K+K−1 and
    label j; query likewise with Q drawings per class; ``info`` holds the characters (T, N), quarter turns (T, N)
    and drawing indices (T, N, K+Q). The label order is random because the characters are drawn in random order.
    """

    data: Alphabets
    rotate: bool = False
    within_alphabet: bool = False

    def sample(self, rng, meta_batch, ways, shots, queries=15, dtype=np.float32):
        check_rng(rng)
        T, N, K, Q = (positive_int(v, n) for v, n in ((meta_batch, "meta_batch"), (ways, "ways"), (shots, "shots"),
                                                        (queries, "queries")))
        drawings = self.data.images.shape[1]
        if K + Q > drawings:
            raise ValueError(f"shots + queries = {K + Q} exceeds the {drawings} drawings of each character")
        C = self.data.num_characters
        if self.within_alphabet:
            sizes = np.bincount(self.data.alphabet_of, minlength=len(self.data.alphabets))
            usable = np.flatnonzero(sizes >= N)
            if usable.size == 0:
                raise ValueError(f"ways = {N}: no alphabet has {N} characters (largest has {sizes.max()}); "
                                 "use fewer ways or within_alphabet=False")
            alphabet = usable[rng.integers(usable.size, size=T)]
            excluded = self.data.alphabet_of[None, :] != alphabet[:, None]
            characters = _first_n_of_random_order(rng, (T, C), N, excluded)
        else:
            if N > C:
                raise ValueError(f"ways = {N} exceeds the {C} characters available")
            characters = _first_n_of_random_order(rng, (T, C), N)
        turns = rng.integers(4, size=(T, N)) if self.rotate else np.zeros((T, N), dtype=np.int64)
        picks = _first_n_of_random_order(rng, (T, N, drawings), K + Q)
        images = self.data.images[characters[..., None], picks]  # (T, N, K+Q, 28, 28)
        if self.rotate:
            images = rotate_images(images, np.broadcast_to(turns[..., None], picks.shape))
        x = to_inputs(images, dtype)
        labels = np.broadcast_to(np.arange(N)[None, :, None], (T, N, K + Q))
        support = (x[:, :, :K].reshape(T, N * K, -1), labels[:, :, :K].reshape(T, N * K).astype(np.int64))
        query = (x[:, :, K:].reshape(T, N * Q, -1), labels[:, :, K:].reshape(T, N * Q).astype(np.int64))
        return support, query, {"characters": characters, "turns": turns, "drawings": picks}
