"""qabot: a document question-answering bot with cited passages.

Front ends (``bot.cli``, ``bot.telegram``, ``bot.evaluation``) all call
``bot.engine.Engine.answer``; see ``bot.engine`` for the answer path.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
