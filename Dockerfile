# plan2learn SCIM server: gunicorn (via `scim-server serve`) as a non-root user.
# The base image is pinned to a patch release: bump it on purpose (and rebuild for its fixes).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SCIM_HOST=0.0.0.0 SCIM_PORT=8080 \
    SCIM_DATABASE_URL=sqlite:////data/scim.db

RUN groupadd --gid 10001 scim && useradd --create-home --uid 10001 --gid 10001 scim \
    && mkdir -p /data && chown scim:scim /data

WORKDIR /src
# 1. The dependencies alone, read from pyproject.toml: this layer is cached until they change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 2. The code: built as a wheel and installed (not editable) into site-packages, as root, without
#    dependencies (step 1 has them); the runtime user cannot write it. schemas/ ships inside it.
COPY README.md setup.py ./
COPY schemas ./schemas
COPY scim_server ./scim_server
RUN pip install --no-deps . && cd / && rm -rf /src

WORKDIR /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# Ready = the database answers and is at the newest migration (GET /readyz is 503 otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('SCIM_PORT', '8080'), timeout=4)"]
CMD ["scim-server", "serve"]
