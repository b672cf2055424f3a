# Dockyard as a container image: `dockyard serve` on 0.0.0.0:5000, data in
# /var/lib/dockyard, running as an unprivileged user (uid 10000).
#   docker build -t dockyard .
#   docker run -p 5000:5000 -v dockyard-data:/var/lib/dockyard dockyard
# The same image runs the job worker (`dockyard worker`) and the operations
# commands (`dockyard migrate`, `dockyard fsck`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10000 dockyard \
    && useradd --system --uid 10000 --gid dockyard --no-create-home \
        --home-dir /var/lib/dockyard --shell /usr/sbin/nologin dockyard

WORKDIR /opt/dockyard
# Dependencies first (pinned by constraints.txt), so that a change to the
# sources alone does not reinstall them.
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install --constraint constraints.txt . \
    && install -d -o dockyard -g dockyard -m 0700 /var/lib/dockyard

USER 10000:10000
ENV DOCKYARD_DATA_DIR=/var/lib/dockyard \
    DOCKYARD_LISTEN=0.0.0.0:5000
VOLUME ["/var/lib/dockyard"]
EXPOSE 5000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/api/v2.0/ping', timeout=4)"]

# Granian stops gracefully on SIGTERM (shutdown_timeout_seconds, default 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["dockyard"]
CMD ["serve"]
