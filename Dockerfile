FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY connectors connectors
COPY mappings mappings
COPY integration integration
RUN pip install --no-cache-dir .
ENV JOURNEY_HOST=0.0.0.0 JOURNEY_PORT=8000 JOURNEY_DATABASE_URL=sqlite:////data/journey.db
VOLUME /data
EXPOSE 8000
CMD ["journey", "serve"]
