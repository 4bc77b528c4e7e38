"""``python -m bot`` runs the same CLI as ``qabot``."""

from bot.cli import main

main()
