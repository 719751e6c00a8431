//! Random documents and edits: the result parses, every edited value reads back as the new
//! value, and every byte outside the edited spans is identical.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use opsmgr_configfix::{Document, EditOptions, Error, Target};
use proptest::prelude::*;

/// Characters that need care in XML, and some that do not.
fn value_chars() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        'a', 'Z', '0', ' ', '&', '<', '>', '"', '\'', '\t', '\n', '\r', 'é', '€', ';', '#',
    ])
}

fn escape(s: &str, quote: char, numeric: bool) -> String {
    s.chars()
        .map(|c| match c {
            '&' if numeric => "&#38;".to_owned(),
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' if numeric => "&#x3E;".to_owned(),
            '"' if quote == '"' => "&quot;".to_owned(),
            '\'' if quote == '\'' => "&apos;".to_owned(),
            '\t' | '\n' | '\r' if quote != ' ' => format!("&#{};", c as u32),
            '\r' => "&#13;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// An element tree: `a` elements always carry a `k` attribute and may nest; `b` elements
/// hold only text (or nothing). Comments and CDATA hold decoy `<a k="...">` and `<b>` tags.
#[derive(Debug, Clone)]
enum Node {
    A {
        k: String,
        quote: char,
        space: String,
        children: Vec<Node>,
    },
    B {
        text: String,
        empty: bool,
    },
    Comment,
    CData,
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (prop::collection::vec(value_chars(), 0..8), any::<bool>()).prop_map(|(t, empty)| {
            let text: String = t.into_iter().collect();
            Node::B { text, empty }
        }),
        Just(Node::Comment),
        Just(Node::CData),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        (
            prop::collection::vec(value_chars(), 0..8),
            prop::sample::select(vec!['"', '\'']),
            prop::sample::select(vec![" ".to_owned(), "  ".to_owned(), "\r\n\t".to_owned()]),
            prop::collection::vec(inner, 0..5),
        )
            .prop_map(|(k, quote, space, children)| Node::A {
                k: k.into_iter().collect(),
                quote,
                space,
                children,
            })
    })
}

fn render(node: &Node, eol: &str, numeric: bool, out: &mut String) {
    match node {
        Node::A {
            k,
            quote,
            space,
            children,
        } => {
            out.push_str(&format!(
                "<a{space}k={quote}{}{quote} x=\"1\">{eol}",
                escape(k, *quote, numeric)
            ));
            for c in children {
                render(c, eol, numeric, out);
            }
            out.push_str(&format!("</a>{eol}"));
        }
        Node::B { text, empty: true } if text.is_empty() => out.push_str("<b/>"),
        Node::B { text, .. } => {
            out.push_str(&format!("<b>{}</b>{eol}", escape(text, ' ', numeric)))
        }
        Node::Comment => out.push_str(&format!("<!-- <a k=\"decoy\"><b>decoy</b></a> -->{eol}")),
        Node::CData => out.push_str("<![CDATA[<b>decoy</b><a k='decoy'/>]]>"),
    }
}

fn encode(text: &str, how: u8) -> Vec<u8> {
    match how {
        0 => text.as_bytes().to_vec(),
        1 => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
        2 => [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect(),
        _ => [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect(),
    }
}

fn document() -> impl Strategy<Value = (Vec<u8>, String)> {
    (
        prop::collection::vec(node(), 1..6),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
        any::<bool>(),
        0u8..4,
    )
        .prop_map(|(children, eol, numeric, decl, how)| {
            let mut text = String::new();
            if decl {
                text.push_str(&format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{eol}"));
            }
            render(
                &Node::A {
                    k: "root".into(),
                    quote: '"',
                    space: " ".into(),
                    children,
                },
                eol,
                numeric,
                &mut text,
            );
            (encode(&text, how), text)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn edits_read_back_and_touch_nothing_else(
        (bytes, _text) in document(),
        attribute in any::<bool>(),
        value in prop::collection::vec(value_chars(), 1..10),
    ) {
        let mut value: String = value.into_iter().collect();
        let target: Target = if attribute { "//a/@k" } else { "a//b" }.parse().unwrap();
        if !attribute {
            // Element text is read back without its surrounding white space.
            value = value.trim_matches([' ', '\t', '\r', '\n']).to_owned();
            prop_assume!(!value.is_empty());
        }
        let doc = Document::parse(bytes.clone()).unwrap();
        let found = doc.find(&target).unwrap();
        let edit = match doc.edit(std::slice::from_ref(&target), &value, &EditOptions::default()) {
            Err(Error::Count { found: 0, .. }) => {
                prop_assert!(found.is_empty());
                return Ok(());
            }
            other => other.unwrap(),
        };
        prop_assert_eq!(edit.matches.len(), found.len());
        let changed = found.iter().filter(|f| f.value != value).count();
        prop_assert_eq!(edit.changed(), changed);
        let Some(out) = &edit.output else {
            prop_assert_eq!(changed, 0);
            return Ok(());
        };
        // Byte identity outside the spans.
        let (mut b, mut a) = (0, 0);
        for (old, new) in edit.spans.iter().zip(&edit.new_spans) {
            prop_assert_eq!(&bytes[b..old.start], &out[a..new.start]);
            (b, a) = (old.end, new.end);
        }
        prop_assert_eq!(&bytes[b..], &out[a..]);
        // The result parses in the same encoding and every match now holds the value.
        let again = Document::parse(out.clone()).unwrap();
        prop_assert_eq!(again.encoding(), doc.encoding());
        let now = again.find(&target).unwrap();
        prop_assert_eq!(now.len(), found.len());
        for f in &now {
            prop_assert_eq!(&f.value, &value);
        }
        // Decoys in comments and CDATA are still there, untouched.
        prop_assert_eq!(
            again.text().matches("decoy").count(),
            doc.text().matches("decoy").count()
        );
    }
}
