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
COPY docker/feedbot.toml /srv/feedbot/config.toml
ENV PATH=/opt/feedbot/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /srv/feedbot
USER feedbot
# data/feedbot.sqlite (the default store path) lives on this volume.
VOLUME ["/srv/feedbot/data"]
# /srv/feedbot/config.toml (docker/feedbot.toml: [metrics] on port 9464) may be
# replaced by a mounted one; FEEDBOT_TOKEN and FEEDBOT_STORE_URL override the
# token and the store. /metrics and /healthz are on port 9464.
EXPOSE 9464
# /healthz: 200 while the loops run and the store answers. The slim image has
# no curl, so Python asks (urlopen raises on a 503, which fails the check).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
CMD ["feedbot", "run"]
