"""Where a run's files live: a local path or an fsspec URL (s3://, gs://, memory://, file://), one
place for reading inputs and writing artifacts, so that a run whose output is `s3://bucket/run` keeps
nothing a reader needs on a worker's own disk.

Writes are whole or nothing: a local file is written under a temporary name and renamed (`inrcore.
files.write_atomic`); an object is made locally and uploaded in one put, which an object store shows
whole or not at all. Inputs at URLs are copied to a temporary local file for the readers that need a
path (trimesh), named after the URL's file so formats are still told by extension. A store that
cannot be reached is tried again for a while (`tasks.outages`), then the error names the file.

Storage options (an S3 endpoint, a region, anonymous access) come from `INRFLOW_STORAGE_OPTIONS`, a
JSON mapping passed to fsspec for every URL that is not a local path; credentials come from the
environment the store's own library reads (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL
for S3) and are never written into records, logs or the registry: the options are read here, at the
moment of use, and nothing returns them.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from inrcore.errors import ConfigError, ShapeError
from inrcore.files import write_atomic


OPTIONS_VARIABLE = "INRFLOW_STORAGE_OPTIONS"


def is_url(location) -> bool:
    """Whether `location` is an fsspec URL of a remote or in-memory store (file:// URLs count as local)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def local_path(location) -> Path:
    """The local path of a path or file:// URL."""
    text = str(location)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def storage_options() -> dict:
    """The fsspec options of every remote URL: `INRFLOW_STORAGE_OPTIONS` read as a JSON mapping ({} when
    unset). ConfigError naming the variable when it is not one (its value is not repeated: it may hold
    secrets)."""
    text = os.environ.get(OPTIONS_VARIABLE, "").strip()
    if not text:
        return {}
    try:
        options = json.loads(text)
    except ValueError:
        raise ConfigError(f"{OPTIONS_VARIABLE} must be a JSON mapping of fsspec storage options") from None
    if not isinstance(options, dict):
        raise ConfigError(f"{OPTIONS_VARIABLE} must be a JSON mapping of fsspec storage options")
    return options


def filesystem(url: str):
    """(fsspec filesystem, path inside it) of a remote URL."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **storage_options())
    except ImportError as exc:  # e.g. s3:// without s3fs
        raise ConfigError(f"{url}: this kind of URL needs a package that is not installed ({exc}); for s3:// "
                          f"install inrflow with its 's3' extra (s3fs)") from None


def _remote(location, operation: Callable[[Any, str], Any]):
    """operation(filesystem, path) on the store holding the URL `location`, tried again while the store
    cannot be reached (`tasks.outages.patient`; the error then names `location`)."""
    from .outages import patient

    fs, path = filesystem(str(location))
    return patient(f"the object store holding {location}", lambda: operation(fs, path))


def join(base, *parts: str) -> str:
    """`base` (a path or URL) with `parts` appended, '/'-separated for URLs."""
    if is_url(base):
        return posixpath.join(str(base).rstrip("/"), *parts)
    return str(local_path(base).joinpath(*parts))


def exists(location) -> bool:
    if not is_url(location):
        return local_path(location).exists()
    return _remote(location, lambda fs, path: fs.exists(path))


def is_file(location) -> bool:
    if not is_url(location):
        return local_path(location).is_file()
    return _remote(location, lambda fs, path: fs.isfile(path))


def make_folder(location) -> None:
    """Create a local folder (and its parents); nothing for a URL (object stores have no folders)."""
    if not is_url(location):
        local_path(location).mkdir(parents=True, exist_ok=True)


def read_bytes(location) -> bytes:
    if not is_url(location):
        return local_path(location).read_bytes()
    return _remote(location, lambda fs, path: fs.cat_file(path))


def read_json(location) -> Optional[Any]:
    """JSON content of a file or object, or None when it does not exist or is not valid JSON."""
    try:
        return json.loads(read_bytes(location))
    except (OSError, ValueError):
        return None


def file_sha256(location) -> Optional[str]:
    """The SHA-256 of a file's or object's bytes (`inrcore.geometry.meshes.file_sha256`; an object is
    copied locally first), None when it is not there."""
    from inrcore.geometry.meshes import file_sha256 as local_sha256

    try:
        with local_copy(location) as local:
            return local_sha256(local)
    except (FileNotFoundError, IsADirectoryError):
        return None


def write_file(location, write: Callable[[str], object]) -> str:
    """Call write(temporary local path) and put the file at `location` whole: renamed into place for a
    local path, uploaded in one put for a URL. The temporary name keeps the location's suffix (writers
    that choose a format by extension work). Nothing is left behind when `write` fails. Returns
    `location` as text."""
    if not is_url(location):
        return str(write_atomic(local_path(location), write))
    name = posixpath.basename(str(location))
    with tempfile.TemporaryDirectory(prefix="inrflow-put-") as folder:
        tmp = os.path.join(folder, name)
        write(tmp)
        _remote(location, lambda fs, path: fs.put_file(tmp, path))
    return str(location)


def write_bytes(location, data: bytes) -> str:
    return write_file(location, lambda tmp: Path(tmp).write_bytes(data))


def write_text(location, text: str) -> str:
    return write_file(location, lambda tmp: Path(tmp).write_text(text))


def write_json(location, data: Any, sort_keys: bool = True) -> str:
    """JSON indented by 2 (keys sorted unless `sort_keys` is False), written whole."""
    return write_text(location, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def local_copy(location, missing: Optional[Callable[[], Exception]] = None) -> Iterator[str]:
    """A local path holding the file at `location`: the path itself for a local file, else a temporary
    copy named like the URL's file (removed afterwards). A missing object raises FileNotFoundError, or
    `missing()` when given."""
    if not is_url(location):
        yield str(local_path(location))
        return
    with tempfile.TemporaryDirectory(prefix="inrflow-get-") as folder:
        tmp = os.path.join(folder, posixpath.basename(str(location).rstrip("/")))
        try:
            _remote(location, lambda fs, path: fs.get_file(path, tmp))
        except FileNotFoundError:
            if missing is None:
                raise
            raise missing() from None
        yield tmp


@contextlib.contextmanager
def input_file(source) -> Iterator[str]:
    """`local_copy` of an input shape file whose errors name `source`, not the temporary copy: a
    missing object is a ShapeError, and a ShapeError about the copy is raised again about the source."""
    with local_copy(source, missing=lambda: ShapeError(source, "file does not exist")) as path:
        try:
            yield path
        except ShapeError as exc:
            if exc.path == path and path != str(source):
                raise ShapeError(source, exc.problem) from None
            raise


@contextlib.contextmanager
def local_folder(location, missing: Optional[Callable[[], Exception]] = None) -> Iterator[str]:
    """A local folder holding every file under `location`: the path itself for a local folder, else a
    temporary copy of the objects under the URL's prefix, kept in their relative layout (removed
    afterwards). No object there raises FileNotFoundError, or `missing()` when given."""
    if not is_url(location):
        yield str(local_path(location))
        return
    with tempfile.TemporaryDirectory(prefix="inrflow-get-") as folder:
        def fetch(fs, path: str) -> int:
            prefix = path.rstrip("/")
            names = [p for p in fs.find(prefix) if p.startswith(prefix + "/")]
            for name in names:
                target = os.path.join(folder, *name[len(prefix) + 1:].split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                fs.get_file(name, target)
            return len(names)

        if _remote(location, fetch) == 0:
            raise missing() if missing is not None else FileNotFoundError(f"{location}: no files there")
        yield folder


def put_folder(folder, location) -> str:
    """Put every file under the local `folder` at `location` (a path or URL) in the same relative layout,
    each file whole. Returns `location` as text."""
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        copy_to(path, join(location, *path.relative_to(root).parts))
    return str(location)


def remove(location) -> None:
    """Remove a file or a whole folder (every object under a URL's prefix); nothing when absent."""
    if not is_url(location):
        path = local_path(location)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        return

    def delete(fs, path: str) -> None:
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

    _remote(location, delete)


def glob(pattern: str) -> list[str]:
    """The files matching a glob pattern at a path or URL ('**' included), sorted; URLs keep their
    protocol."""
    if not is_url(pattern):
        import glob as globlib

        return sorted(p for p in globlib.glob(str(local_path(pattern)), recursive=True) if os.path.isfile(p))
    return _remote(pattern, lambda fs, path: sorted(fs.unstrip_protocol(p) for p in fs.glob(path) if fs.isfile(p)))


def copy_to(source, location) -> str:
    """Put a local file at `location` (a path or URL), whole."""
    return write_file(location, lambda tmp: shutil.copyfile(source, tmp))
