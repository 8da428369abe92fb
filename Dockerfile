# A small image: the bot in a virtualenv, run as an unprivileged user, with the
# store on a volume.  Build: docker build -t feedbot .
# Run:   docker run -d --name feedbot -e FEEDBOT_TOKEN=123:ABC -v feedbot-data:/srv/feedbot/data feedbot
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN python -m venv /opt/feedbot \
 && /opt/feedbot/bin/pip install --no-cache-dir --no-compile . \
 && find /opt/feedbot -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /srv/feedbot --create-home feedbot \
 && mkdir -p /srv/feedbot/data && chown feedbot:feedbot /srv/feedbot/data
COPY --from=build /opt/feedbot /opt/feedbot
COPY config.example.toml /srv/feedbot/config.example.toml
ENV PATH=/opt/feedbot/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /srv/feedbot
USER feedbot
# data/feedbot.sqlite (the default store path) lives on this volume.
VOLUME ["/srv/feedbot/data"]
# A config.toml mounted at /srv/feedbot/config.toml is used when present;
# otherwise FEEDBOT_TOKEN alone runs the bot with the default settings.
CMD ["feedbot", "run"]
