//! Locating values in a document and splicing new ones into its original bytes.

use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::encoding::{Encoding, decode};
use crate::error::{Error, Result};
use crate::escape::{escape_attribute, escape_text, unescape};
use crate::target::{Predicate, Target, path_matches};

/// The positions of the set bits of a target set.
fn bits(mut set: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (set != 0).then(|| {
            let t = set.trailing_zeros() as usize;
            set &= set - 1;
            t
        })
    })
}

/// A config file: its decoded text and its encoding, from which its bytes come back
/// exactly (decoding is lossless for every encoding we accept).
#[derive(Debug, Clone)]
pub struct Document {
    encoding: Encoding,
    text: String,
}

/// One place a target matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The current value, entities resolved (surrounding white space of element text
    /// excluded).
    pub value: String,
    /// One-based line of the value.
    pub line: usize,
    /// One-based column of the value, in characters.
    pub column: usize,
    /// The value's range in the decoded text.
    span: Range<usize>,
    slot: Slot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// Element text between the start and end tags.
    Text,
    /// An attribute value between quotes.
    Attribute { quote: char },
    /// An empty element `<name/>`: the span is its `/>`.
    Empty { name: String },
}

/// How many matches an edit requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// All matches, at least one.
    All,
    /// Exactly this many.
    Exactly(usize),
}

/// How current values compare with the old and the new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Byte for byte.
    Exact,
    /// ASCII letters in either case (host names).
    IgnoreAsciiCase,
}

/// The rules of an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOptions {
    /// How many matches there must be.
    pub expect: Expect,
    /// Compare-and-swap: change a match only when its value is this one. A match that already
    /// holds the new value is left as it is; any other value refuses the whole edit.
    pub from: Option<String>,
    /// How values compare.
    pub compare: Compare,
}

impl Default for EditOptions {
    fn default() -> Self {
        Self {
            expect: Expect::All,
            from: None,
            compare: Compare::Exact,
        }
    }
}

/// What an edit found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Every match, in document order.
    pub matches: Vec<MatchOutcome>,
    /// The new file, when anything changed.
    pub output: Option<Vec<u8>>,
    /// The byte ranges of the changed values in the original file, in order.
    pub spans: Vec<Range<usize>>,
    /// The byte ranges of the new values in the new file, one for each of `spans`: every
    /// byte outside `spans` in the original is the same as outside these in the new file.
    pub new_spans: Vec<Range<usize>>,
}

/// One match of an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchOutcome {
    /// One-based line.
    pub line: usize,
    /// One-based column.
    pub column: usize,
    /// The value before.
    pub old: String,
    /// Whether this edit changes it (false: it already held the new value).
    pub changed: bool,
}

impl Edit {
    /// How many values change.
    pub fn changed(&self) -> usize {
        self.matches.iter().filter(|m| m.changed).count()
    }
}

