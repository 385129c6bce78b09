#!/usr/bin/env node
// The AgentGateway reference agent (docs/agent.md). Runs the TypeScript sources through tsx's
// loader, registered from this file so it resolves from the package, not the working
// directory: `node --import tsx` in the shebang only works when started inside the repository
// (systemd starts services in /).
import { register } from "tsx/esm/api";

register();
await import("../agent/main.ts");
