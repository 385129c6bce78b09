/** Protocol primitives shared by the gateway, the agent and the CLI; spec in docs/protocol.md. */
export * from "./ed25519.js";
export * from "./secrets.js";
export * from "./transcript.js";
export * from "./verification-code.js";
