# plan2learn SCIM server: gunicorn (via `scim-server serve`) as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SCIM_HOST=0.0.0.0 SCIM_PORT=8080 \
    SCIM_DATABASE_URL=sqlite:////data/scim.db

RUN useradd --create-home --uid 10001 scim && mkdir -p /data /app && chown scim:scim /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY scim_server ./scim_server
COPY schemas ./schemas
RUN pip install --no-cache-dir -e . && chown -R scim:scim /app

USER scim
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SCIM_PORT','8080'), timeout=2)"
CMD ["scim-server", "serve"]
