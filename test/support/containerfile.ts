import { readFileSync } from "node:fs";

/** One instruction of a Containerfile, continuation lines joined. */
export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** What a container engine would run from the final stage of a Containerfile. */
export interface RuntimeStage {
  from: string;
  env: Record<string, string>;
  workdir: string;
  user: string | undefined;
  entrypoint: string[];
  cmd: string[];
  healthcheck: { options: Record<string, string>; cmd: string[] } | undefined;
  stopSignal: string | undefined;
  volumes: string[];
  expose: string[];
  /** `COPY --from=<stage> <src>… <dest>` sources, per stage name. */
  copiesFrom: { stage: string; sources: string[]; dest: string }[];
}

/** Splits a Containerfile into instructions (comments dropped, `\` continuations joined). */
export function parseContainerfile(path: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  let start = 0;
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((raw, i) => {
      const line = raw.trimEnd();
      if (!pending && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
      if (!pending) start = i + 1;
      if (line.trimStart().startsWith("#")) return;
      if (line.endsWith("\\")) {
        pending += `${line.slice(0, -1)} `;
        return;
      }
      const full = (pending + line).trim();
      pending = "";
      const keyword = full.split(/\s+/)[0] ?? "";
      out.push({ keyword: keyword.toUpperCase(), args: full.slice(keyword.length).trim(), line: start });
    });
  return out;
}

/** The stages (split at FROM), each with its instructions. */
export function stagesOf(instructions: Instruction[]): { from: string; name: string | undefined; body: Instruction[] }[] {
  const stages: { from: string; name: string | undefined; body: Instruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const [image = "", as, name] = ins.args.split(/\s+/);
      stages.push({ from: image, name: as?.toUpperCase() === "AS" ? name : undefined, body: [] });
    } else {
      stages.at(-1)?.body.push(ins);
    }
  }
  return stages;
}

/** Reads the final stage the way an engine does for `docker run` (exec forms only). */
export function runtimeStage(path: string): RuntimeStage {
  const stages = stagesOf(parseContainerfile(path));
  const last = stages.at(-1);
  if (!last) throw new Error(`${path}: no FROM`);
  const stage: RuntimeStage = {
    from: last.from,
    env: {},
    workdir: "/",
    user: undefined,
    entrypoint: [],
    cmd: [],
    healthcheck: undefined,
    stopSignal: undefined,
    volumes: [],
    expose: [],
    copiesFrom: [],
  };
  for (const ins of last.body) {
    switch (ins.keyword) {
      case "ENV":
        for (const pair of ins.args.split(/\s+/)) {
          const eq = pair.indexOf("=");
          if (eq <= 0) throw new Error(`line ${ins.line}: ENV must use KEY=VALUE pairs without spaces`);
          stage.env[pair.slice(0, eq)] = pair.slice(eq + 1);
        }
        break;
      case "WORKDIR":
        stage.workdir = ins.args;
        break;
      case "USER":
        stage.user = ins.args;
        break;
      case "ENTRYPOINT":
        stage.entrypoint = execForm(ins);
        break;
      case "CMD":
        stage.cmd = execForm(ins);
        break;
      case "STOPSIGNAL":
        stage.stopSignal = ins.args;
        break;
      case "VOLUME":
        stage.volumes.push(...(JSON.parse(ins.args) as string[]));
        break;
      case "EXPOSE":
        stage.expose.push(...ins.args.split(/\s+/));
        break;
      case "HEALTHCHECK": {
        const m = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)$/.exec(ins.args);
        if (!m) throw new Error(`line ${ins.line}: HEALTHCHECK must be [options] CMD [exec form]`);
        const options = Object.fromEntries((m[1] ?? "").trim().split(/\s+/).filter(Boolean).map((o) => o.slice(2).split("=") as [string, string]));
        stage.healthcheck = { options, cmd: execForm({ ...ins, args: m[2] ?? "" }) };
        break;
      }
      case "COPY": {
        const parts = ins.args.split(/\s+/);
        const from = parts.find((p) => p.startsWith("--from="));
        if (from) {
          const paths = parts.filter((p) => !p.startsWith("--"));
          stage.copiesFrom.push({ stage: from.slice("--from=".length), sources: paths.slice(0, -1), dest: paths.at(-1) ?? "" });
        }
        break;
      }
    }
  }
  return stage;
}

function execForm(ins: Instruction): string[] {
  // The shell form would put /bin/sh between the engine and the process: signals would not reach it.
  let parsed: unknown;
  try {
    parsed = JSON.parse(ins.args);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === "string")) {
    throw new Error(`line ${ins.line}: ${ins.keyword} must use the JSON exec form`);
  }
  return parsed;
}
