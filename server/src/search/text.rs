//! Words, typos and highlights for the built-in engine, with Meilisearch's rules so both engines
//! answer alike: words are runs of letters and digits, compared lowercase; a query word of 5 or
//! more characters may carry one typo and one of 9 or more two (a typo is an insertion, a
//! deletion, a substitution or a swap of neighbours); the last query word also matches as a
//! prefix; and every query word must match (Meilisearch's `matchingStrategy: all`).

/// At most this many query words count; Meilisearch ignores the rest too.
pub const MAX_QUERY_WORDS: usize = 10;

/// The words of a text, lowercase, in order.
pub fn words(text: &str) -> Vec<String> {
    spans(text)
        .into_iter()
        .map(|(start, end)| text[start..end].to_lowercase())
        .collect()
}

/// Byte ranges of the words of a text.
fn spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// The indexed form of a document's text: its words joined by single spaces, with a space at
/// each end, so a trigram starting with a space marks the start of a word.
pub fn terms<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from(" ");
    for part in parts {
        for word in words(part) {
            out.push_str(&word);
            out.push(' ');
        }
    }
    out
}

/// The trigrams a document must share with a query word to be worth checking: those of the
/// word with a space before it (a match at the start of a word) and those inside it. A word of
/// one character has none; it is checked against the candidates the other words find.
pub fn trigrams(word: &str) -> Vec<String> {
    let padded: Vec<char> = std::iter::once(' ').chain(word.chars()).collect();
    let mut out: Vec<String> = padded
        .windows(3)
        .map(|w| w.iter().collect::<String>())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Typos a query word of this many characters may carry.
pub fn typo_budget(word: &str) -> usize {
    // Numbers (model numbers, barcodes, order numbers) match exactly, as with Meilisearch's
    // `disableOnNumbers`: a number one digit off is another product, not a typo.
    if word.chars().all(|c| c.is_ascii_digit()) {
        return 0;
    }
    match word.chars().count() {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// How one query word matched a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WordMatch {
    pub typos: usize,
    /// Matched as the beginning of a longer word (the last query word only).
    pub prefix: bool,
    /// Which field matched: 0 code or barcode, 1 title, 2 the rest (Meilisearch's attribute
    /// rule ranks by the same order).
    pub field: usize,
}

/// A document's searchable fields in ranking order, each split into words.
pub struct Fields {
    pub words: [Vec<String>; 3],
}

impl Fields {
    pub fn new(code: &str, barcode: Option<&str>, title: &str, body: &str) -> Self {
        let mut first = words(code);
        if let Some(b) = barcode {
            first.extend(words(b));
        }
        Self {
            words: [first, words(title), words(body)],
        }
    }
}

/// The best match of one query word among a document's words (fewest typos, then exact over
/// prefix, then the earliest field), or `None`.
pub fn match_word(
    query: &str,
    fields: &Fields,
    last: bool,
    synonyms: &[String],
) -> Option<WordMatch> {
    let mut best: Option<WordMatch> = None;
    let candidates = std::iter::once(query).chain(synonyms.iter().map(String::as_str));
    for (n, q) in candidates.enumerate() {
        let q_len = q.chars().count();
        // Synonyms are matched exactly, as Meilisearch does.
        let budget = if n == 0 { typo_budget(q) } else { 0 };
        for (field, words) in fields.words.iter().enumerate() {
            for word in words {
                let found = word_match(q, q_len, word, budget, last && n == 0);
                if let Some((typos, prefix)) = found {
                    let candidate = WordMatch {
                        typos,
                        prefix,
                        field,
                    };
                    if best.is_none_or(|b| (typos, prefix, field) < (b.typos, b.prefix, b.field)) {
                        best = Some(candidate);
                    }
                }
            }
        }
    }
    best
}

fn word_match(
    q: &str,
    q_len: usize,
    word: &str,
    budget: usize,
    prefix_allowed: bool,
) -> Option<(usize, bool)> {
    if word == q {
        return Some((0, false));
    }
    if prefix_allowed && word.starts_with(q) {
        return Some((0, true));
    }
    if budget == 0 {
        return None;
    }
    // Lengths further apart than the budget cannot be within it: most pairs stop here.
    let w_len = word.chars().count();
    let mut best = None;
    if w_len.abs_diff(q_len) <= budget {
        let whole = strsim::osa_distance(q, word);
        best = (whole <= budget).then_some((whole, false));
    }
    if prefix_allowed {
        // The typed part of a longer word: compare with the word cut to the query's length
        // (and one longer or shorter, for an insertion or deletion).
        for len in q_len.saturating_sub(1)..=q_len + 1 {
            if len >= w_len {
                continue;
            }
            let end = word.char_indices().nth(len).map_or(word.len(), |(i, _)| i);
            let d = strsim::osa_distance(q, &word[..end]);
            if d <= budget && best.is_none_or(|(b, _)| d < b) {
                best = Some((d, true));
            }
        }
    }
    best
}

/// Wraps the words of `text` that match a query word in `<mark>`…`</mark>` (for a prefix
/// match, only the typed part); `None` when nothing in it matched.
pub fn highlight(text: &str, query: &[String], synonyms: &[Vec<String>]) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut at = 0;
    let mut any = false;
    for (start, end) in spans(text) {
        let word = text[start..end].to_lowercase();
        let chars = word.chars().count();
        let mut mark: Option<usize> = None;
        for (i, q) in query.iter().enumerate() {
            let last = i + 1 == query.len();
            let q_len = q.chars().count();
            let syn = synonyms.get(i).map(Vec::as_slice).unwrap_or_default();
            let found = word_match(q, q_len, &word, typo_budget(q), last)
                .or_else(|| syn.contains(&word).then_some((0, false)));
            if let Some((_, prefix)) = found {
                let marked = if prefix { q_len.min(chars) } else { chars };
                mark = Some(mark.map_or(marked, |m| m.max(marked)));
            }
        }
        if let Some(marked_chars) = mark {
            let split = text[start..end]
                .char_indices()
                .nth(marked_chars)
                .map_or(end, |(i, _)| start + i);
            out.push_str(&text[at..start]);
            out.push_str("<mark>");
            out.push_str(&text[start..split]);
            out.push_str("</mark>");
            at = split;
            any = true;
        }
    }
    out.push_str(&text[at..]);
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(title: &str) -> Fields {
        Fields::new(
            "MUG-BLU-01",
            Some("0123456789012"),
            title,
            "ceramic stoneware",
        )
    }

    #[test]
    fn words_are_lowercase_runs_of_letters_and_digits() {
        assert_eq!(
            words("MUG-BLU-01, Café au lait"),
            ["mug", "blu", "01", "café", "au", "lait"]
        );
        assert_eq!(terms(["Blue  Mug", "X-1"]), " blue mug x 1 ");
    }

    #[test]
    fn trigrams_mark_the_start_of_a_word() {
        assert_eq!(trigrams("mug"), [" mu", "mug"]);
        assert_eq!(trigrams("a"), Vec::<String>::new());
        assert_eq!(trigrams("ab"), [" ab"]);
    }

    #[test]
    fn typos_follow_the_word_length() {
        let f = fields("Blue Ceramic Mug");
        assert_eq!(
            match_word("ceramc", &f, false, &[]).map(|m| m.typos),
            Some(1)
        );
        assert_eq!(
            match_word("cermaic", &f, false, &[]).map(|m| m.typos),
            Some(1),
            "a swap is one typo"
        );
        assert_eq!(
            match_word("mgu", &f, false, &[]),
            None,
            "no typo in short words"
        );
        assert_eq!(
            match_word("ceramixx", &f, false, &[]),
            None,
            "two typos need 9 characters"
        );
        assert_eq!(
            match_word("stonewaer", &f, false, &[]).map(|m| m.typos),
            Some(1)
        );
    }

    #[test]
    fn numbers_match_exactly() {
        let f = Fields::new(
            "SKU-400123",
            Some("4006381333931"),
            "Kettle model 31415",
            "",
        );
        assert_eq!(
            match_word("31415", &f, false, &[]).map(|m| m.typos),
            Some(0)
        );
        assert_eq!(match_word("31416", &f, false, &[]), None, "one digit off");
        assert_eq!(match_word("4006381333932", &f, false, &[]), None);
        assert_eq!(
            match_word("kettel", &f, false, &[]).map(|m| m.typos),
            Some(1)
        );
    }

    #[test]
    fn the_last_word_matches_as_a_prefix() {
        let f = fields("Blue Ceramic Mug");
        assert_eq!(
            match_word("cera", &f, true, &[]),
            Some(WordMatch {
                typos: 0,
                prefix: true,
                field: 1
            })
        );
        assert_eq!(match_word("cera", &f, false, &[]), None);
        assert_eq!(
            match_word("012345", &f, true, &[]).map(|m| m.field),
            Some(0)
        );
    }

    #[test]
    fn synonyms_match_exactly() {
        let f = Fields::new("CUP-01", None, "Blue Ceramic Cup", "stoneware");
        assert_eq!(match_word("mug", &f, false, &[]), None);
        assert!(match_word("mug", &f, false, &["cup".to_owned()]).is_some());
    }

    #[test]
    fn highlights_mark_the_matched_part() {
        let q = vec!["ceramc".to_owned(), "mu".to_owned()];
        assert_eq!(
            highlight("Blue Ceramic Mug", &q, &[]).as_deref(),
            Some("Blue <mark>Ceramic</mark> <mark>Mu</mark>g")
        );
        assert_eq!(highlight("Glass", &q, &[]), None);
    }
}
