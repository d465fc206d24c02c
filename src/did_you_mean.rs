//! What a mistyped name was most likely meant to be.

/// The nearest of `known` to `name` by edits (a swap of two letters counts
/// as one), at most a third of its length away, and at least two edits
/// always allowed.
pub fn closest(name: &str, known: impl Iterator<Item = String>) -> Option<String> {
    let allowed = (name.chars().count() / 3).max(2);
    known
        .map(|known| (strsim::damerau_levenshtein(name, &known), known))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}
