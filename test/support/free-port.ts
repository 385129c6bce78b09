import { createServer } from "node:net";

/**
 * A TCP port free on 127.0.0.1 right now, for a process that must be told its port up front
 * (PostgreSQL, a gateway child restarted on the same address). Servers in this process bind
 * port 0 instead. Another process can take the port before it is used; callers accept that.
 */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port was bound"))));
    });
  });
}
