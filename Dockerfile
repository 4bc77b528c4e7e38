# qabot in a container: the lean install (no torch), state in /data, documents in /docs.
#   docker build -t qabot .
#   docker run --rm -v qabot-data:/data -v "$PWD/seeds:/docs:ro" qabot ingest /docs
#   docker run -d --restart unless-stopped -v qabot-data:/data \
#       -e TELEGRAM_BOT_TOKEN -e QABOT_TELEGRAM_ALLOWED_USERS qabot
# docs/telegram.md walks through it; deploy/compose.yaml adds a Chroma server.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    QABOT_HOME=/data
# add ",llm" for LLM answers; the `st` extra (sentence-transformers) pulls torch
ARG EXTRAS=""

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY config/default.toml ./config/default.toml
COPY prompts ./prompts
RUN pip install ".${EXTRAS:+[${EXTRAS}]}" && rm -rf /src

# an unprivileged user owns the state
RUN useradd --create-home --uid 10001 qabot && mkdir -p /data && chown qabot /data
USER qabot
WORKDIR /home/qabot
VOLUME ["/data"]

ENTRYPOINT ["qabot"]
CMD ["telegram"]