impl Document {
    /// Decodes a file (UTF-8 with or without BOM, UTF-16 LE or BE with BOM).
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        let (encoding, text) = decode(bytes)?;
        Ok(Self { encoding, text })
    }

    /// The file's encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The decoded text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The original bytes.
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match self.encoding {
            Encoding::Utf8 => Cow::Borrowed(self.text.as_bytes()),
            _ => Cow::Owned(self.encoding.encode(&self.text)),
        }
    }

    /// Every place `target` matches, in document order. The whole document is checked to be
    /// well-formed; a malformed one is refused with the line and column.
    pub fn find(&self, target: &Target) -> Result<Vec<Found>> {
        Ok(self.find_all(std::slice::from_ref(target))?.remove(0))
    }

    /// The matches of each target, in one pass over the document.
    pub fn find_all(&self, targets: &[Target]) -> Result<Vec<Vec<Found>>> {
        if targets.is_empty() || targets.len() > 64 {
            return Err(Error::Target {
                target: format!("{} targets", targets.len()),
                reason: "give 1 to 64 targets".into(),
            });
        }
        Scanner::new(&self.text, targets).run()
    }

    /// Sets every match of `targets` to `value` under `options`. Nothing is written here:
    /// [`Edit::output`] holds the new file when anything changes.
    pub fn edit(&self, targets: &[Target], value: &str, options: &EditOptions) -> Result<Edit> {
        check_xml_chars(value)?;
        let mut found: Vec<Found> = self.find_all(targets)?.into_iter().flatten().collect();
        found.sort_by_key(|f| f.span.start);
        let names = || {
            targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" + ")
        };
        match options.expect {
            Expect::All if found.is_empty() => {
                return Err(Error::Count {
                    target: names(),
                    expected: "at least 1".into(),
                    found: 0,
                });
            }
            Expect::Exactly(n) if found.len() != n => {
                return Err(Error::Count {
                    target: names(),
                    expected: n.to_string(),
                    found: found.len(),
                });
            }
            _ => {}
        }
        let same = |a: &str, b: &str| match options.compare {
            Compare::Exact => a == b,
            Compare::IgnoreAsciiCase => a.eq_ignore_ascii_case(b),
        };
        let mut matches = Vec::with_capacity(found.len());
        for f in &found {
            let changed = !same(&f.value, value);
            if let Some(from) = &options.from
                && changed
                && !same(&f.value, from)
            {
                return Err(Error::Mismatch {
                    line: f.line,
                    column: f.column,
                    found: f.value.clone(),
                    expected: from.clone(),
                });
            }
            matches.push(MatchOutcome {
                line: f.line,
                column: f.column,
                old: f.value.clone(),
                changed,
            });
        }
        let changes: Vec<&Found> = found
            .iter()
            .zip(&matches)
            .filter(|(_, m)| m.changed)
            .map(|(f, _)| f)
            .collect();
        if changes.is_empty() {
            return Ok(Edit {
                matches,
                output: None,
                spans: Vec::new(),
                new_spans: Vec::new(),
            });
        }
        let spans = changes
            .iter()
            .map(|f| {
                self.encoding.file_offset(&self.text, f.span.start)
                    ..self.encoding.file_offset(&self.text, f.span.end)
            })
            .collect();
        let mut text = String::with_capacity(self.text.len() + value.len() * changes.len());
        let mut new_text_spans = Vec::with_capacity(changes.len());
        let mut at = 0;
        for f in changes {
            text.push_str(&self.text[at..f.span.start]);
            let begin = text.len();
            match &f.slot {
                Slot::Text => text.push_str(&escape_text(value)),
                Slot::Attribute { quote } => text.push_str(&escape_attribute(value, *quote)),
                Slot::Empty { name } => {
                    text.push('>');
                    text.push_str(&escape_text(value));
                    text.push_str("</");
                    text.push_str(name);
                    text.push('>');
                }
            }
            new_text_spans.push(begin..text.len());
            at = f.span.end;
        }
        text.push_str(&self.text[at..]);
        let new_spans = new_text_spans
            .into_iter()
            .map(|r| {
                self.encoding.file_offset(&text, r.start)..self.encoding.file_offset(&text, r.end)
            })
            .collect();
        let output = match self.encoding {
            Encoding::Utf8 => text.into_bytes(),
            _ => self.encoding.encode(&text),
        };
        Ok(Edit {
            matches,
            output: Some(output),
            spans,
            new_spans,
        })
    }
}

/// Refuses characters XML 1.0 cannot hold at all, even as references.
fn check_xml_chars(value: &str) -> Result<()> {
    match value.chars().find(|&c| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    }) {
        Some(c) => Err(Error::InvalidValue {
            value: value.escape_debug().to_string(),
            reason: format!("character {c:?} cannot appear in XML"),
        }),
        None => Ok(()),
    }
}

/// One pass over the document, collecting the matches of several targets.
struct Scanner<'t> {
    text: &'t str,
    targets: &'t [Target],
    /// Per open element, per target (`targets.len()` entries an element): which steps it
    /// satisfies on its own.
    masks: Vec<u64>,
    /// Whether any step has a predicate, so that attributes must be looked at.
    predicates: bool,
    /// The attributes of the element being entered, as ranges of the text (reused).
    attrs: Vec<(Range<usize>, Range<usize>)>,
    /// The last position computed (offset, line, offset of the line's start): positions are
    /// asked for in document order, so counting lines goes on from there.
    last_position: Cell<(usize, usize, usize)>,
}

