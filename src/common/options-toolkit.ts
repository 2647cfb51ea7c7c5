/**
 * The options toolkit as `sidecarless/extend` exports it (`options`): the validators of options.ts, and the TLS
 * material check of tls-options.ts, which is built on them and so cannot be re-exported from options.ts (no import
 * cycles).
 *
 * @module
 */
export * from './options.js';
export { tlsMaterial } from './tls-options.js';
