# Two images from one file:
#   default target: fhir-journey (`journey serve`, `journey worker`, `journey db upgrade`)
#   --target demo-fhir: a seeded sekmet-fhir server to pull from, for the compose demo
FROM python:3.11-slim AS demo-fhir
RUN pip install --no-cache-dir "sekmet-fhir>=0.1,<0.2"
WORKDIR /srv
ENV SEKMET_BASE_URL=http://demo-fhir:8080/fhir SEKMET_DB=/srv/sekmet.db
EXPOSE 8080
# The same two commands the tests run: seed a synthetic population, serve it.
CMD ["sh", "-c", "sekmet seed --count 50 && exec sekmet serve --host 0.0.0.0 --port 8080"]

FROM python:3.11-slim AS journey
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_journey fhir_journey
COPY connectors connectors
COPY mappings mappings
COPY integration integration
RUN pip install --no-cache-dir .
ENV JOURNEY_HOST=0.0.0.0 JOURNEY_PORT=8000 JOURNEY_DATABASE_URL=sqlite:////data/journey.db
VOLUME /data
EXPOSE 8000
CMD ["journey", "serve"]
