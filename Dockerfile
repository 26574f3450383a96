# One image for web, worker and beat (compose.yaml picks the command).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev
COPY . .
RUN DJANGO_SETTINGS_MODULE=config.settings.local python manage.py collectstatic --noinput -v0
RUN useradd --create-home kyodo && mkdir -p /app/var && chown -R kyodo /app/var
USER kyodo
EXPOSE 8000
CMD ["uwsgi", "--ini", "config/uwsgi.ini", "--http11-socket", "0.0.0.0:8000"]
