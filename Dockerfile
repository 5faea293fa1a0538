# The hub image: `docker run IMAGE serve|worker|migrate|keys ...` (ENTRYPOINT is the `hub` CLI).
# Set HUB_DATABASE_URL; without it the hub starts an embedded PostgreSQL under ./.hub, which is for
# trying it out only.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_LOG_FORMAT=json

RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --create-home --home-dir /home/hub hub

# The project is installed in place (editable) so that the alembic scripts in migrations/ and the
# event catalogue in config/ sit where the package looks for them.
WORKDIR /app
COPY . .
RUN python -m venv /opt/hub && /opt/hub/bin/pip install -e /app && /opt/hub/bin/hub --help >/dev/null
ENV PATH=/opt/hub/bin:$PATH

USER hub
WORKDIR /home/hub
EXPOSE 8080
ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0"]
