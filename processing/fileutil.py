"""Small file helpers shared by every layer: atomic writes and the sweep of their leftovers, digests (of files, of
JSON data), folder sizes, the umask, BOM-tolerant CSV text and what is wrong with a path given as a file or folder."""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# Temporary names this tool makes (atomic_write, staging folders): ".<stem>.tmp-<pid>-<8 random>[.<ext>]". The pid
# says whether the run that made it is still alive; names without one come from older versions.
_TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.tmp-(?:(?P<pid>\d+)-)?[a-z0-9_]{8}(?P<suffix>\.[A-Za-z0-9]+)?$")


def temp_prefix(stem: str) -> str:
    """The prefix of this process's temporary names for ``stem`` (see :func:`sweep_leftovers`)."""
    return f".{stem}.tmp-{os.getpid()}-"


def current_umask() -> int:
    """This process's file-mode creation mask (from /proc where it can be read without changing it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set it and put it back at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds, delete it otherwise.

    The temporary name keeps the final extension (``suffix``, default the path's own) so encoders that pick a
    container by extension still work. The file gets the mode a plain ``open`` would give (0666 less the umask),
    not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.stem), suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def sweep_leftovers(folders: Iterable[Path | str], *, recursive: bool = False) -> list[Path]:
    """Delete the temporary files and folders an interrupted run of this tool left in ``folders``; return them.

    Only names this tool makes (``.<stem>.tmp-<pid>-<random>``, see :func:`temp_prefix`) are touched, and only
    those whose process is gone, so a run going on beside this one keeps its files. ``recursive`` also looks in
    subfolders (never inside a leftover folder, which goes as a whole).
    """
    removed: list[Path] = []
    for folder in folders:
        for base, dirs, files in os.walk(folder):
            for name in (*dirs, *files):
                match = _TEMP_NAME.match(name)
                if not match or (match.group("pid") and _alive(int(match.group("pid")))):
                    continue
                leftover = Path(base, name)
                if name in dirs:
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                removed.append(leftover)
            dirs[:] = [d for d in dirs if recursive and Path(base, d) not in removed]
    return removed


def untemp(exc: OSError) -> OSError:
    """``exc`` with the paths it names told as the user knows them: a temporary file as the file it was to become,
    a staging folder left out (``out/.x.tmp-1-ab12cd34/x_frame3.png`` -> ``out/x_frame3.png``). Returns ``exc``
    (or an equal plain OSError when its names cannot be changed)."""
    def public(name: object) -> object:
        if not isinstance(name, str | os.PathLike):
            return name
        parts = list(Path(name).parts)
        for i, part in enumerate(parts):
            match = _TEMP_NAME.match(part)
            if match:
                parts[i] = "" if i < len(parts) - 1 else match.group("stem") + (match.group("suffix") or "")
        return str(Path(*[p for p in parts if p]))
    try:
        exc.filename, exc.filename2 = public(exc.filename), public(exc.filename2)
    except AttributeError:  # PyAV's OSError has read-only names: tell it as a plain one
        return OSError(exc.errno, exc.strerror, public(exc.filename), None, public(exc.filename2))
    return exc


def read_csv_text(path: Path | str, encoding: str = "utf-8") -> io.StringIO:
    """The text of a CSV file, ready for ``csv.reader``: a UTF-8 byte-order mark is dropped (and the file read as
    UTF-8, which the mark says it is), otherwise the file is read as ``encoding``."""
    data = Path(path).read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        return io.StringIO(data[len(codecs.BOM_UTF8):].decode("utf-8"), newline="")
    return io.StringIO(data.decode(encoding), newline="")


def path_problem(path: Path | str, want: str) -> str | None:
    """What is wrong with ``path`` given as a ``"file"`` or a ``"folder"`` (one phrase), or None when it is one."""
    path = Path(path)
    if want == "folder" and path.is_dir() or want == "file" and path.is_file():
        return None
    if not path.exists():
        return f"{path} does not exist"
    found = "a folder" if path.is_dir() else "a file" if path.is_file() else "not a regular file"
    return f"{path} is {found}, not a {want}"


def json_digest(data: object) -> str:
    """Hex sha256 of ``data`` as canonical JSON (sorted keys; other types by ``str``): a key for caches."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: Path | str, block: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_bytes(folder: Path | str) -> int:
    """Total size of the files under ``folder`` (symlinks not followed; a file that vanishes meanwhile counts 0)."""
    total = 0
    for base, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total
