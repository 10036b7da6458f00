//! Plain text out of the store's HTML: the section structure of policies and articles (one
//! `<h2>` per section), their readable text, and the slugs their keys and anchors use.
//! The index keys its passages with [`doc_key`] and the demo-store generator keys its
//! citations with it, so a cited `policy:refund#return-window` always names a real section.

/// One `<h2>` section of an HTML body; the text before the first heading has an empty heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub heading: String,
    pub text: String,
}

/// Splits an HTML body at its `<h2>` headings. Empty leading text is dropped.
pub fn sections(body_html: &str) -> Vec<Section> {
    let mut parts = body_html.split("<h2");
    let mut out = Vec::new();
    let intro = readable(parts.next().unwrap_or_default());
    if !intro.is_empty() {
        out.push(Section {
            heading: String::new(),
            text: intro,
        });
    }
    for part in parts {
        let Some(open_end) = part.find('>') else {
            continue;
        };
        let rest = &part[open_end + 1..];
        let (heading, body) = rest.split_once("</h2>").unwrap_or((rest, ""));
        out.push(Section {
            heading: readable(heading),
            text: readable(body),
        });
    }
    out
}

/// `<h2>` headings of an HTML body, in order.
pub fn headings(body_html: &str) -> Vec<String> {
    sections(body_html)
        .into_iter()
        .filter(|s| !s.heading.is_empty())
        .map(|s| s.heading)
        .collect()
}

/// Tags become word breaks, the common entities their characters, whitespace one space.
pub fn readable(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let words: Vec<&str> = decoded.split_whitespace().collect();
    // A tag between a word and its punctuation ("<b>30 days</b>.") must not leave a gap.
    words
        .join(" ")
        .replace(" .", ".")
        .replace(" ,", ",")
        .replace(" :", ":")
        .replace(" ;", ";")
}

/// The key of one section of a document, as answers cite it: the document's key
/// (`policy:refund`, `article:<handle>`) alone for the text before the first heading, else
/// `<document>#<slug of the heading>` (`policy:refund#return-window`).
pub fn doc_key(document: &str, heading: &str) -> String {
    if heading.is_empty() {
        document.to_string()
    } else {
        format!("{document}#{}", slug(heading))
    }
}

/// `"Return window & eligibility"` → `"return-window-eligibility"`.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    // Apostrophes vanish rather than split words, as in Shopify's handles ("womens-…").
    for c in text.chars().filter(|c| !matches!(c, '\'' | '’')) {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_and_slugs() {
        let html = "<h2>Return window</h2><p>30 days</p><h2 id=x>Final &amp; sale</h2>";
        assert_eq!(headings(html), ["Return window", "Final & sale"]);
        assert_eq!(slug("Final & sale!"), "final-sale");
        assert_eq!(slug("Women's boots"), "womens-boots");
    }

    #[test]
    fn sections_keep_intro_and_readable_text() {
        let html = "<p>Welcome.</p><h2>Window</h2><p>Within <b>30 days</b>.</p><p>Tags&nbsp;on.</p><h2>Sale</h2>";
        assert_eq!(
            sections(html),
            [
                Section {
                    heading: String::new(),
                    text: "Welcome.".into()
                },
                Section {
                    heading: "Window".into(),
                    text: "Within 30 days. Tags on.".into()
                },
                Section {
                    heading: "Sale".into(),
                    text: String::new()
                },
            ]
        );
    }
}
