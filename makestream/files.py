"""Reading the files named on the command line and in the environment, within a cap.

Every file makestream reads on the user's behalf (the config, a token file, `--data @FILE`, a
world for `sim serve`, a cursor file) goes through `read_capped`: it refuses what is not a
regular file (a directory, a device such as /dev/zero, a FIFO that could block forever) unless
the caller accepts streams, and never holds more than the cap in memory. Every problem is one
line naming the file, what it is for, and the limit (exit 2).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from makestream.errors import UsageError

_CHUNK = 64 * 1024


def size_text(n: int) -> str:
    """`65536` → `64 KiB`, for messages about caps."""
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: Path, what: str, *, error: type[UsageError] = UsageError) -> None:
    """Refuse a path that exists and is not a regular file (symlinks are followed).

    FileNotFoundError passes through for callers to whom a missing file means something.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise error(f"{what} {path}: not a regular file ({kind_of(mode)})")


def read_capped(
    path: Path,
    cap: int,
    what: str,
    *,
    streams: bool = False,
    error: type[UsageError] = UsageError,
) -> bytes:
    """The bytes of `path`, at most `cap` of them; more is an error naming the file and cap.

    `what` names the file's role in messages (`--data file`, `the token file`). With `streams`
    a FIFO or character device (`<(cmd)`, /dev/stdin) is read too, still within the cap;
    otherwise only regular files are, and others are refused before they are opened.
    FileNotFoundError passes through.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror})") from None
    is_stream = stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)
    if not stat.S_ISREG(mode) and not (streams and is_stream):
        raise error(f"{what} {path}: not a regular file ({kind_of(mode)})")
    # O_NONBLOCK: if the path became a FIFO since the stat, opening it cannot hang.
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    if not is_stream:
        flags |= os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror})") from None
    try:
        opened = os.fstat(fd).st_mode
        if not stat.S_ISREG(opened) and not (
            streams and (stat.S_ISFIFO(opened) or stat.S_ISCHR(opened))
        ):
            raise error(f"{what} {path}: not a regular file ({kind_of(opened)})")
        if not is_stream:
            os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while total <= cap:
            chunk = os.read(fd, min(_CHUNK, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if total > cap:
        raise error(f"{what} {path}: larger than {size_text(cap)}, the limit for it")
    return b"".join(chunks)


def decode_text(data: bytes, path: Path, what: str, *, error: type[UsageError] = UsageError) -> str:
    """UTF-8 text of a file's bytes; an error naming the file otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path}: not UTF-8 text") from None


def read_text_capped(
    path: Path,
    cap: int,
    what: str,
    *,
    streams: bool = False,
    error: type[UsageError] = UsageError,
) -> str:
    """`read_capped`, decoded as UTF-8."""
    data = read_capped(path, cap, what, streams=streams, error=error)
    return decode_text(data, path, what, error=error)


def read_secret(path: Path, what: str) -> str:
    """A token, password or signing secret from `path`: within TOKEN_MAX_BYTES, and a pipe will
    do (`<(pass show make)`) while a directory or /dev/zero will not. FileNotFoundError passes
    through, so each caller words it for its option."""
    from makestream.limits import TOKEN_MAX_BYTES

    return read_text_capped(path, TOKEN_MAX_BYTES, what, streams=True)
