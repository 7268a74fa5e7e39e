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
 * One difference remains: Rust's engine runs in linear time, JS's backtracks, so a pattern such as `^(a+)+$`
 * that Rust answers in microseconds can take seconds in JS on a hostile attribute value.
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
}

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
    const source = this.alternation({ ...INITIAL_FLAGS }, true);
    return {
      source,
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
  private literalAtom(code: number, flags: Flags): string {
    const char = String.fromCodePoint(code);
    const text = literalText(code);
    if (!CASED.test(char)) return text;
    // ASCII-only case-insensitivity: JS would also let `k` match U+212A KELVIN SIGN, `s` U+017F LONG S, `é` `É`.
    if (!flags.unicode && flags.caseless) {
      const exact = { ...flags, caseless: false };
      if (/^[ksKS]$/.test(char)) return this.caseAware(`[${char.toLowerCase()}${char.toUpperCase()}]`, exact);
      if (code >= 0x80) return this.caseAware(text, exact);
    }
    return this.caseAware(text, flags);
  }

  /** A class, under the case-sensitivity in force unless case cannot change what it matches. */
  private classAtom(text: string, caseFolded: boolean, flags: Flags): string {
    if (caseFolded) return text;
    // JS folds non-ASCII letters into ASCII classes (U+212A into `[a-z]`), which Rust's ASCII-only folding does not.
    if (!flags.unicode && flags.caseless) refuse("ASCII-only case-insensitive classes");
    return this.caseAware(text, flags);
  }

  /** A group's content up to its `)` (not consumed), or the whole pattern at the top level. */
  private alternation(flags: Flags, top: boolean): string {
    const branches: string[] = [];
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
          pieces = [];
          break;
        case "[":
          pieces.push({ kind: "atom", text: this.classAtom(this.bracketClass(flags), false, flags) });
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
    return branches.join("|");
  }

  /** After `(`: a group, a scoped flag group, or flags for the rest of the enclosing group. */
  private group(flags: Flags, pieces: Piece[]): void {
    this.skipSpace(flags);
    if (this.eat("?=") || this.eat("?!") || this.eat("?<=") || this.eat("?<!")) refuse("look-around is not supported");
    if (this.eat("?P<") || this.eat("?<")) {
      this.captureName();
      pieces.push({ kind: "atom", text: `(${this.groupBody({ ...flags })})` });
      return;
    }
    if (this.eat("?")) {
      if (this.atEnd()) refuse("unclosed group");
      const { settings, scoped } = this.flagSettings();
      if (scoped) {
        const inner = { ...flags };
        this.applyFlags(inner, settings);
        pieces.push({ kind: "atom", text: `(?:${this.groupBody(inner)})` });
      } else {
        if (settings.length === 0) refuse("empty flags");
        this.applyFlags(flags, settings);
        pieces.push({ kind: "flags", text: "" });
      }
      return;
    }
    pieces.push({ kind: "atom", text: `(${this.groupBody({ ...flags })})` });
  }

  private groupBody(flags: Flags): string {
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

  /** Applies a quantifier to the last piece. */
  private quantify(pieces: Piece[], quantifier: string, lazy: boolean, flags: Flags): void {
    const last = pieces[pieces.length - 1];
    if (last === undefined || last.kind === "flags") refuse("repetition of nothing");
    const greedy = flags.swapGreed ? lazy : !lazy;
    const operand = last.kind === "atom" ? last.text : `(?:${last.text})`;
    pieces[pieces.length - 1] = { kind: "repetition", text: `${operand}${quantifier}${greedy ? "" : "?"}` };
  }

  private uncountedRepetition(pieces: Piece[], flags: Flags): void {
    const quantifier = this.char();
    this.advance();
    const lazy = this.eat("?");
    this.quantify(pieces, quantifier, lazy, flags);
  }

  /** `{n}`, `{n,}` or `{n,m}`, spaces allowed around the numbers. */
  private countedRepetition(pieces: Piece[], flags: Flags): void {
    if (!this.advanceAndSkip(flags)) refuse("unclosed repetition");
    const min = this.decimal(flags);
    if (this.atEnd()) refuse("unclosed repetition");
    let quantifier: string;
    if (this.char() === ",") {
      if (!this.advanceAndSkip(flags)) refuse("unclosed repetition");
      if (min === undefined) refuse("repetition without a minimum");
      if (this.char() === "}") {
        quantifier = `{${min},}`;
      } else {
        const max = this.decimal(flags);
        if (max === undefined) refuse("repetition without a maximum");
        if (min > max) refuse("invalid repetition range");
        quantifier = `{${min},${max}}`;
      }
    } else {
      if (min === undefined) refuse("repetition without a count");
      quantifier = `{${min}}`;
    }
    this.expect("}");
    this.skipSpace(flags);
    const lazy = this.eat("?");
    this.quantify(pieces, quantifier, lazy, flags);
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
    if (char === ".") return { kind: "atom", text: this.dot(flags) };
    if (char === "^") return { kind: "assertion", text: this.lineStart(flags) };
    if (char === "$") return { kind: "assertion", text: this.lineEnd(flags) };
    return { kind: "atom", text: this.literalAtom(char.codePointAt(0)!, flags) };
  }

  private escapePiece(flags: Flags): Piece {
    const escaped = this.escape(flags);
    switch (escaped.kind) {
      case "literal":
        return { kind: "atom", text: this.literalAtom(escaped.code, flags) };
      case "class": {
        const text = escaped.negated ? escaped.complement ?? `[^${escaped.set}]` : `[${escaped.set}]`;
        return { kind: "atom", text: this.classAtom(text, escaped.caseFolded, flags) };
      }
      case "assertion":
        return { kind: "assertion", text: escaped.text };
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

/**
 * Compiles a pattern written for Rust's `regex` crate into a JS RegExp that matches the same texts (an
 * unanchored search, as Rust's `is_match`), or `undefined` when Rust would refuse it or it cannot be
 * expressed in JS. Never throws.
 */
export function compileRustRegex(pattern: string): RegExp | undefined {
  let translation: Translation;
  try {
    translation = new Translator(pattern).translate();
  } catch {
    return undefined;
  }
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
