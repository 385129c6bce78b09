/**
 * Every command prints through this: `--format table` (default: aligned, fitted to the terminal,
 * colour on a TTY unless NO_COLOR), `json` (the response message in protobuf's canonical JSON,
 * every field present, so scripts can rely on keys), `yaml` (the same value as YAML), and
 * `--quiet` (only IDs, or nothing). Streams (watch, follow, export) print one JSON object per
 * line with `--format json`.
 */
import type { DescEnum, DescMessage, MessageShape } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import { stringify as toYaml } from "yaml";
import { usage } from "./errors.js";

/** The output formats of `--format`. */
export const FORMATS = ["table", "json", "yaml"] as const;
export type Format = (typeof FORMATS)[number];

/** A writable stream as the CLI uses it (process.stdout or a test double). */
export interface OutStream {
  write(chunk: string): boolean;
  isTTY?: boolean;
  columns?: number;
}

/** A readable stream as the CLI uses it (process.stdin or a test double). */
export interface InStream extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

/** The process's streams and environment, passed in so tests can run the CLI in-process. */
export interface Io {
  stdout: OutStream;
  stderr: OutStream;
  stdin: InStream;
  env: NodeJS.ProcessEnv;
}

/** What a command prints for humans and for `--quiet`. */
export interface HumanView {
  /** The table or key/value text (without a trailing newline). */
  text?: () => string;
  /** The IDs `--quiet` prints, one per line (nothing when absent). */
  ids?: () => string[];
}

/** Prints results in the chosen format. */
export class Output {
  readonly colour: boolean;
  /** The width tables are fitted into; undefined when stdout is not a terminal. */
  readonly width: number | undefined;

  constructor(
    readonly io: Io,
    readonly format: Format,
    readonly quiet: boolean,
  ) {
    this.colour = io.stdout.isTTY === true && io.env.NO_COLOR === undefined && io.env.TERM !== "dumb";
    const columns = io.stdout.isTTY ? io.stdout.columns : Number(io.env.COLUMNS) || undefined;
    this.width = columns && columns > 20 ? columns : undefined;
  }

  /** Whether stdout is a terminal (progress bars, prompts). */
  get tty(): boolean {
    return this.io.stdout.isTTY === true;
  }

  /** Prints one response message. */
  result<D extends DescMessage>(schema: D, message: MessageShape<D>, view: HumanView = {}): void {
    if (this.format === "json") this.line(JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: true }), null, 2));
    else if (this.format === "yaml") this.io.stdout.write(toYaml(toJson(schema, message, { alwaysEmitImplicit: true })));
    else if (this.quiet) for (const id of view.ids?.() ?? []) this.line(id);
    else if (view.text) this.line(view.text());
  }

  /** Prints a result that is not a proto message (local commands: logout, keygen). */
  value(value: Record<string, unknown>, view: HumanView = {}): void {
    if (this.format === "json") this.line(JSON.stringify(value, null, 2));
    else if (this.format === "yaml") this.io.stdout.write(toYaml(value));
    else if (this.quiet) for (const id of view.ids?.() ?? []) this.line(id);
    else if (view.text) this.line(view.text());
  }

  /** Prints one item of a stream: a compact JSON line, a YAML document, or the human text. */
  item<D extends DescMessage>(schema: D, message: MessageShape<D>, view: HumanView = {}): void {
    if (this.format === "json") this.line(JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: true })));
    else if (this.format === "yaml") this.io.stdout.write(`---\n${toYaml(toJson(schema, message, { alwaysEmitImplicit: true }))}`);
    else if (this.quiet) for (const id of view.ids?.() ?? []) this.line(id);
    else if (view.text) this.line(view.text());
  }

  /** A note for humans on stderr (hints, "shown once"); silent with --quiet. */
  note(text: string): void {
    if (!this.quiet) this.io.stderr.write(`${text}\n`);
  }

  /** A line on stdout. */
  line(text: string): void {
    this.io.stdout.write(`${text}\n`);
  }
}

/** Checks a --format value. */
export function parseFormat(value: string): Format {
  if ((FORMATS as readonly string[]).includes(value)) return value as Format;
  throw usage(`--format must be one of ${FORMATS.join(", ")}, got "${value}"`);
}

/**
 * The short name of an enum value ("ACTIVE" for AGENT_STATE_ACTIVE), from the descriptor, so
 * tables and flags use the words the proto defines without repeating them here.
 */
export function enumName(schema: DescEnum, value: number): string {
  const entry = schema.values.find((v) => v.number === value);
  return entry ? entry.localName : String(value);
}

/** The enum value named by a flag ("pending", "PENDING_APPROVAL", "pending-approval"); throws a usage error naming the choices. */
export function parseEnum(schema: DescEnum, flag: string, value: string, aliases: Record<string, string> = {}): number {
  const wanted = (aliases[value.toLowerCase()] ?? value).toUpperCase().replace(/-/g, "_");
  const entry = schema.values.find((v) => v.number !== 0 && (v.localName === wanted || v.name === wanted));
  if (!entry) throw usage(`${flag} must be one of ${enumChoices(schema).join(", ")}, got "${value}"`);
  return entry.number;
}

/** The lower-case choices of an enum flag (without UNSPECIFIED). */
export function enumChoices(schema: DescEnum): string[] {
  return schema.values.filter((v) => v.number !== 0).map((v) => v.localName.toLowerCase().replace(/_/g, "-"));
}
