"""The Lambda worker's deployment package: ``mailpool deploy package``.

A zip for Lambda's ``python3.11`` runtime on x86_64, built from wheels: mailpool's own wheel
(built from this source tree) and every dependency as a binary wheel for that platform
(``pip install --target --platform manylinux2014_x86_64 --only-binary=:all:``), so that the
package needs no compiler and runs on Lambda whatever machine built it. Upload it to S3 and
give the template its bucket and key (``LambdaCodeBucket``, ``LambdaCodeKey``).
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass

from core.settings import SettingError

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: Lambda's limits: 50 MB zipped for a direct upload, 250 MB unzipped (S3 or not).
UNZIPPED_LIMIT = 250 * 1024 * 1024
#: Not needed on Lambda: scripts, caches, and the test suites some wheels carry.
_LEFT_OUT = ("bin/", "__pycache__/")
#: What of the source tree the wheel is not built from.
_NOT_SOURCE = (
    *(".*", "build", "dist", "var", "*.egg-info", "__pycache__"),
    *("tests", "benchmarks", "clients", "deploy", "docs"),
)


@dataclass(frozen=True, slots=True)
class Package:
    """What was built: the zip, its size and what it unpacks to."""

    path: pathlib.Path
    files: int
    zipped: int
    unzipped: int


def _pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SettingError(f"pip {args[0]} failed: {done.stderr.strip()[-600:]}")


def build(
    output: pathlib.Path,
    *,
    python: str = "3.11",
    platform: str = "manylinux2014_x86_64",
    source: pathlib.Path = ROOT,
) -> Package:
    """Build the package of ``source`` for ``python`` on ``platform`` into ``output``."""
    if not (source / "pyproject.toml").exists():
        raise SettingError(f"{source} is not mailpool's source tree (no pyproject.toml)")
    with tempfile.TemporaryDirectory(prefix="mailpool-package-") as work:
        wheels, site = pathlib.Path(work, "wheels"), pathlib.Path(work, "site")
        # From a clean copy: an in-tree build/ may hold modules deleted since.
        tree = pathlib.Path(work, "source")
        shutil.copytree(source, tree, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
        _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(tree))
        [wheel] = wheels.glob("mailpool-*.whl")
        binary = ("--platform", platform, "--python-version", python, "--implementation", "cp")
        _pip(
            "install", "--quiet", "--target", str(site), *binary, "--only-binary=:all:", str(wheel)
        )
        return _zip(site, output)


def _zip(site: pathlib.Path, output: pathlib.Path) -> Package:
    files = sorted(
        p
        for p in site.rglob("*")
        if p.is_file() and not any(part in p.relative_to(site).as_posix() for part in _LEFT_OUT)
    )
    unzipped = sum(p.stat().st_size for p in files)
    if unzipped > UNZIPPED_LIMIT:
        raise SettingError(f"the package unpacks to {unzipped} bytes, past Lambda's 250 MB")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(
                path.relative_to(site).as_posix(), date_time=(1980, 1, 1, 0, 0, 0)
            )
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    os.replace(partial, output)
    return Package(output, len(files), output.stat().st_size, unzipped)
