"""Filling a disk to the last byte (the `small_disk` fixture gives a test one of its own)."""

import errno
import os
import pathlib
import uuid


def fill(disk: pathlib.Path) -> pathlib.Path:
    """Take every free byte of ``disk`` with one file; the file."""
    filler = disk / f"filler-{uuid.uuid4().hex[:6]}"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (65_536, 4096, 512, 1):
            try:
                while os.write(fd, b"\0" * chunk):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return filler
