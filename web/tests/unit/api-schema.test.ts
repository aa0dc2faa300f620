/**
 * `src/api/schema.d.ts` is what `npm run gen:api` makes of `src/api/openapi.json` (the
 * document voting-api serves, kept current by voting-api's `web_openapi_copy` test): the
 * same openapi-typescript call, with the same options, as that script's command line.
 */

import { readFileSync } from 'node:fs';

import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript';
import { expect, it } from 'vitest';

const document = new URL('../../src/api/openapi.json', import.meta.url);
const generated = new URL('../../src/api/schema.d.ts', import.meta.url);

it('the API types are generated from the committed OpenAPI document', async () => {
  const expected = `${COMMENT_HEADER}${astToString(await openapiTS(document, { defaultNonNullable: false }))}`;
  const committed = readFileSync(generated, 'utf8');
  // A message rather than a diff of 1,700 lines: what to run says it all.
  expect(committed === expected, 'src/api/schema.d.ts is stale: run `npm run gen:api` in web/ and commit it').toBe(true);
});
