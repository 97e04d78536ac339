/**
 * The confusables table of Unicode Technical Standard #39, pinned. Kept in
 * its own module like every third-party pin, so that the library resolves
 * from any importer.
 *
 * @module
 */

export { default as confusables } from "npm:unhomoglyph@1.0.6/data.json" with { type: "json" };
