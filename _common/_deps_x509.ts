/**
 * The X.509 library, pinned. Third-party code is imported with full `npm:`
 * specifiers so that the library resolves from any importer (by path, by
 * URL or from JSR), and each package is pinned in one `_deps_*.ts` module.
 * Kept apart from the other pins so that only TLS code loads it.
 *
 * @module
 */

export * as x509 from "npm:@peculiar/x509@1.14.0";
