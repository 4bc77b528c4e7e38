"""What ships with qabot and where it keeps state, in a checkout and installed.

In a checkout (the folder holding ``config/default.toml`` beside ``bot/``) settings,
prompts and state live in the checkout: ``config/``, ``prompts/``, ``index/``. Installed
from a wheel (``pipx install``, ``uv tool install``, ``pip install``) there is no
checkout: the default settings and the prompt templates come from the package itself
(``bot._config`` and ``bot._prompts``, which pyproject.toml maps onto the checkout's
``config/`` and ``prompts/``, so both are the same files), state lives in the user's
data folder, and overrides in the user's config file (platformdirs decides both:
``~/.local/share/qabot`` and ``~/.config/qabot/config.toml`` on Linux).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

APP = "qabot"


def checkout_root() -> Path | None:
    """The checkout this package runs from, or None when it is installed."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "config" / "default.toml").is_file() else None


def packaged_defaults() -> str:
    """``config/default.toml`` as shipped inside the package."""
    return (importlib.resources.files("bot") / "_config" / "default.toml").read_text("utf-8")


def bundled_prompts() -> Path:
    """The folder of the prompt templates that ship with qabot."""
    checkout = checkout_root()
    if checkout is not None:
        return checkout / "prompts"
    # through the regular package "bot": its files() is a plain folder, where the
    # namespace package bot._prompts would give a MultiplexedPath
    return Path(str(importlib.resources.files("bot") / "_prompts"))


def user_data_dir() -> Path:
    """Where an installed qabot keeps its index, sessions and caches."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def user_config_file() -> Path:
    """The TOML file an installed qabot reads overrides from (like config/local.toml)."""
    import platformdirs

    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / "config.toml"
