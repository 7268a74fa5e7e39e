/**
 * The `regex` operator's patterns are written for Rust's `regex` crate (the server validates them with it).
 * JavaScript's RegExp reads the same text differently: `\d`, `\w`, `\s` and `\b` are ASCII-only in JS and
 * Unicode-aware in Rust, `.` excludes `\r`, U+2028 and U+2029 in JS but only `\n` in Rust, Rust has inline
 * flags, `\A`, `\z`, `\<`, `[[:alpha:]]`, class set operations and `(?P<name>…)`, JS has look-around and
 * backreferences that Rust refuses. So patterns are translated, not reused: this module parses the Rust
 * syntax (following regex-syntax's parser) and writes an equivalent JS pattern for the `v` flag, in which
 * every ASCII punctuation character is written as an `\xHH` escape and every non-ASCII one as `\u{…}`.
 *
 * Case-insensitivity becomes the JS `i` flag when every case-sensitive atom of the pattern agrees on it
 * (`(?i)` at the start, or after the last letter); otherwise the atoms that differ are wrapped in JS
 * `(?i:…)`/`(?-i:…)` modifiers, which runtimes before V8 12.5 (Node 20, 22) do not support.
 *
 * A pattern Rust would refuse yields `undefined`, as does one using what has no JS equivalent here (mixed
 * case-sensitivity on a runtime without modifiers, a Unicode property name JS does not know). The engine then
 * drops the pattern, which is what the Rust engine does with a pattern that does not compile: it never
 * matches. Rust also refuses patterns that compile beyond its 64 KiB size limit (`\p{L}{2}`); those are not
 * detected here, but the server refuses them when a state is written, so no state carries them.
 *
 * Rust's engine runs in linear time, JS's backtracks, so a pattern such as `^(a+)+$` that Rust answers in
 * microseconds can take seconds in JS on a hostile attribute value (30 `a`s and a `!`). The server refuses such
 * shapes when a write adds them (vexil-core's `backtracking`: a repetition of a part that can match in more than
 * one way and does not split one way, `(a+)+` but not `(-[a-z]+)*`); this module refuses the same shapes, so states
 * stored before the server did are not a way to freeze an application. Such a pattern never matches here, while
 * the server (and the Rust SDK) still match it.
 */

/** Rust's Unicode `\w`: UTS #18's word characters. */
const WORD_SET = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";
const ASCII_WORD_SET = "0-9A-Za-z\\x5F";
const ASCII_SPACE_SET = "\\x09-\\x0D\\x20";

/** The ASCII classes of `[[:name:]]`. */
const ASCII_CLASSES: Readonly<Record<string, string>> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\x00-\\x7F",
  blank: "\\x09\\x20",
  cntrl: "\\x00-\\x1F\\x7F",
  digit: "0-9",
  graph: "\\x21-\\x7E",
  lower: "a-z",
  print: "\\x20-\\x7E",
  punct: "\\x21-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7E",
  space: ASCII_SPACE_SET,
  upper: "A-Z",
  word: ASCII_WORD_SET,
  xdigit: "0-9A-Fa-f",
};

/** Rust's meta characters, which may always be escaped. */
const META = "\\.+*?()|[]{}^$#&-~";
const FLAG_LETTERS = "imsUuRx";
const WHITE_SPACE = /^\p{White_Space}$/u;
const ALPHABETIC = /^\p{Alphabetic}$/u;
const ALPHANUMERIC = /^[\p{Alphabetic}\p{N}]$/u;
const CASED = /^\p{Changes_When_Casemapped}$/u;

/** The inline flags in force at some point of a pattern. */
interface Flags {
  /** `i`: case-insensitive. */
  caseless: boolean;
  /** `m`: `^` and `$` match at line ends. */
  multiLine: boolean;
  /** `s`: `.` matches `\n`. */
  dotAll: boolean;
  /** `U`: greedy and lazy swap. */
  swapGreed: boolean;
  /** `x`: whitespace and `#` comments are ignored. */
  verbose: boolean;
  /** `u` (on by default): classes and word boundaries are Unicode-aware. */
  unicode: boolean;
  /** `R`: `\r\n` ends lines for `.`, `^` and `$`. */
  crlf: boolean;
}

const INITIAL_FLAGS: Flags = {
  caseless: false,
  multiLine: false,
  dotAll: false,
  swapGreed: false,
  verbose: false,
  unicode: true,
  crlf: false,
};

/** Why a pattern cannot be translated: Rust refuses it, or it has no JS equivalent here. */
class UntranslatablePattern extends Error {}

function refuse(why: string): never {
  throw new UntranslatablePattern(why);
}

/** One item of a concatenation in the output: quantifiers need to know what they apply to. */
interface Piece {
  text: string;
  /** `atom`s take a quantifier as they are; others are grouped first; `flags` cannot be repeated. */
  kind: "atom" | "assertion" | "repetition" | "flags";
  /** Its shape, as written, for the backtracking check. */
  node: Shape;
}

/** A JS pattern that matches one character: what an atom of the Rust pattern matches, under its flags. */
interface CharSet {
  source: string;
  caseless: boolean;
  /** The code point, for a literal. */
  code?: number;
}

/**
 * The pattern as written (not as the JS text is grouped), as far as the backtracking check needs it:
 * characters, things that match the empty text (assertions, flags), sequences, alternatives and repetitions.
 */
type Shape =
  | { kind: "char"; set: CharSet }
  | { kind: "empty" }
  | { kind: "concat"; items: Shape[] }
  | { kind: "alternation"; branches: Shape[] }
  | { kind: "repetition"; min: number; max: number; body: Shape };

const EMPTY: Shape = { kind: "empty" };

