# syntax=docker/dockerfile:1
# The betting server image: gunicorn serving Django, static files by whitenoise.
# The same image runs the one-shot `migrate`, the scheduler and the simulator
# (see compose.yaml). Build: docker build -t betting-server .

# --- Builder: compile/install the dependencies into a virtualenv -----------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Build tools only for a dependency without a wheel for this platform; they never
# reach the final image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
COPY requirements.txt /tmp/requirements.txt
RUN pip install --upgrade pip \
    && pip install -r /tmp/requirements.txt

# --- Final: runtime only, non-root -----------------------------------------------
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:$PATH" \
    PORT=8000

# libpq5: the client library, should psycopg ever run without its bundled one.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app \
    && mkdir -p /app /data \
    && chown app:app /app /data

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app . /app

# Static files, hashed and compressed, into STATIC_ROOT (/app/staticfiles). The
# settings refuse to load with DEBUG=0 and no secrets, so this step gets random
# throwaway values that live only in this RUN's shell: nothing is written to the
# image's environment or layers, and the running containers get the real ones.
RUN DEBUG=0 \
    DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    JWT_SIGNING_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    FIELD_ENCRYPTION_KEYS="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    python manage.py collectstatic --noinput \
    && chown -R app:app /app/staticfiles

USER app

EXPOSE 8000

# No curl in slim images: probe the liveness endpoint with Python's stdlib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "betting_site.wsgi"]
