"""docs/architecture.md's figures are the code's: the rooms, the settings, the file sizes,
the one aiobotocore import, the formatter's exceptions."""

import pathlib
import re
import tomllib

from core.catalog import SETTINGS

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "architecture.md").read_text()


def rooms() -> list[str]:
    """The top-level packages the distribution ships (pyproject's package list)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [
        name.rstrip("*") for name in config["tool"]["setuptools"]["packages"]["find"]["include"]
    ]


def product_files() -> list[pathlib.Path]:
    found = [p for room in rooms() for p in (ROOT / room).rglob("*.py")]
    return found + list((ROOT / "clients" / "python" / "mailpool_client").rglob("*.py"))


def test_the_rooms_table_names_every_room_and_nothing_else() -> None:
    table = [line for line in PAGE.split("## Rooms", 1)[1].split("\n\n")[2].splitlines()[2:]]
    named = [re.findall(r"\| `(\w+)/` \|", line)[0] for line in table]
    assert sorted(named) == sorted(rooms())
    floors = {line.split("|")[1].strip() for line in table} - {""}
    counted = re.search(r"\| rooms, floors \| 9 on 7 \| (\d+) on (\d+) ", PAGE)
    assert counted is not None
    assert (int(counted.group(1)), int(counted.group(2))) == (
        len(named) + 1,
        len(floors),
    )  # + clients


def test_the_settings_count_is_the_catalogue_s() -> None:
    counted = re.search(r"(\d+) declared once in `core/catalog.py`", PAGE)
    assert counted is not None
    assert int(counted.group(1)) == len(SETTINGS)


def test_no_product_file_is_over_500_lines() -> None:
    assert "| files over 500 lines | 4 | 0 |" in PAGE
    long = {str(p.relative_to(ROOT)): n for p in product_files()
            if (n := len(p.read_text().splitlines())) > 500}  # fmt: skip
    assert long == {}


def test_aws_client_is_the_only_aiobotocore_import() -> None:
    assert "`client.py`, the only aiobotocore import" in PAGE
    importing = {
        str(p.relative_to(ROOT))
        for p in product_files()
        if re.search(r"^(from|import) aiobotocore", p.read_text(), re.M)
    }
    assert importing == {"aws/client.py"}


def test_the_formatter_s_exceptions_are_as_counted() -> None:
    assert "0, benchmarks included (two `fmt: off` tables" in PAGE
    sources = product_files() + list((ROOT / "benchmarks").rglob("*.py"))
    texts = [p.read_text() for p in sources]
    assert sum(t.count("fmt: skip") for t in texts) == 0
    assert sum(t.count("# fmt: off") for t in texts) == 2
