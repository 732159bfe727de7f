"""Reading typed settings from the environment, with errors that name the variable: the one
place mailpool reads its settings. Each name must be declared in ``core.catalog`` with the
kind it is read as; reading an undeclared one is a programming error, caught by any test
that runs the reader."""

from collections.abc import Mapping

from core.catalog import DECLARED, Value


class SettingError(ValueError):
    """An environment variable holds a value of the wrong form."""


def _declared(name: str, kind: str, default: Value) -> None:
    """Refuse a setting ``core.catalog`` does not declare, or declares of another kind.
    (``default`` is what the caller falls back to: tests hold it to the declaration.)"""
    setting = DECLARED.get(name)
    if setting is None or setting.kind != kind:
        raise LookupError(f"{name} is not declared as a {kind} setting in core/catalog.py")


def env_str(environ: Mapping[str, str], name: str, default: str) -> str:
    """A string setting; empty counts as unset."""
    _declared(name, "str", default)
    return environ.get(name) or default


def env_opt(environ: Mapping[str, str], name: str) -> str | None:
    """An optional string setting; empty counts as unset."""
    _declared(name, "str", None)
    return environ.get(name) or None


def env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    """An integer setting."""
    _declared(name, "int", default)
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name} must be an integer, got {raw!r}") from None


def env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    """A number setting."""
    _declared(name, "float", default)
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingError(f"{name} must be a number, got {raw!r}") from None


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off."""
    _declared(name, "bool", default)
    raw = environ.get(name)
    if not raw:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")
