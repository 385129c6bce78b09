#!/usr/bin/env node
// Runs the TypeScript sources through tsx's loader, resolved from this package (not the cwd).
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
