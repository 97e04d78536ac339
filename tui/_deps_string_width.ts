/**
 * Terminal column widths, pinned. Third-party code is imported with full
 * `npm:` specifiers so that the library resolves from any importer (by path,
 * by URL or from JSR), and each package is pinned in one `_deps_*.ts` module.
 *
 * @module
 */

export { default as stringWidth } from "npm:string-width@8.3.0";
