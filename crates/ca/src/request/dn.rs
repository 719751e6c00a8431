//! Distinguished names as certreq's Subject writes them.

use std::fmt;

/// An attribute of a distinguished name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute {
    /// CN, common name.
    CommonName,
    /// O, organization.
    Organization,
    /// OU, organizational unit.
    OrganizationalUnit,
    /// C, country (two letters).
    Country,
    /// L, locality.
    Locality,
    /// S or ST, state or province.
    State,
    /// E or EMAIL, e-mail address.
    Email,
    /// DC, domain component.
    DomainComponent,
    /// Any other attribute, by dotted OID.
    Oid(String),
}

impl Attribute {
    /// The dotted OID of the attribute type.
    pub fn oid(&self) -> &str {
        match self {
            Attribute::CommonName => "2.5.4.3",
            Attribute::Organization => "2.5.4.10",
            Attribute::OrganizationalUnit => "2.5.4.11",
            Attribute::Country => "2.5.4.6",
            Attribute::Locality => "2.5.4.7",
            Attribute::State => "2.5.4.8",
            Attribute::Email => "1.2.840.113549.1.9.1",
            Attribute::DomainComponent => "0.9.2342.19200300.100.1.25",
            Attribute::Oid(oid) => oid,
        }
    }

    fn parse(name: &str) -> Result<Self, String> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "CN" => Attribute::CommonName,
            "O" => Attribute::Organization,
            "OU" => Attribute::OrganizationalUnit,
            "C" => Attribute::Country,
            "L" => Attribute::Locality,
            "S" | "ST" => Attribute::State,
            "E" | "EMAIL" | "EMAILADDRESS" => Attribute::Email,
            "DC" => Attribute::DomainComponent,
            _ if name.split('.').count() > 1
                && name
                    .split('.')
                    .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit())) =>
            {
                Attribute::Oid(name.to_owned())
            }
            _ => return Err(format!("unknown attribute type '{name}' in the subject")),
        })
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Attribute::CommonName => "CN",
            Attribute::Organization => "O",
            Attribute::OrganizationalUnit => "OU",
            Attribute::Country => "C",
            Attribute::Locality => "L",
            Attribute::State => "S",
            Attribute::Email => "E",
            Attribute::DomainComponent => "DC",
            Attribute::Oid(oid) => oid,
        })
    }
}

/// A distinguished name in the order it was written (`CN=host, O=Org, C=NL`: CN first), one
/// value per relative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    /// The attributes, in written order.
    pub parts: Vec<(Attribute, String)>,
}

impl DistinguishedName {
    /// The first common name, which the agent uses.
    pub fn common_name(&self) -> Option<&str> {
        self.parts
            .iter()
            .find(|(a, _)| *a == Attribute::CommonName)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (attr, value)) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{attr}=")?;
            for (j, c) in value.chars().enumerate() {
                let edge = (j == 0 && matches!(c, ' ' | '#'))
                    || (j + 1 == value.chars().count() && c == ' ');
                if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Parses `CN=host.company.local, O="Org, Inc.", C=NL`: RFC 4514 escapes (`\,`, `\"`, `\\`,
/// `\2C`), Windows-style quoted values, `,` or `;` between parts.
pub(crate) fn parse_dn(text: &str) -> Result<DistinguishedName, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i] == ' ' {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' {
            if matches!(chars[i], ',' | ';' | '+') {
                return Err(format!(
                    "expected TYPE=value at '{}'",
                    chars[start..].iter().collect::<String>()
                ));
            }
            i += 1;
        }
        if i >= chars.len() {
            return Err(format!(
                "'{}' has no '='",
                chars[start..].iter().collect::<String>()
            ));
        }
        let attr = Attribute::parse(chars[start..i].iter().collect::<String>().trim())?;
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated quoted value in the subject".into()),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        value.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if i + 1 < chars.len() => {
                        value.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            skip_space(&mut i);
        } else {
            let mut trailing_spaces = 0;
            while i < chars.len() && !matches!(chars[i], ',' | ';') {
                match chars[i] {
                    '+' => {
                        return Err(
                            "multi-valued names (with '+') are not supported in the subject".into(),
                        );
                    }
                    '\\' => {
                        let hex: String = chars.iter().skip(i + 1).take(2).collect();
                        if hex.len() == 2 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                            let byte = u8::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                            if !byte.is_ascii() {
                                return Err("hex escapes of non-ASCII bytes are not supported; write the character".into());
                            }
                            value.push(char::from(byte));
                            i += 3;
                        } else if let Some(&c) = chars.get(i + 1) {
                            value.push(c);
                            i += 2;
                        } else {
                            return Err("a subject ends in '\\'".into());
                        }
                        trailing_spaces = 0;
                        continue;
                    }
                    ' ' => trailing_spaces += 1,
                    _ => trailing_spaces = 0,
                }
                value.push(chars[i]);
                i += 1;
            }
            value.truncate(value.len() - trailing_spaces);
        }
        if value.is_empty() {
            return Err(format!("{attr} has an empty value"));
        }
        if attr == Attribute::Country
            && !(value.len() == 2 && value.chars().all(|c| c.is_ascii_alphabetic()))
        {
            return Err(format!("C={value} is not a two-letter country code"));
        }
        parts.push((attr, value));
        if i < chars.len() {
            if !matches!(chars[i], ',' | ';') {
                return Err(format!("expected ',' after a value, found '{}'", chars[i]));
            }
            i += 1;
        }
    }
    if parts.is_empty() {
        return Err("the subject is empty".into());
    }
    Ok(DistinguishedName { parts })
}