/// An element whose text is a target's value, waiting for its end tag.
struct OpenText {
    target: usize,
    depth: usize,
    content_start: usize,
    name: String,
    start_tag: usize,
    only_text: bool,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str, targets: &'t [Target]) -> Self {
        Self {
            text,
            targets,
            masks: Vec::new(),
            predicates: targets
                .iter()
                .any(|t| t.steps.iter().any(|s| !s.predicates.is_empty())),
            attrs: Vec::new(),
            last_position: Cell::new((0, 1, 0)),
        }
    }

    /// One-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        // The parser's error offsets may fall inside a character: count from its start.
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (mut from, mut line, mut start) = self.last_position.get();
        if offset < from {
            (from, line, start) = (0, 1, 0);
        }
        let skipped = &self.text.as_bytes()[from..offset];
        line += skipped.iter().filter(|&&b| b == b'\n').count();
        if let Some(last) = skipped.iter().rposition(|&b| b == b'\n') {
            start = from + last + 1;
        }
        self.last_position.set((offset, line, start));
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }

    fn malformed(&self, offset: usize, message: impl Into<String>) -> Error {
        let (line, column) = self.position(offset);
        Error::Malformed {
            line,
            column,
            message: message.into(),
        }
    }

    fn range_of(&self, slice: &str) -> Range<usize> {
        let at = self.offset_of(slice);
        at..at + slice.len()
    }

    fn offset_of(&self, slice: &str) -> usize {
        slice.as_ptr() as usize - self.text.as_ptr() as usize
    }

    fn run(mut self) -> Result<Vec<Vec<Found>>> {
        let mut found = vec![Vec::new(); self.targets.len()];
        // The byte-order mark was taken off when decoding; quick-xml would skip another one
        // silently and count its positions from after it.
        if self.text.starts_with('\u{feff}') {
            return Err(self.malformed(0, "a second byte-order mark"));
        }
        let mut reader = Reader::from_str(self.text);
        reader.config_mut().trim_text(false);
        let mut open: Vec<OpenText> = Vec::new();
        let mut roots = 0;
        let mut names: Vec<&'t str> = Vec::new();
        loop {
            let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let event = match reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let at = usize::try_from(reader.error_position()).unwrap_or(before);
                    return Err(self.malformed(at, e.to_string()));
                }
            };
            let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
            let empty = matches!(event, Event::Empty(_));
            match event {
                Event::Start(_) | Event::Empty(_) if names.is_empty() && roots > 0 => {
                    return Err(self.malformed(before, "a second root element"));
                }
                Event::Start(start) | Event::Empty(start) => {
                    // Markup inside an element whose text is a value: refused at its end.
                    for o in &mut open {
                        o.only_text = false;
                    }
                    if names.is_empty() {
                        roots += 1;
                    }
                    let matched = self.enter(&start, before)?;
                    if empty {
                        self.leave();
                    } else {
                        names.push(self.name_of(&start));
                    }
                    for t in bits(matched) {
                        match &self.targets[t].attribute {
                            Some(attr) => found[t].push(self.attribute(&start, attr, before)?),
                            None if empty => {
                                let (line, column) = self.position(after - 2);
                                found[t].push(Found {
                                    value: String::new(),
                                    line,
                                    column,
                                    span: after - 2..after,
                                    slot: Slot::Empty {
                                        name: self.name_of(&start).to_owned(),
                                    },
                                });
                            }
                            None => open.push(OpenText {
                                target: t,
                                depth: names.len(),
                                content_start: after,
                                name: self.name_of(&start).to_owned(),
                                start_tag: before,
                                only_text: true,
                            }),
                        }
                    }
                }
                Event::End(_) => {
                    let depth = names.len();
                    while let Some(o) = open.last().filter(|o| o.depth == depth) {
                        let o_target = o.target;
                        let text = self.element_text(o, before)?;
                        found[o_target].push(text);
                        open.pop();
                    }
                    names.pop();
                    self.leave();
                }
                Event::Text(t) => {
                    if names.is_empty() && !t.bytes().all(|b| b.is_ascii_whitespace()) {
                        return Err(self.malformed(before, "text outside the root element"));
                    }
                }
                Event::GeneralRef(_) => {
                    if names.is_empty() {
                        return Err(self.malformed(before, "text outside the root element"));
                    }
                }
                Event::CData(_) | Event::Comment(_) | Event::PI(_) => {
                    for o in &mut open {
                        o.only_text = false;
                    }
                }
                Event::Decl(_) | Event::DocType(_) => {}
                Event::Eof => {
                    if let Some(name) = names.last() {
                        return Err(self.malformed(before, format!("<{name}> is not closed")));
                    }
                    if roots == 0 {
                        return Err(self.malformed(before, "no root element"));
                    }
                    break;
                }
            }
        }
        Ok(found)
    }

    fn name_of(&self, start: &BytesStart<'t>) -> &'t str {
        let raw: &str = start.name().into_inner();
        let at = self.offset_of(raw);
        &self.text[at..at + raw.len()]
    }

    /// Pushes the element's step masks; returns the set of targets that match at it (bit
    /// per target). Every attribute is checked for well-formedness.
    fn enter(&mut self, start: &BytesStart<'t>, at: usize) -> Result<u64> {
        self.attrs.clear();
        for attr in start.attributes() {
            let attr = attr.map_err(|e| self.malformed(at, e.to_string()))?;
            if self.predicates {
                let Cow::Borrowed(value) = attr.value else {
                    return Err(self.malformed(at, "attribute value is not in the input"));
                };
                let key = self.range_of(attr.key.into_inner());
                let value = self.range_of(value);
                self.attrs.push((key, value));
            }
        }
        let name = start.name().into_inner();
        let depth = self.masks.len() / self.targets.len().max(1);
        let mut matched = 0u64;
        for (t, target) in self.targets.iter().enumerate() {
            let mut mask = 0u64;
            for (i, step) in target.steps.iter().enumerate() {
                if step.name.as_ref().is_none_or(|n| n == name)
                    && step.predicates.iter().all(|p| self.predicate(p))
                {
                    mask |= 1 << i;
                }
            }
            self.masks.push(mask);
            let stride = self.targets.len();
            let column = |d: usize| self.masks[d * stride + t];
            if path_matches(&target.steps, depth + 1, column) {
                matched |= 1 << t;
            }
        }
        Ok(matched)
    }

    fn leave(&mut self) {
        let len = self.masks.len() - self.targets.len();
        self.masks.truncate(len);
    }

    /// Whether the element being entered satisfies a predicate.
    fn predicate(&self, p: &Predicate) -> bool {
        let Some((_, value)) = self
            .attrs
            .iter()
            .find(|(k, _)| self.text[k.clone()] == p.attribute)
        else {
            return false;
        };
        let raw = &self.text[value.clone()];
        p.value.as_ref().is_none_or(|want| {
            if raw.contains('&') {
                unescape(raw).is_ok_and(|got| got == *want)
            } else {
                raw == want
            }
        })
    }

    fn attribute(&self, start: &BytesStart<'t>, name: &str, at: usize) -> Result<Found> {
        for attr in start.attributes() {
            let attr = attr.map_err(|e| self.malformed(at, e.to_string()))?;
            if attr.key.into_inner() != name {
                continue;
            }
            let Cow::Borrowed(raw) = attr.value else {
                return Err(self.malformed(at, "attribute value is not in the input"));
            };
            let begin = self.offset_of(raw);
            let quote = char::from(self.text.as_bytes()[begin - 1]);
            let raw = &self.text[begin..begin + raw.len()];
            let (line, column) = self.position(begin);
            let value = unescape(raw).map_err(|reason| Error::Entity {
                line,
                column,
                reason,
            })?;
            return Ok(Found {
                value,
                line,
                column,
                span: begin..begin + raw.len(),
                slot: Slot::Attribute { quote },
            });
        }
        let (line, column) = self.position(at);
        Err(Error::MissingAttribute {
            line,
            column,
            name: self.name_of(start).to_owned(),
            attribute: name.to_owned(),
        })
    }

    fn element_text(&self, open: &OpenText, end_tag: usize) -> Result<Found> {
        if !open.only_text {
            let (line, column) = self.position(open.start_tag);
            return Err(Error::NotText {
                line,
                column,
                name: open.name.clone(),
            });
        }
        let content = &self.text[open.content_start..end_tag];
        let trimmed = content.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        let (begin, end) = if trimmed.is_empty() {
            (open.content_start, end_tag)
        } else {
            let lead = content.len() - content.trim_start_matches([' ', '\t', '\r', '\n']).len();
            (
                open.content_start + lead,
                open.content_start + lead + trimmed.len(),
            )
        };
        let (line, column) = self.position(begin);
        let value = unescape(&self.text[begin..end]).map_err(|reason| Error::Entity {
            line,
            column,
            reason,
        })?;
        Ok(Found {
            value: if trimmed.is_empty() {
                String::new()
            } else {
                value
            },
            line,
            column,
            span: begin..end,
            slot: Slot::Text,
        })
    }
}
