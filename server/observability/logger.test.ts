import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

describe("createLogger", () => {
  it("never writes secrets found under the redacted paths", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger("info", sink);
    logger.info({ token: "agwe_secret1", req: { sessionToken: "agws_secret2", headers: { authorization: "Bearer agwk_secret3" } }, apiKey: "agwk_secret4" }, "call");
    logger.info({ config: { bootstrapAdminKey: "a".repeat(40) } }, "config");
    const out = lines.join("");
    for (const secret of ["agwe_secret1", "agws_secret2", "agwk_secret3", "agwk_secret4", "a".repeat(40)]) expect(out).not.toContain(secret);
    expect(out).toContain("[redacted]");
  });
});
