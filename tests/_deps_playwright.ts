/**
 * The browser driver for the page's tests, pinned. It drives the system's
 * Chromium (`executablePath`) and downloads no browser of its own.
 *
 * @module
 */

export { chromium } from "npm:playwright-core@1.64.1";
export type { Browser, BrowserContext, Page } from "npm:playwright-core@1.64.1";