/** What an escape sequence stands for. */
type Escaped =
  | { kind: "literal"; code: number }
  | {
      kind: "class";
      /** The class's content, to write inside brackets. */
      set: string;
      negated: boolean;
      /** How to write its complement inside brackets without nesting, when possible. */
      complement: string | undefined;
      /** Whether case-insensitivity cannot change what it matches (`\d`, `\s`, `\w`). */
      caseFolded: boolean;
    }
  | { kind: "assertion"; text: string };

/** The result of a translation: a JS pattern and the JS flags it needs. */
interface Translation {
  source: string;
  /** Whether the JS `i` flag is set. */
  caseless: boolean;
  /** Whether the source nests classes (`v` flag only). */
  usesSetNotation: boolean;
  /** Whether the source has look-arounds (written for Rust's word boundaries and multi-line anchors). */
  usesLookaround: boolean;
  /** The pattern's shape. */
  shape: Shape;
}

/** Writes a code point so that it means itself anywhere in a `v`- or `u`-flag pattern. */
function literalText(code: number): string {
  const alphanumeric = (code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
  if (alphanumeric) return String.fromCharCode(code);
  if (code < 0x80) return `\\x${code.toString(16).padStart(2, "0").toUpperCase()}`;
  return `\\u{${code.toString(16).toUpperCase()}}`;
}

function isWhitespace(char: string): boolean {
  return WHITE_SPACE.test(char);
}

function isHexDigit(char: string): boolean {
  return /^[0-9A-Fa-f]$/.test(char);
}

/** Whether `\p{body}` compiles in JS. */
function isJsProperty(body: string): boolean {
  try {
    new RegExp(`\\p{${body}}`, "u");
    return true;
  } catch {
    return false;
  }
}

/** `uppercase letter` → `Uppercase_Letter`: the canonical spelling JS requires, from Rust's loose one. */
function titleCase(name: string): string {
  return name
    .split(/[\s_-]+/u)
    .filter((word) => word.length > 0)
    .map((word) => word[0]!.toUpperCase() + word.slice(1).toLowerCase())
    .join("_");
}

/**
 * The JS form of a bare Unicode class name: a binary property or general category, else a script. Rust
 * matches names loosely (any case, `_`, `-` and spaces ignored, an `Is` prefix allowed); JS wants them
 * spelt exactly, so a few spellings are tried (`greek` → `Greek`, `lc` → `LC`, `IsGreek` → `Greek`).
 */
function jsPropertyName(name: string): string {
  const loose = name.replace(/[\s_-]/gu, "").toLowerCase();
  const special: Record<string, string> = { any: "Any", assigned: "Assigned", ascii: "ASCII" };
  const unprefixed = /^is/i.test(name) ? name.slice(2) : "";
  const spellings = [name, titleCase(name), name.toUpperCase(), special[loose] ?? ""];
  if (unprefixed.length > 0) spellings.push(unprefixed, titleCase(unprefixed), unprefixed.toUpperCase());
  const candidates = spellings.filter((candidate) => candidate.length > 0);
  for (const candidate of candidates) if (isJsProperty(candidate)) return candidate;
  for (const candidate of candidates) if (isJsProperty(`Script=${candidate}`)) return `Script=${candidate}`;
  return refuse(`unknown Unicode class ${name}`);
}

/** The JS form of `name=value` (`gc=Lu`, `sc=Greek`, `scx=Greek`). */
function jsPropertyValue(name: string, value: string): string {
  const key = name.replace(/[\s_-]/gu, "").toLowerCase();
  const keys: Record<string, string> = {
    gc: "General_Category",
    generalcategory: "General_Category",
    sc: "Script",
    script: "Script",
    scx: "Script_Extensions",
    scriptextensions: "Script_Extensions",
  };
  const property = keys[key] ?? refuse(`unsupported Unicode property ${name}`);
  for (const candidate of [value, titleCase(value)]) {
    if (isJsProperty(`${property}=${candidate}`)) return `${property}=${candidate}`;
  }
  return refuse(`unknown Unicode class ${name}=${value}`);
}

/** A Rust pattern parsed and written again for JS. */
class Translator {
  private pos = 0;
  private readonly names = new Set<string>();
  /** The JS `i` flag: what the first case-sensitive atom asks for. */
  private caseless: boolean | undefined;
  private usesSetNotation = false;
  private usesLookaround = false;

  constructor(private readonly pattern: string) {}

  translate(): Translation {
    const { text: source, shape } = this.alternation({ ...INITIAL_FLAGS }, true);
    return {
      source,
      shape,
      caseless: this.caseless === true,
      usesSetNotation: this.usesSetNotation,
      usesLookaround: this.usesLookaround,
    };
  }

  private atEnd(): boolean {
    return this.pos >= this.pattern.length;
  }

  /** The character at the cursor (a whole code point). */
  private char(): string {
    const code = this.pattern.codePointAt(this.pos);
    return code === undefined ? "" : String.fromCodePoint(code);
  }

  private advance(): void {
    this.pos += this.char().length || 1;
  }

  private eat(text: string): boolean {
    if (!this.pattern.startsWith(text, this.pos)) return false;
    this.pos += text.length;
    return true;
  }

  private expect(char: string): void {
    if (this.atEnd() || this.char() !== char) refuse(`expected ${char}`);
    this.advance();
  }

  /** In verbose mode, skips whitespace and `#` comments (regex-syntax's `bump_space`). */
  private skipSpace(flags: Flags): void {
    if (!flags.verbose) return;
    while (!this.atEnd()) {
      const char = this.char();
      if (isWhitespace(char)) {
        this.advance();
      } else if (char === "#") {
        while (!this.atEnd() && this.char() !== "\n") this.advance();
        if (!this.atEnd()) this.advance();
      } else {
        return;
      }
    }
  }

  /** Advances one character and, in verbose mode, past the space after it (`bump_and_bump_space`). */
  private advanceAndSkip(flags: Flags): boolean {
    this.advance();
    this.skipSpace(flags);
    return !this.atEnd();
  }

  /** The character after the cursor's, skipping space in verbose mode as regex-syntax's `peek_space` does. */
  private peekSpace(flags: Flags): string | undefined {
    const rest = this.pattern.slice(this.pos + this.char().length);
    let inComment = false;
    for (const char of rest) {
      if (!flags.verbose) return char;
      if (isWhitespace(char)) continue;
      if (!inComment && char === "#") {
        inComment = true;
        continue;
      }
      return char;
    }
    return undefined;
  }

  /**
   * Writes an atom whose matching depends on case under the case-sensitivity in force: the first such atom
   * sets the JS `i` flag, later ones that disagree with it get a modifier group.
   */
  private caseAware(text: string, flags: Flags): string {
    if (this.caseless === undefined) this.caseless = flags.caseless;
    if (flags.caseless === this.caseless) return text;
    return flags.caseless ? `(?i:${text})` : `(?-i:${text})`;
  }

  /** A literal, under the case-sensitivity in force when it has other cases. */
  private literalAtom(code: number, flags: Flags): Piece {
    const char = String.fromCodePoint(code);
    const text = literalText(code);
    const atom = (output: string, source: string, caseless: boolean): Piece => ({
      kind: "atom",
      text: output,
      node: { kind: "char", set: { source, caseless, code } },
    });
    if (!CASED.test(char)) return atom(text, text, false);
    // ASCII-only case-insensitivity: JS would also let `k` match U+212A KELVIN SIGN, `s` U+017F LONG S, `é` `É`.
    if (!flags.unicode && flags.caseless) {
      const exact = { ...flags, caseless: false };
      if (/^[ksKS]$/.test(char)) {
        const both = `[${char.toLowerCase()}${char.toUpperCase()}]`;
        return atom(this.caseAware(both, exact), both, false);
      }
      if (code >= 0x80) return atom(this.caseAware(text, exact), text, false);
    }
    return atom(this.caseAware(text, flags), text, flags.caseless);
  }

  /** A class, under the case-sensitivity in force unless case cannot change what it matches. */
  private classAtom(text: string, caseFolded: boolean, flags: Flags): Piece {
    const atom = (output: string, caseless: boolean): Piece => ({
      kind: "atom",
      text: output,
      node: { kind: "char", set: { source: text, caseless } },
    });
    if (caseFolded) return atom(text, false);
    // JS folds non-ASCII letters into ASCII classes (U+212A into `[a-z]`), which Rust's ASCII-only folding does not.
    if (!flags.unicode && flags.caseless) refuse("ASCII-only case-insensitive classes");
    return atom(this.caseAware(text, flags), flags.caseless);
  }

  /** A group's content up to its `)` (not consumed), or the whole pattern at the top level. */
  private alternation(flags: Flags, top: boolean): { text: string; shape: Shape } {
    const branches: string[] = [];
    const shapes: Shape[] = [];
    let pieces: Piece[] = [];
    for (;;) {
      this.skipSpace(flags);
      if (this.atEnd()) {
        if (!top) refuse("unclosed group");
        break;
      }
      const char = this.char();
      if (char === ")") {
        if (top) refuse("unopened group");
        break;
      }
      switch (char) {
        case "(":
          this.advance();
          this.group(flags, pieces);
          break;
        case "|":
          this.advance();
          branches.push(pieces.map((piece) => piece.text).join(""));
          shapes.push({ kind: "concat", items: pieces.map((piece) => piece.node) });
          pieces = [];
          break;
        case "[":
          pieces.push(this.classAtom(this.bracketClass(flags), false, flags));
          break;
        case "?":
        case "*":
        case "+":
          this.uncountedRepetition(pieces, flags);
          break;
        case "{":
          this.countedRepetition(pieces, flags);
          break;
        default:
          pieces.push(this.primitive(flags));
      }
    }
    branches.push(pieces.map((piece) => piece.text).join(""));
    shapes.push({ kind: "concat", items: pieces.map((piece) => piece.node) });
    const shape: Shape = shapes.length === 1 ? shapes[0]! : { kind: "alternation", branches: shapes };
    return { text: branches.join("|"), shape };
  }

  /** After `(`: a group, a scoped flag group, or flags for the rest of the enclosing group. */
  private group(flags: Flags, pieces: Piece[]): void {
    this.skipSpace(flags);
    if (this.eat("?=") || this.eat("?!") || this.eat("?<=") || this.eat("?<!")) refuse("look-around is not supported");
    if (this.eat("?P<") || this.eat("?<")) {
      this.captureName();
      const body = this.groupBody({ ...flags });
      pieces.push({ kind: "atom", text: `(${body.text})`, node: body.shape });
      return;
    }
    if (this.eat("?")) {
      if (this.atEnd()) refuse("unclosed group");
      const { settings, scoped } = this.flagSettings();
      if (scoped) {
        const inner = { ...flags };
        this.applyFlags(inner, settings);
        const body = this.groupBody(inner);
        pieces.push({ kind: "atom", text: `(?:${body.text})`, node: body.shape });
      } else {
        if (settings.length === 0) refuse("empty flags");
        this.applyFlags(flags, settings);
        pieces.push({ kind: "flags", text: "", node: EMPTY });
      }
      return;
    }
    const body = this.groupBody({ ...flags });
    pieces.push({ kind: "atom", text: `(${body.text})`, node: body.shape });
  }

  private groupBody(flags: Flags): { text: string; shape: Shape } {
    const body = this.alternation(flags, false);
    this.expect(")");
    return body;
  }

  /** A capture group's name, up to and including `>`; JS gets an unnamed group (names do not change matching). */
  private captureName(): void {
    const start = this.pos;
    for (;;) {
      if (this.atEnd()) refuse("unclosed group name");
      const char = this.char();
      if (char === ">") break;
      const valid = this.pos === start ? char === "_" || ALPHABETIC.test(char) : "_.[]".includes(char) || ALPHANUMERIC.test(char);
      if (!valid) refuse("invalid group name");
      this.advance();
    }
    const name = this.pattern.slice(start, this.pos);
    this.advance();
    if (name.length === 0) refuse("empty group name");
    if (this.names.has(name)) refuse(`duplicate group name ${name}`);
    this.names.add(name);
  }

  /** `i-sx` up to `)` or `:` (consumed): each flag with whether it is set or cleared. */
  private flagSettings(): { settings: Array<[string, boolean]>; scoped: boolean } {
    const settings: Array<[string, boolean]> = [];
    let negated = false;
    let lastWasNegation = false;
    for (;;) {
      if (this.atEnd()) refuse("unclosed flags");
      const char = this.char();
      this.advance();
      if (char === ":" || char === ")") {
        if (lastWasNegation) refuse("dangling flag negation");
        return { settings, scoped: char === ":" };
      }
      if (char === "-") {
        if (negated) refuse("repeated flag negation");
        negated = true;
        lastWasNegation = true;
        continue;
      }
      if (!FLAG_LETTERS.includes(char)) refuse(`unknown flag ${char}`);
      if (settings.some(([letter]) => letter === char)) refuse(`duplicate flag ${char}`);
      settings.push([char, !negated]);
      lastWasNegation = false;
    }
  }

  private applyFlags(flags: Flags, settings: Array<[string, boolean]>): void {
    for (const [letter, on] of settings) {
      switch (letter) {
        case "i":
          flags.caseless = on;
          break;
        case "m":
          flags.multiLine = on;
          break;
        case "s":
          flags.dotAll = on;
          break;
        case "U":
          flags.swapGreed = on;
          break;
        case "x":
          flags.verbose = on;
          break;
        case "u":
          flags.unicode = on;
          break;
        case "R":
          flags.crlf = on;
          break;
      }
    }
  }

  /** Applies a quantifier to the last piece: at least `min` and at most `max` (`Infinity`) times. */
  private quantify(pieces: Piece[], quantifier: string, lazy: boolean, flags: Flags, min: number, max: number): void {
    const last = pieces[pieces.length - 1];
    if (last === undefined || last.kind === "flags") refuse("repetition of nothing");
    const greedy = flags.swapGreed ? lazy : !lazy;
    const operand = last.kind === "atom" ? last.text : `(?:${last.text})`;
    pieces[pieces.length - 1] = {
      kind: "repetition",
      text: `${operand}${quantifier}${greedy ? "" : "?"}`,
      node: { kind: "repetition", min, max, body: last.node },
    };
  }

  private uncountedRepetition(pieces: Piece[], flags: Flags): void {
    const quantifier = this.char();
    this.advance();
    const lazy = this.eat("?");
    const [min, max] = quantifier === "?" ? [0, 1] : quantifier === "*" ? [0, Infinity] : [1, Infinity];
    this.quantify(pieces, quantifier, lazy, flags, min, max);
  }

  /** `{n}`, `{n,}` or `{n,m}`, spaces allowed around the numbers. */
  private countedRepetition(pieces: Piece[], flags: Flags): void {
    if (!this.advanceAndSkip(flags)) refuse("unclosed repetition");
    const min = this.decimal(flags);
    if (this.atEnd()) refuse("unclosed repetition");
    let quantifier: string;
    let upper: number;
    if (this.char() === ",") {
      if (!this.advanceAndSkip(flags)) refuse("unclosed repetition");
      if (min === undefined) refuse("repetition without a minimum");
      if (this.char() === "}") {
        quantifier = `{${min},}`;
        upper = Infinity;
      } else {
        const max = this.decimal(flags);
        if (max === undefined) refuse("repetition without a maximum");
        if (min > max) refuse("invalid repetition range");
        quantifier = `{${min},${max}}`;
        upper = max;
      }
    } else {
      if (min === undefined) refuse("repetition without a count");
      quantifier = `{${min}}`;
      upper = min;
    }
    this.expect("}");
    this.skipSpace(flags);
    const lazy = this.eat("?");
    this.quantify(pieces, quantifier, lazy, flags, min, upper);
  }

  /** A decimal number, with the whitespace regex-syntax accepts around it; `undefined` when there are no digits. */
  private decimal(flags: Flags): number | undefined {
    while (!this.atEnd() && isWhitespace(this.char())) this.advance();
    let digits = "";
    while (!this.atEnd() && this.char() >= "0" && this.char() <= "9") {
      digits += this.char();
      this.advanceAndSkip(flags);
    }
    while (!this.atEnd() && isWhitespace(this.char())) this.advanceAndSkip(flags);
    if (digits.length === 0) return undefined;
    const value = Number(digits);
    if (value > 0xffffffff) refuse("repetition count too large");
    return value;
  }

  private primitive(flags: Flags): Piece {
    const char = this.char();
    if (char === "\\") return this.escapePiece(flags);
    this.advance();
    if (char === ".") {
      const text = this.dot(flags);
      return { kind: "atom", text, node: { kind: "char", set: { source: text, caseless: false } } };
    }
    if (char === "^") return { kind: "assertion", text: this.lineStart(flags), node: EMPTY };
    if (char === "$") return { kind: "assertion", text: this.lineEnd(flags), node: EMPTY };
    return this.literalAtom(char.codePointAt(0)!, flags);
  }

  private escapePiece(flags: Flags): Piece {
    const escaped = this.escape(flags);
    switch (escaped.kind) {
      case "literal":
        return this.literalAtom(escaped.code, flags);
      case "class": {
        const text = escaped.negated ? escaped.complement ?? `[^${escaped.set}]` : `[${escaped.set}]`;
        return this.classAtom(text, escaped.caseFolded, flags);
      }
      case "assertion":
        return { kind: "assertion", text: escaped.text, node: EMPTY };
    }
  }

  private dot(flags: Flags): string {
    if (!flags.unicode) refuse("(?-u). can match invalid UTF-8");
    if (flags.dotAll) return "\\p{Any}";
    return flags.crlf ? "[^\\n\\r]" : "[^\\n]";
  }

  private lineStart(flags: Flags): string {
    if (!flags.multiLine) return "^";
    this.usesLookaround = true;
    return flags.crlf ? "(?:^|(?<=\\n)|(?<=\\r)(?!\\n))" : "(?<![^\\n])";
  }

  private lineEnd(flags: Flags): string {
    if (!flags.multiLine) return "$";
    this.usesLookaround = true;
    return flags.crlf ? "(?:$|(?=\\r)|(?<!\\r)(?=\\n))" : "(?![^\\n])";
  }

  /** Rust's word boundaries, as look-arounds over its (Unicode or ASCII) word class. */
  private wordAssertion(kind: "boundary" | "not-boundary" | "start" | "end" | "start-half" | "end-half", flags: Flags): string {
    this.usesLookaround = true;
    const word = flags.unicode ? `[${WORD_SET}]` : `[${ASCII_WORD_SET}]`;
    switch (kind) {
      case "boundary":
        return `(?:(?<=${word})(?!${word})|(?<!${word})(?=${word}))`;
      case "not-boundary":
        return `(?:(?<=${word})(?=${word})|(?<!${word})(?!${word}))`;
      case "start":
        return `(?<!${word})(?=${word})`;
      case "end":
        return `(?<=${word})(?!${word})`;
      case "start-half":
        return `(?<!${word})`;
      case "end-half":
        return `(?!${word})`;
    }
  }

  /** An escape sequence, the cursor on its `\`. */
  private escape(flags: Flags): Escaped {
    this.advance();
    if (this.atEnd()) refuse("unfinished escape");
    const char = this.char();
    if (char >= "0" && char <= "9") refuse("backreferences and octal escapes are not supported");
    if (char === "x" || char === "u" || char === "U") return { kind: "literal", code: this.hexEscape(flags) };
    if (char === "p" || char === "P") return this.unicodeClass(flags);
    if ("dswDSW".includes(char)) {
      this.advance();
      return this.perlClass(char, flags);
    }
    this.advance();
    const code = char.codePointAt(0)!;
    if (META.includes(char)) return { kind: "literal", code };
    if (code < 0x80 && !/[0-9A-Za-z<>]/.test(char)) return { kind: "literal", code };
    const controls: Record<string, number> = { a: 0x07, f: 0x0c, t: 0x09, n: 0x0a, r: 0x0d, v: 0x0b };
    const control = controls[char];
    if (control !== undefined) return { kind: "literal", code: control };
    switch (char) {
      case "A":
        return { kind: "assertion", text: "^" };
      case "z":
        return { kind: "assertion", text: "$" };
      case "b":
        return { kind: "assertion", text: this.wordAssertion(this.specialWordBoundary(flags) ?? "boundary", flags) };
      case "B":
        return { kind: "assertion", text: this.wordAssertion("not-boundary", flags) };
      case "<":
        return { kind: "assertion", text: this.wordAssertion("start", flags) };
      case ">":
        return { kind: "assertion", text: this.wordAssertion("end", flags) };
      default:
        return refuse(`unrecognized escape \\${char}`);
    }
  }

  /** After `\b`: `{start}`, `{end}`, `{start-half}` or `{end-half}`; `undefined` (nothing read) for a repetition. */
  private specialWordBoundary(flags: Flags): "start" | "end" | "start-half" | "end-half" | undefined {
    if (this.atEnd() || this.char() !== "{") return undefined;
    const start = this.pos;
    if (!this.advanceAndSkip(flags)) refuse("unclosed special word boundary");
    if (!/^[A-Za-z-]$/.test(this.char())) {
      this.pos = start;
      return undefined;
    }
    let name = "";
    while (!this.atEnd() && /^[A-Za-z-]$/.test(this.char())) {
      name += this.char();
      this.advanceAndSkip(flags);
    }
    this.expect("}");
    if (name === "start" || name === "end" || name === "start-half" || name === "end-half") return name;
    return refuse(`unknown special word boundary ${name}`);
  }

  /** `\xHH`, `\uHHHH`, `\UHHHHHHHH` or any of them with `{…}`, the cursor on the letter. */
  private hexEscape(flags: Flags): number {
    const letter = this.char();
    if (!this.advanceAndSkip(flags)) refuse("unfinished hex escape");
    let digits = "";
    if (this.char() === "{") {
      while (this.advanceAndSkip(flags) && this.char() !== "}") {
        if (!isHexDigit(this.char())) refuse("invalid hex digit");
        digits += this.char();
      }
      if (this.atEnd()) refuse("unclosed hex escape");
      this.advanceAndSkip(flags);
      if (digits.length === 0) refuse("empty hex escape");
    } else {
      const count = letter === "x" ? 2 : letter === "u" ? 4 : 8;
      for (let index = 0; index < count; index++) {
        if (index > 0 && !this.advanceAndSkip(flags)) refuse("unfinished hex escape");
        if (!isHexDigit(this.char())) refuse("invalid hex digit");
        digits += this.char();
      }
      this.advanceAndSkip(flags);
    }
    const code = Number.parseInt(digits, 16);
    if (!(code <= 0x10ffff) || (code >= 0xd800 && code <= 0xdfff)) refuse("invalid code point");
    // Without Unicode, `\x80`–`\xFF` are bytes, which a pattern on text refuses.
    if (!flags.unicode && letter === "x" && code >= 0x80 && code <= 0xff) refuse("(?-u:\\xHH) can match invalid UTF-8");
    return code;
  }

  /** `\pL`, `\p{Greek}`, `\p{sc=Greek}`, `\P{…}`, the cursor on the `p`. */
  private unicodeClass(flags: Flags): Escaped {
    let negated = this.char() === "P";
    if (!this.advanceAndSkip(flags)) refuse("unfinished Unicode class");
    let body: string;
    if (this.char() === "{") {
      let name = "";
      while (this.advanceAndSkip(flags) && this.char() !== "}") name += this.char();
      if (this.atEnd()) refuse("unclosed Unicode class");
      this.advance();
      const notEqual = name.indexOf("!=");
      const colon = name.indexOf(":");
      const equal = name.indexOf("=");
      if (notEqual >= 0) {
        negated = !negated;
        body = jsPropertyValue(name.slice(0, notEqual), name.slice(notEqual + 2));
      } else if (colon >= 0) {
        body = jsPropertyValue(name.slice(0, colon), name.slice(colon + 1));
      } else if (equal >= 0) {
        body = jsPropertyValue(name.slice(0, equal), name.slice(equal + 1));
      } else {
        body = jsPropertyName(name);
      }
    } else {
      const letter = this.char();
      if (letter === "\\") refuse("invalid Unicode class");
      this.advanceAndSkip(flags);
      body = jsPropertyName(letter);
    }
    if (!flags.unicode) refuse("Unicode classes need Unicode mode");
    return { kind: "class", set: `\\p{${body}}`, negated, complement: `\\P{${body}}`, caseFolded: false };
  }

  /** `\d`, `\s`, `\w` and their complements: Unicode-aware unless `(?-u)`. */
  private perlClass(letter: string, flags: Flags): Escaped {
    const negated = letter === letter.toUpperCase();
    const lower = letter.toLowerCase();
    if (!flags.unicode) {
      if (negated) refuse("(?-u) negated classes can match invalid UTF-8");
      const set = lower === "d" ? "0-9" : lower === "s" ? ASCII_SPACE_SET : ASCII_WORD_SET;
      return { kind: "class", set, negated, complement: undefined, caseFolded: lower !== "w" || !flags.caseless };
    }
    if (lower === "d") return { kind: "class", set: "\\p{Nd}", negated, complement: "\\P{Nd}", caseFolded: true };
    if (lower === "s") return { kind: "class", set: "\\p{White_Space}", negated, complement: "\\P{White_Space}", caseFolded: true };
    return { kind: "class", set: WORD_SET, negated, complement: undefined, caseFolded: true };
  }

  /** A bracketed class, the cursor on its `[`: unions, ranges, nested classes and `&&`, `--`, `~~`. */
  private bracketClass(flags: Flags): string {
    if (!this.advanceAndSkip(flags)) refuse("unclosed class");
    let negated = false;
    if (this.char() === "^") {
      negated = true;
      if (!this.advanceAndSkip(flags)) refuse("unclosed class");
    }
    if (negated && !flags.unicode) refuse("(?-u) negated classes can match invalid UTF-8");
    const operands: string[][] = [];
    const operators: string[] = [];
    let union: string[] = [];
    while (this.char() === "-") {
      union.push("\\x2D");
      if (!this.advanceAndSkip(flags)) refuse("unclosed class");
    }
    if (union.length === 0 && this.char() === "]") {
      union.push("\\x5D");
      if (!this.advanceAndSkip(flags)) refuse("unclosed class");
    }
    for (;;) {
      this.skipSpace(flags);
      if (this.atEnd()) refuse("unclosed class");
      const char = this.char();
      if (char === "]") {
        this.advance();
        break;
      }
      if (char === "[") {
        union.push(this.asciiClass(flags) ?? this.nestedClass(flags));
        continue;
      }
      const operator = this.pattern.slice(this.pos, this.pos + 2);
      if (operator === "&&" || operator === "--" || operator === "~~") {
        this.pos += 2;
        operands.push(union);
        operators.push(operator);
        union = [];
        continue;
      }
      union.push(this.classRange(flags));
    }
    operands.push(union);
    return this.classText(negated, operands, operators);
  }

  private nestedClass(flags: Flags): string {
    this.usesSetNotation = true;
    return this.bracketClass(flags);
  }

  /** Writes a class from its operands, folding set operations left to right as Rust does. */
  private classText(negated: boolean, operands: string[][], operators: string[]): string {
    const [first, ...rest] = operands.map((items) => items.join(""));
    if (operators.length === 0) return `[${negated ? "^" : ""}${first}]`;
    this.usesSetNotation = true;
    let set = `[${first}]`;
    rest.forEach((items, index) => {
      const right = `[${items}]`;
      switch (operators[index]) {
        case "&&":
          set = `[${set}&&${right}]`;
          break;
        case "--":
          set = `[${set}--${right}]`;
          break;
        default:
          set = `[[${set}--${right}][${right}--${set}]]`;
      }
    });
    return negated ? `[^${set}]` : set;
  }

  /** `[:alpha:]` and the like, the cursor on the `[`; `undefined` (nothing read) when it is not one. */
  private asciiClass(flags: Flags): string | undefined {
    const match = /^\[:(\^?)([^:]*):\]/.exec(this.pattern.slice(this.pos));
    if (match === null) return undefined;
    const set = ASCII_CLASSES[match[2]!];
    if (set === undefined) return undefined;
    this.pos += match[0].length;
    if (match[1] !== "^") return set;
    if (!flags.unicode) refuse("(?-u) negated classes can match invalid UTF-8");
    this.usesSetNotation = true;
    return `[^${set}]`;
  }

  /** One class item: a literal, a range of literals, or a class escape. */
  private classRange(flags: Flags): string {
    const first = this.classPrimitive(flags);
    this.skipSpace(flags);
    if (this.atEnd()) refuse("unclosed class");
    const next = this.peekSpace(flags);
    if (this.char() !== "-" || next === "]" || next === "-") return this.classItem(first);
    if (!this.advanceAndSkip(flags)) refuse("unclosed class");
    const second = this.classPrimitive(flags);
    if (first.kind !== "literal" || second.kind !== "literal") refuse("invalid class range");
    if (first.code > second.code) refuse("invalid class range");
    return `${literalText(first.code)}-${literalText(second.code)}`;
  }

  private classPrimitive(flags: Flags): Escaped {
    if (this.char() === "\\") return this.escape(flags);
    const code = this.char().codePointAt(0)!;
    this.advance();
    return { kind: "literal", code };
  }

  private classItem(item: Escaped): string {
    switch (item.kind) {
      case "literal":
        return literalText(item.code);
      case "class":
        if (!item.negated) return item.set;
        if (item.complement !== undefined) return item.complement;
        this.usesSetNotation = true;
        return `[^${item.set}]`;
      case "assertion":
        return refuse("assertions are not allowed in classes");
    }
  }
}

/** The most ways a bounded repetition of a part that matches in more than one way may make (as vexil-core). */
const MAX_REPEATED_WAYS = 1000;

/** Code point ranges, ascending and disjoint: `[first, last]`. */
type Ranges = Array<[number, number]>;

/** Every code point of the Basic Multilingual Plane but the surrogates, in order: what classes are read on. */
let planeText: string | undefined;

function basicPlane(): string {
  if (planeText === undefined) {
    const chunks: string[] = [];
    for (let start = 0; start < 0x10000; start += 0x1000) {
      const codes: number[] = [];
      for (let code = start; code < start + 0x1000; code++) if (code < 0xd800 || code > 0xdfff) codes.push(code);
      chunks.push(String.fromCharCode(...codes));
    }
    planeText = chunks.join("");
  }
  return planeText;
}

/** A code unit's index in `basicPlane()` as the code point it is. */
function codeAt(index: number): number {
  return index < 0xd800 ? index : index + 0x800;
}

/** What reading classes needs: the classes read so far, and the characters beyond U+FFFF the pattern names. */
interface Reading {
  cache: Map<string, Ranges>;
  astral: number[];
}

/** The characters beyond U+FFFF that the atoms of `shape` name (`\u{1F600}`), with their other cases. */
function astralNamed(shape: Shape, into: Set<number>): Set<number> {
  switch (shape.kind) {
    case "char":
      for (const match of shape.set.source.matchAll(/\\u\{([0-9A-F]+)\}/g)) {
        const code = Number.parseInt(match[1]!, 16);
        const char = String.fromCodePoint(code);
        for (const other of [char, char.toLowerCase(), char.toUpperCase()]) {
          const point = other.codePointAt(0)!;
          if (point > 0xffff && other.length === 2) into.add(point);
        }
      }
      break;
    case "empty":
      break;
    case "concat":
      for (const item of shape.items) astralNamed(item, into);
      break;
    case "alternation":
      for (const branch of shape.branches) astralNamed(branch, into);
      break;
    case "repetition":
      astralNamed(shape.body, into);
  }
  return into;
}

/**
 * The characters an atom matches, read off the Basic Multilingual Plane and the characters beyond it that the
 * pattern names: no more than Rust's class, so this check never refuses what the server accepts; it can miss an
 * overlap beyond U+FFFF of two classes that name no character there (`\PL` and `\S`).
 */
function rangesOf(set: CharSet, reading: Reading): Ranges {
  if (set.code !== undefined && !set.caseless) return [[set.code, set.code]];
  const key = `${set.caseless ? "i" : "-"}${set.source}`;
  const known = reading.cache.get(key);
  if (known !== undefined) return known;
  let pattern: RegExp | undefined;
  for (const flag of ["v", "u"]) {
    try {
      pattern = new RegExp(`(?:${set.source})+`, `g${set.caseless ? "i" : ""}${flag}`);
      break;
    } catch {
      // The next flag, or no characters known.
    }
  }
  const ranges: Ranges = set.code === undefined ? [] : [[set.code, set.code]];
  if (pattern !== undefined) {
    for (const match of basicPlane().matchAll(pattern)) {
      const first = codeAt(match.index);
      const last = codeAt(match.index + match[0].length - 1);
      if (first < 0xd800 && last > 0xdfff) ranges.push([first, 0xd7ff], [0xe000, last]);
      else ranges.push([first, last]);
    }
    const one = new RegExp(`^(?:${pattern.source})$`, pattern.flags.replace("g", ""));
    for (const code of reading.astral) if (one.test(String.fromCodePoint(code))) ranges.push([code, code]);
  }
  const sorted = union(ranges, []);
  reading.cache.set(key, sorted);
  return sorted;
}

function union(left: Ranges, right: Ranges): Ranges {
  const all = [...left, ...right].sort((a, b) => a[0] - b[0]);
  const merged: Ranges = [];
  for (const [first, last] of all) {
    const previous = merged[merged.length - 1];
    if (previous !== undefined && first <= previous[1] + 1) previous[1] = Math.max(previous[1], last);
    else merged.push([first, last]);
  }
  return merged;
}

function intersects(left: Ranges, right: Ranges): boolean {
  let i = 0;
  let j = 0;
  while (i < left.length && j < right.length) {
    const [a, b] = [left[i]!, right[j]!];
    if (a[1] < b[0]) i++;
    else if (b[1] < a[0]) j++;
    else return true;
  }
  return false;
}

/** Whether any character of `left` is one of `right`. */
function overlaps(left: CharSet[], right: CharSet[], reading: Reading): boolean {
  if (left.length === 0 || right.length === 0) return false;
  const ranges = (sets: CharSet[]) => sets.reduce<Ranges>((all, set) => union(all, rangesOf(set, reading)), []);
  return intersects(ranges(left), ranges(right));
}

/**
 * What the check knows of a part, as vexil-core's `backtracking` does: the ways it can match, the atoms it can
 * start with, those with which a complete non-empty match can go on within it (`tail`), whether it can match
 * nothing or something, and whether it splits one way (`decided`; only worked out inside a repetition that
 * repeats, the only place it decides anything).
 */
interface Ways {
  ways: number;
  first: CharSet[];
  tail: CharSet[];
  nullable: boolean;
  consumes: boolean;
  decided: boolean;
}

const NOTHING: Ways = { ways: 1, first: [], tail: [], nullable: true, consumes: false, decided: true };

/** Thrown for a repetition of a part that can match in more than one way, beyond what is accepted. */
class Backtracks extends Error {}

/**
 * The ways `shape` can match, as vexil-core's `backtracking` counts them; throws `Backtracks` for a repetition that
 * can repeat more than once a part matching in more than one way, unbounded (`(a+)+`, `(a|ab)*`) or in more than
 * `MAX_REPEATED_WAYS` ways (`(a+){3}`), unless that part splits one way: it cannot match the empty text, its
 * alternatives start with different characters and none matches nothing, nothing in it can go on with a character
 * that what follows it can start with, and once matched it cannot go on with a character it starts with
 * (`(-[a-z]+)*`, `([a-z0-9-]+\.)+` are accepted). Alternatives count as their sum when they can start with the
 * same character (or one can match nothing), as the largest of theirs otherwise.
 */
function ways(shape: Shape, repeated: boolean, reading: Reading): Ways {
  switch (shape.kind) {
    case "char":
      return { ways: 1, first: [shape.set], tail: [], nullable: false, consumes: true, decided: true };
    case "empty":
      return NOTHING;
    case "concat": {
      const result: Ways = { ...NOTHING, first: [], tail: [] };
      const before: Ways[] = [];
      for (const item of shape.items) {
        const next = ways(item, repeated, reading);
        if (repeated && result.decided) {
          result.decided = next.decided;
          // The nearest earlier items, past those that can match nothing, must not go on (or, matching nothing,
          // start) with a character `next` can start with.
          for (let index = before.length - 1; result.decided && index >= 0; index--) {
            const earlier = before[index]!;
            const clash = overlaps(earlier.tail, next.first, reading) || (earlier.nullable && overlaps(earlier.first, next.first, reading));
            if (clash) result.decided = false;
            if (!earlier.nullable) break;
          }
        }
        result.ways *= next.ways;
        result.tail = next.nullable && result.consumes ? [...next.tail, ...result.tail, ...next.first] : next.tail;
        if (result.nullable) result.first = [...result.first, ...next.first];
        result.nullable &&= next.nullable;
        result.consumes ||= next.consumes;
        before.push(next);
      }
      return result;
    }
    case "alternation": {
      const branches = shape.branches.map((branch) => ways(branch, repeated, reading));
      const first = branches.flatMap((branch) => branch.first);
      const tail = branches.flatMap((branch) => branch.tail);
      const nullable = branches.some((branch) => branch.nullable);
      const consumes = branches.some((branch) => branch.consumes);
      const largest = Math.max(...branches.map((branch) => branch.ways));
      if (!repeated) return { ways: largest, first, tail, nullable, consumes, decided: true };
      let seen: CharSet[] = [];
      let overlap = nullable;
      for (const branch of branches) {
        if (overlap) break;
        overlap = overlaps(seen, branch.first, reading);
        seen = [...seen, ...branch.first];
      }
      const sum = branches.reduce((total, branch) => total + branch.ways, 0);
      const decided = !overlap && branches.every((branch) => branch.decided);
      return { ways: overlap ? sum : largest, first, tail, nullable, consumes, decided };
    }
    case "repetition": {
      const { min, max } = shape;
      const repeats = max >= 2;
      const part = ways(shape.body, repeated || repeats, reading);
      if (max === 0) return NOTHING;
      const total = max === Infinity ? Infinity : (max - Math.min(min, max) + 1) * part.ways ** max;
      let decided = part.decided;
      if (repeated || repeats) {
        // Where one repetition ends and the next begins must be fixed; `(a?)?` matches the empty text two ways.
        if (repeats) decided &&= !(part.nullable && part.consumes) && !overlaps(part.tail, part.first, reading);
        else if (min === 0 && part.nullable) decided = false;
      }
      if (repeats && part.ways > 1 && (max === Infinity || total > MAX_REPEATED_WAYS) && !decided) throw new Backtracks();
      // After a non-empty match another repetition can start when the count can still grow.
      const tail = max > Math.max(min, 1) ? [...part.tail, ...part.first] : part.tail;
      return { ways: total, first: part.first, tail, nullable: min === 0 || part.nullable, consumes: part.consumes, decided };
    }
  }
}

/** Whether a backtracking engine could take seconds on the pattern: the shapes the server refuses. */
function backtracksCatastrophically(shape: Shape): boolean {
  try {
    ways(shape, false, { cache: new Map(), astral: [...astralNamed(shape, new Set())] });
    return false;
  } catch (error) {
    return error instanceof Backtracks;
  }
}

/**
 * Compiles a pattern written for Rust's `regex` crate into a JS RegExp that matches the same texts (an
 * unanchored search, as Rust's `is_match`), or `undefined` when Rust would refuse it, it cannot be
 * expressed in JS, or a backtracking engine could take seconds on it. Never throws.
 */
export function compileRustRegex(pattern: string): RegExp | undefined {
  let translation: Translation;
  try {
    translation = new Translator(pattern).translate();
  } catch {
    return undefined;
  }
  if (backtracksCatastrophically(translation.shape)) return undefined;
  const caseless = translation.caseless ? "i" : "";
  // V8 tries a zero-width match that starts with a look-around between the halves of a surrogate pair (where
  // `\B` holds inside "😀"); scanning from an anchored start steps by whole characters, as Rust does.
  const source = translation.usesLookaround ? `^\\p{Any}*?(?:${translation.source})` : translation.source;
  try {
    return new RegExp(source, `${caseless}v`);
  } catch {
    // Runtimes without the `v` flag read the same output with `u`, unless it nests classes.
  }
  if (translation.usesSetNotation) return undefined;
  try {
    return new RegExp(source, `${caseless}u`);
  } catch {
    return undefined;
  }
}
