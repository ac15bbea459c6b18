//! The brace-block syntax keepalived.conf and wackamole.conf share: statements are the
//! words of one line, and a statement may own a `{ ... }` block (opened on its own line
//! or the next). `#` (and for keepalived `!`) start comments; `"..."` groups words.

/// Why a file's block structure is broken (reported as a note; parsing goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// A `}` with no open block.
    #[error("`}}` without a matching `{{`")]
    UnexpectedClose,
    /// The file ended inside a block.
    #[error("block opened here is never closed")]
    Unclosed,
    /// A `"` with no closing quote on the line.
    #[error("unterminated quote")]
    UnterminatedQuote,
}

/// One statement: its words, where it is, and its block if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stmt {
    /// 1-based line of the first word.
    pub line: usize,
    /// The words (quotes removed).
    pub words: Vec<String>,
    /// The `{ ... }` block, if any.
    pub block: Option<Vec<Stmt>>,
    /// Line of the closing `}` (equals `line` without a block).
    pub end_line: usize,
}

/// Problems found, each with its 1-based line.
pub type Errors = Vec<(usize, BlockError)>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

fn tokenize(text: &str, comments: &[char]) -> (Vec<(usize, Tok)>, Errors) {
    let mut toks = Vec::new();
    let mut errs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut chars = raw.chars().peekable();
        let mut word = String::new();
        let mut in_word = false;
        let flush = |word: &mut String, in_word: &mut bool, toks: &mut Vec<(usize, Tok)>| {
            if *in_word {
                toks.push((line, Tok::Word(std::mem::take(word))));
                *in_word = false;
            }
        };
        while let Some(c) = chars.next() {
            match c {
                c if comments.contains(&c) && !in_word => break,
                c if c.is_whitespace() => flush(&mut word, &mut in_word, &mut toks),
                '{' => {
                    flush(&mut word, &mut in_word, &mut toks);
                    toks.push((line, Tok::Open));
                }
                '}' => {
                    flush(&mut word, &mut in_word, &mut toks);
                    toks.push((line, Tok::Close));
                }
                '"' => {
                    in_word = true;
                    let mut closed = false;
                    for q in chars.by_ref() {
                        if q == '"' {
                            closed = true;
                            break;
                        }
                        word.push(q);
                    }
                    if !closed {
                        errs.push((line, BlockError::UnterminatedQuote));
                    }
                }
                c => {
                    in_word = true;
                    word.push(c);
                }
            }
        }
        flush(&mut word, &mut in_word, &mut toks);
    }
    (toks, errs)
}

/// Parses `text` into statements; structural errors come back with their lines.
pub fn parse(text: &str, comments: &[char]) -> (Vec<Stmt>, Errors) {
    let (toks, mut errs) = tokenize(text, comments);
    let mut pos = 0;
    let mut top = Vec::new();
    loop {
        let end = block(&toks, &mut pos, &mut top, &mut errs);
        match end {
            None => break,
            Some(line) => {
                errs.push((line, BlockError::UnexpectedClose));
            }
        }
    }
    (top, errs)
}

/// Reads statements into `out` until a `}` (returns its line) or the end (`None`).
fn block(
    toks: &[(usize, Tok)],
    pos: &mut usize,
    out: &mut Vec<Stmt>,
    errs: &mut Errors,
) -> Option<usize> {
    let mut cur: Option<Stmt> = None;
    while let Some((line, tok)) = toks.get(*pos) {
        *pos += 1;
        match tok {
            Tok::Word(w) => match &mut cur {
                Some(s) if s.line == *line => s.words.push(w.clone()),
                _ => {
                    out.extend(cur.take());
                    cur = Some(Stmt {
                        line: *line,
                        words: vec![w.clone()],
                        block: None,
                        end_line: *line,
                    });
                }
            },
            Tok::Open => {
                // A `{` ending its own line opens the block of the statement before it
                // (`vrrp_instance x` then `{`); `{ a b }` on one line is an anonymous group.
                let ends_line = toks.get(*pos).is_none_or(|(l, _)| l != line);
                let anonymous = Stmt {
                    line: *line,
                    ..Stmt::default()
                };
                let mut owner = match cur.take() {
                    Some(s) if s.line == *line => s,
                    earlier => {
                        out.extend(earlier);
                        match out.pop() {
                            Some(prev) if ends_line && prev.block.is_none() => prev,
                            prev => {
                                out.extend(prev);
                                anonymous
                            }
                        }
                    }
                };
                let mut inner = Vec::new();
                match block(toks, pos, &mut inner, errs) {
                    Some(close) => owner.end_line = close,
                    None => {
                        errs.push((owner.line, BlockError::Unclosed));
                        owner.end_line = toks.last().map_or(owner.line, |t| t.0);
                    }
                }
                owner.block = Some(inner);
                out.push(owner);
            }
            Tok::Close => {
                out.extend(cur.take());
                return Some(*line);
            }
        }
    }
    out.extend(cur.take());
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_and_blocks() {
        let text = "a = 1 # c\nvi {\n  eth0:1.2.3.4/24\n  { x y }\n}\nb\n{\n c\n}\n\"q w\" z\n";
        let (s, e) = parse(text, &['#']);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].words, ["a", "=", "1"]);
        let vi = s[1].block.as_ref().expect("block");
        assert_eq!((s[1].line, s[1].end_line), (2, 5));
        assert_eq!(vi[0].words, ["eth0:1.2.3.4/24"]);
        assert!(vi[1].words.is_empty());
        assert_eq!(vi[1].block.as_ref().expect("inner")[0].words, ["x", "y"]);
        assert_eq!(s[2].words, ["b"]);
        assert_eq!(
            s[2].block.as_ref().expect("next-line brace")[0].words,
            ["c"]
        );
        assert_eq!(s[3].words, ["q w", "z"]);
    }

    #[test]
    fn broken_structure_is_reported() {
        let (_, e) = parse("a {\n b\n", &['#']);
        assert_eq!(e, [(1, BlockError::Unclosed)]);
        let (s, e) = parse("}\na\n\"x\n", &['#', '!']);
        assert_eq!(s.len(), 2);
        assert!(e.contains(&(1, BlockError::UnexpectedClose)));
        assert!(e.contains(&(3, BlockError::UnterminatedQuote)));
    }
}
