"""``python -m bot`` runs the same CLI as ``qabot``."""

from bot.cli import main

# guarded: answer worker processes (bot/workers.py) are spawned, and a spawned child
# may import the parent's main module
if __name__ == "__main__":
    main()
