/**
 * The web page `chat serve` ships: its files, the headers that keep it to
 * itself (a Content-Security-Policy without inline script, no sniffing, no
 * framing), and the Origin check of its WebSocket.
 *
 * @module
 */

import { ASSETS } from "../web/assets.ts";

/** Where the page opens its WebSocket. */
export const WEBSOCKET_PATH = "/ws";

const TYPES: Readonly<Record<string, string>> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

/** A host as the `Host` header may carry it: a name or an address, and a port. */
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The headers every answer carries. The page may talk only to its own
 * server (`connect-src` names the WebSocket of the host it was loaded
 * from), run only its own scripts, and show images only from its own
 * objects (`blob:` previews of files received).
 *
 * @param host The `Host` header, if it is well formed.
 * @returns The headers.
 */
export function securityHeaders(host: string | undefined): Headers {
  const sockets = host === undefined ? "" : ` ws://${host} wss://${host}`;
  return new Headers({
    "content-security-policy": [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' blob:",
      "media-src 'self' blob:",
      `connect-src 'self'${sockets}`,
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join("; "),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
  });
}

/** The `Host` header, when it is a plain host and port. */
export function hostOf(request: Request): string | undefined {
  const host = request.headers.get("host") ?? undefined;
  return host !== undefined && HOST.test(host) ? host : undefined;
}

/**
 * Whether a WebSocket upgrade may go ahead: a browser sends the page's origin,
 * which must be this server as the browser reached it (the `Host` header).
 * Programs that send no `Origin` are let in: they are not a page of some
 * other site acting with the user's browser.
 *
 * @param request The upgrade request.
 * @returns Whether to accept it.
 */
export function originAllowed(request: Request): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) return true;
  const host = hostOf(request);
  if (host === undefined) return false;
  try {
    const url = new URL(origin);
    return (url.protocol === "http:" || url.protocol === "https:") &&
      url.host.toLowerCase() === new URL(`http://${host}`).host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Answers a request for one of the page's files.
 *
 * @param request The request.
 * @returns The file, `404` for anything else, `405` for a method other than GET or HEAD.
 */
export function pageResponse(request: Request): Response {
  const headers = securityHeaders(hostOf(request));
  if (request.method !== "GET" && request.method !== "HEAD") {
    headers.set("allow", "GET, HEAD");
    return new Response("Method not allowed\n", { status: 405, headers });
  }
  const path = new URL(request.url).pathname;
  const name = path === "/" ? "index.html" : path.slice(1);
  const body = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (body === undefined) {
    headers.set("content-type", "text/plain; charset=utf-8");
    return new Response("Not found\n", { status: 404, headers });
  }
  headers.set("content-type", TYPES[name.slice(name.lastIndexOf(".") + 1)] ?? "text/plain");
  return new Response(request.method === "HEAD" ? null : body, { headers });
}
