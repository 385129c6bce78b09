/**
 * `agwctl completion bash|zsh`: completion scripts generated from the command tree itself, so a
 * new command or flag completes without anyone touching this file.
 */
import type { Command, Option } from "commander";
import { allCommands, examples, handle } from "../command-table.js";
import { commandPath } from "../context.js";
import { usage } from "../errors.js";
import type { Io } from "../output.js";

interface Node {
  path: string;
  /** Subcommands (with aliases) and their one-line descriptions. */
  subcommands: Array<[string, string]>;
  /** Options of the command and the global ones, with descriptions. */
  options: Array<[string, string]>;
}

const firstSentence = (text: string) => (text.split(/(?<=\.)\s/)[0] ?? "").replace(/\.$/, "");
const takesValue = (o: Option) => o.required || o.optional;
const isFile = (o: Option) => o.flags.includes("<file>");
const flagsOf = (o: Option) => [o.long, o.short].filter((f): f is string => Boolean(f));

function nodes(program: Command): Node[] {
  const globals = program.options.filter((o) => !o.hidden);
  const optionPairs = (opts: readonly Option[]) => opts.flatMap((o) => flagsOf(o).map((f): [string, string] => [f, firstSentence(o.description)]));
  return [program, ...allCommands(program)].flatMap((cmd) => {
    const parent = cmd.parent && cmd.parent !== program ? `${commandPath(cmd.parent)} ` : "";
    const paths = cmd === program ? [""] : [cmd.name(), ...cmd.aliases()].map((n) => `${parent}${n}`);
    return paths.map((path) => ({
      path,
      subcommands: cmd.commands.flatMap((c) => [c.name(), ...c.aliases()].map((n): [string, string] => [n, firstSentence(c.description())])),
      options: [...optionPairs(cmd === program ? [] : cmd.options), ...optionPairs(globals), ["--help", "show help"]] as Array<[string, string]>,
    }));
  });
}

/** Every option of every command, for the value-taking and file lists. */
function everyOption(program: Command): Option[] {
  return [program, ...allCommands(program)].flatMap((c) => [...c.options]);
}

const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
const unique = (xs: string[]) => [...new Set(xs)];

/** The bash completion script. */
export function bashCompletion(program: Command): string {
  const all = nodes(program);
  const options = everyOption(program);
  const valueFlags = unique(options.filter(takesValue).flatMap(flagsOf));
  const fileFlags = unique(options.filter(isFile).flatMap(flagsOf));
  const choiceCases = options
    .filter((o) => o.argChoices?.length)
    .map((o) => `    ${flagsOf(o).join("|")}) COMPREPLY=($(compgen -W ${quote((o.argChoices ?? []).join(" "))} -- "$cur")); return ;;`);
  const leaves = all.filter((n) => n.path).map((n) => quote(n.path));
  const wordCases = all.map((n) => `    ${quote(n.path)}) words=${quote([...n.subcommands.map(([s]) => s), ...n.options.map(([o]) => o)].join(" "))} ;;`);
  return `# bash completion for agwctl. Load with: source <(agwctl completion bash)
_agwctl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" w i skip="" words=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ -n "$skip" ]]; then skip=""; continue; fi
    case "$w" in
      ${valueFlags.join("|")}) skip=1; continue ;;
      -*) continue ;;
    esac
    case "\${path:+$path }$w" in
      ${unique(leaves).join("|")}) path="\${path:+$path }$w" ;;
    esac
  done
  case "\${COMP_WORDS[COMP_CWORD-1]}" in
${choiceCases.join("\n")}
    ${fileFlags.join("|")}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    ${valueFlags.join("|")}) COMPREPLY=(); return ;;
  esac
  case "$path" in
${wordCases.join("\n")}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _agwctl agwctl
`;
}

const zshEscape = (s: string) => s.replace(/\\/g, "\\\\").replace(/:/g, "\\:").replace(/'/g, "'\\''");

/** The zsh completion script (native: _describe and _files, no bashcompinit). */
export function zshCompletion(program: Command): string {
  const all = nodes(program);
  const options = everyOption(program);
  const valueFlags = unique(options.filter(takesValue).flatMap(flagsOf));
  const fileFlags = unique(options.filter(isFile).flatMap(flagsOf));
  const leaves = unique(all.filter((n) => n.path).map((n) => quote(n.path)));
  const choiceCases = options
    .filter((o) => o.argChoices?.length)
    .map((o) => `    ${flagsOf(o).join("|")}) compadd -- ${(o.argChoices ?? []).join(" ")}; return ;;`);
  const cases = all.map((n) => {
    const subs = n.subcommands.map(([s, d]) => `'${zshEscape(s)}:${zshEscape(d)}'`).join(" ");
    const opts = n.options.map(([o, d]) => `'${zshEscape(o)}:${zshEscape(d)}'`).join(" ");
    return `    ${quote(n.path)})\n      subs=(${subs})\n      opts=(${opts}) ;;`;
  });
  return `#compdef agwctl
# zsh completion for agwctl. Load with: source <(agwctl completion zsh)   (after compinit)
_agwctl() {
  local path_="" w i skip="" cur="\${words[CURRENT]}"
  local -a subs opts
  for ((i = 2; i < CURRENT; i++)); do
    w="\${words[i]}"
    if [[ -n "$skip" ]]; then skip=""; continue; fi
    case "$w" in
      ${valueFlags.join("|")}) skip=1; continue ;;
      -*) continue ;;
    esac
    case "\${path_:+$path_ }$w" in
      ${leaves.join("|")}) path_="\${path_:+$path_ }$w" ;;
    esac
  done
  case "\${words[CURRENT-1]}" in
${choiceCases.join("\n")}
    ${fileFlags.join("|")}) _files; return ;;
    ${valueFlags.join("|")}) return ;;
  esac
  case "$path_" in
${cases.join("\n")}
  esac
  if [[ "$cur" == -* ]]; then
    _describe -t options 'agwctl option' opts
  else
    _describe -t commands 'agwctl command' subs
  fi
}
if [[ "\${funcstack[1]}" == "_agwctl" ]]; then
  _agwctl "$@"
else
  compdef _agwctl agwctl
fi
`;
}

/** Registers `completion`. */
export function registerCompletion(program: Command, io: Io): void {
  const completion = program.command("completion").argument("<shell>", "bash or zsh").description("Print a shell completion script for bash or zsh.");
  examples(completion, "source <(agwctl completion bash)        # in ~/.bashrc", "source <(agwctl completion zsh)         # in ~/.zshrc, after compinit");
  handle(completion, io, {
    rpcs: [],
    async run(run, [shell]) {
      if (shell === "bash") run.out.io.stdout.write(bashCompletion(program));
      else if (shell === "zsh") run.out.io.stdout.write(zshCompletion(program));
      else throw usage(`completion supports bash and zsh, got "${shell ?? ""}"`);
    },
  });
}
