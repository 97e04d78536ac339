/**
 * The naive Node.js relay the benchmark compares against: `net`, lines split
 * by hand, and one `socket.write` per line per other client. Every line a
 * client sends goes to every other client unchanged. Sockets keep Node's
 * defaults (Nagle's algorithm on).
 *
 * Usage: node bench/naive_node_relay.mjs PORT
 *
 * @module
 */

import net from "node:net";
import process from "node:process";

const port = Number(process.argv[2] ?? "7000");
const clients = new Set();

const server = net.createServer((socket) => {
  clients.add(socket);
  let pending = Buffer.alloc(0);
  socket.on("data", (chunk) => {
    const data = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    let start = 0;
    let newline = data.indexOf(10);
    while (newline !== -1) {
      const line = data.subarray(start, newline + 1);
      for (const other of clients) {
        if (other !== socket && other.writable) other.write(line);
      }
      start = newline + 1;
      newline = data.indexOf(10, start);
    }
    pending = Buffer.from(data.subarray(start));
  });
  socket.on("error", () => {});
  socket.on("close", () => clients.delete(socket));
});

server.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
