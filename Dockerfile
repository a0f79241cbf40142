# One image for web, worker, beat and pvesim (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY . /app
# Editable install keeps templates/ and static/ beside the code (settings find them from BASE_DIR).
RUN pip install -e . \
 && DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 SECRET_KEY=build \
    python manage.py collectstatic --noinput \
 && useradd --system --home-dir /app datacenter && mkdir -p /app/var && chown datacenter /app/var
USER datacenter
EXPOSE 8000
CMD ["uvicorn", "datacenter.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
