/**
 * A reader that follows systemd's EnvironmentFile= parser (parse_env_file_internal in
 * src/basic/env-file.c) state for state, so tests can prove that what we write means the same
 * to systemd as to dotenv without needing a running systemd.
 */
type State =
  | 'PRE_KEY'
  | 'KEY'
  | 'PRE_VALUE'
  | 'VALUE'
  | 'VALUE_ESCAPE'
  | 'SINGLE_QUOTE_VALUE'
  | 'DOUBLE_QUOTE_VALUE'
  | 'DOUBLE_QUOTE_VALUE_ESCAPE'
  | 'COMMENT'
  | 'COMMENT_ESCAPE';

const NEWLINE = '\n\r';
const WHITESPACE = ' \t\n\r';
const COMMENTS = '#;';
const SHELL_NEED_ESCAPE = '"\\`$';

const validName = (name: string): boolean => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);

export function parseSystemdEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let state: State = 'PRE_KEY';
  let key = '';
  let value = '';
  let lastKeyWhitespace = -1;
  let lastValueWhitespace = -1;

  const push = (): void => {
    const name = lastKeyWhitespace >= 0 ? key.slice(0, lastKeyWhitespace) : key;
    if (validName(name) && !value.includes('\0')) out[name] = value;
    key = '';
    value = '';
    lastKeyWhitespace = -1;
    lastValueWhitespace = -1;
  };

  for (const c of text) {
    switch (state) {
      case 'PRE_KEY':
        if (COMMENTS.includes(c)) state = 'COMMENT';
        else if (!WHITESPACE.includes(c)) {
          state = 'KEY';
          key = c;
          lastKeyWhitespace = -1;
        }
        break;
      case 'KEY':
        if (NEWLINE.includes(c)) {
          state = 'PRE_KEY';
          key = '';
        } else if (c === '=') {
          state = 'PRE_VALUE';
          lastValueWhitespace = -1;
        } else {
          if (!WHITESPACE.includes(c)) lastKeyWhitespace = -1;
          else if (lastKeyWhitespace < 0) lastKeyWhitespace = key.length;
          key += c;
        }
        break;
      case 'PRE_VALUE':
        if (NEWLINE.includes(c)) {
          state = 'PRE_KEY';
          push();
        } else if (c === "'") state = 'SINGLE_QUOTE_VALUE';
        else if (c === '"') state = 'DOUBLE_QUOTE_VALUE';
        else if (c === '\\') state = 'VALUE_ESCAPE';
        else if (!WHITESPACE.includes(c)) {
          state = 'VALUE';
          value += c;
        }
        break;
      case 'VALUE':
        if (NEWLINE.includes(c)) {
          state = 'PRE_KEY';
          if (lastValueWhitespace >= 0) value = value.slice(0, lastValueWhitespace);
          push();
        } else if (c === '\\') {
          state = 'VALUE_ESCAPE';
          lastValueWhitespace = -1;
        } else {
          if (!WHITESPACE.includes(c)) lastValueWhitespace = -1;
          else if (lastValueWhitespace < 0) lastValueWhitespace = value.length;
          value += c;
        }
        break;
      case 'VALUE_ESCAPE':
        state = 'VALUE';
        if (!NEWLINE.includes(c)) value += c;
        break;
      case 'SINGLE_QUOTE_VALUE':
        if (c === "'") state = 'PRE_VALUE';
        else value += c;
        break;
      case 'DOUBLE_QUOTE_VALUE':
        if (c === '"') state = 'PRE_VALUE';
        else if (c === '\\') state = 'DOUBLE_QUOTE_VALUE_ESCAPE';
        else value += c;
        break;
      case 'DOUBLE_QUOTE_VALUE_ESCAPE':
        state = 'DOUBLE_QUOTE_VALUE';
        if (SHELL_NEED_ESCAPE.includes(c)) value += c;
        else if (c !== '\n') value += `\\${c}`;
        break;
      case 'COMMENT':
        if (c === '\\') state = 'COMMENT_ESCAPE';
        else if (NEWLINE.includes(c)) state = 'PRE_KEY';
        break;
      case 'COMMENT_ESCAPE':
        state = 'COMMENT';
        break;
    }
  }
  if (state === 'PRE_VALUE' || state === 'VALUE' || state === 'VALUE_ESCAPE' || state === 'SINGLE_QUOTE_VALUE' || state === 'DOUBLE_QUOTE_VALUE' || state === 'DOUBLE_QUOTE_VALUE_ESCAPE') {
    if (state === 'VALUE' && lastValueWhitespace >= 0) value = value.slice(0, lastValueWhitespace);
    if (state === 'VALUE_ESCAPE') value += '\\';
    push();
  }
  return out;
}
