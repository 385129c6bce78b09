import { createValidator, type Validator } from "@bufbuild/protovalidate";

/**
 * The protovalidate validator every request goes through.
 *
 * Only the regex engine differs from protovalidate's default. By default every `string.pattern`
 * is matched by RE2 ported to JavaScript (@bufbuild/re2): linear time, but about a third of the
 * whole validation cost of an upload, where each metric point's and event's name has a pattern.
 * The patterns come from our own protos, never from a request, so a pattern whose shape cannot
 * backtrack (see `linearAsRegExp`) is matched with the platform RegExp, compiled once. A message
 * whose rules use any other pattern is validated by protovalidate's default validator, RE2 and
 * all. `request-validator.test.ts` checks that both engines agree on the served patterns.
 */
export function requestValidator(): Validator {
  const standard = createValidator();
  let needsRe2 = false;
  const matcher = patternMatcher(() => {
    needsRe2 = true;
  });
  const fast = createValidator({ regexMatch: matcher });
  /** Message types whose rules have a pattern the platform engine does not take. */
  const re2Types = new Set<string>();
  return {
    validate(schema, message) {
      if (re2Types.has(schema.typeName)) return standard.validate(schema, message);
      needsRe2 = false;
      const result = fast.validate(schema, message);
      if (!needsRe2) return result;
      re2Types.add(schema.typeName);
      return standard.validate(schema, message);
    },
  };
}

/**
 * A `regexMatch` for protovalidate: the platform RegExp, compiled once per pattern, for patterns
 * `linearAsRegExp` accepts. For any other pattern it calls `refuse` and throws (protovalidate
 * then reports a runtime error, and the caller validates with RE2 instead).
 */
export function patternMatcher(refuse: (pattern: string) => void): (pattern: string, against: string) => boolean {
  const compiled = new Map<string, RegExp | null>();
  return (pattern, against) => {
    let re = compiled.get(pattern);
    if (re === undefined) {
      // `u`: match code points, as RE2 matches UTF-8 runes.
      re = linearAsRegExp(pattern) ? new RegExp(pattern, "u") : null;
      compiled.set(pattern, re);
    }
    if (re === null) {
      refuse(pattern);
      throw new Error(`pattern ${pattern} is left to RE2`);
    }
    return re.test(against);
  };
}

/**
 * Whether the platform's backtracking engine runs the pattern in linear time and with RE2's
 * meaning: literals, escaped punctuation, character classes, `^`/`$`, alternation and groups,
 * where `*`, `+` and `{…}` follow only a literal or a class (each step of the input is tried
 * against a fixed set of classes) and a group takes at most a `?` (one choice, not a loop).
 * Shorthand classes, backreferences, flags, named groups and lookaround (`\d`, `\1`, `(?…`)
 * and stacked or lazy quantifiers are left to RE2.
 */
export function linearAsRegExp(pattern: string): boolean {
  if (/\\[^.\-_:/+*?()[\]{}^$|\\]/.test(pattern)) return false;
  if (pattern.includes("(?")) return false;
  if (/\)[*+{]/.test(pattern)) return false;
  if (/[*+?}][*+?{]/.test(pattern)) return false;
  return true;
}
