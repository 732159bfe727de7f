"""Reading typed settings from the environment, with errors that name the variable."""

from collections.abc import Mapping


class SettingError(ValueError):
    """An environment variable holds a value of the wrong form."""


def env_str(environ: Mapping[str, str], name: str, default: str) -> str:
    """A string setting; empty counts as unset."""
    return environ.get(name) or default


def env_opt(environ: Mapping[str, str], name: str) -> str | None:
    """An optional string setting; empty counts as unset."""
    return environ.get(name) or None


def env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    """An integer setting."""
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name} must be an integer, got {raw!r}") from None


def env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    """A number setting."""
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingError(f"{name} must be a number, got {raw!r}") from None


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off."""
    raw = environ.get(name)
    if not raw:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name} must be true or false, got {raw!r}")
